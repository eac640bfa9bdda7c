"""put_metric_filters when the log group is not there yet: a clear error, nothing half-done.

CloudWatch Logs answers PutMetricFilter/DescribeMetricFilters on a missing log group with
ResourceNotFoundException (API reference, Errors); moto does not, so the answer comes from a stub
client passed in, raising botocore's own ClientError exactly as boto3 would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from deployctl import monitoring
from deployctl.config import load_env, read
from deployctl.errors import PreflightFailed
from deployctl.monitoring import put_metric_filters
from deployctl.render import monitoring as render

DEPLOY_YAML = """
version: 1
app: chat
region: us-east-1
image: {repository: chat}
services:
  api: {port: 8000}
monitoring:
  endpoints: {routes: [/v1/chat], error_rate: 5}
environments:
  staging: {target: ecs, cluster: c, network: {subnets: [s]}, roles: {execution: "arn:aws:iam::123456789012:role/x"}}
"""


class NoLogGroup:
    def __init__(self) -> None:
        self.puts: list[dict[str, Any]] = []

    def describe_metric_filters(self, **kwargs: Any) -> dict[str, Any]:
        raise ClientError({"Error": {"Code": "ResourceNotFoundException",
                                     "Message": "The specified log group does not exist."}}, "DescribeMetricFilters")

    def put_metric_filter(self, **kwargs: Any) -> None:
        self.puts.append(kwargs)


def test_a_missing_log_group_is_a_preflight_failure_that_says_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "deploy.yaml").write_text(DEPLOY_YAML)
    cfg = load_env(read(tmp_path / "deploy.yaml", environ={}), "staging")
    logs = NoLogGroup()
    with pytest.raises(PreflightFailed) as info:
        put_metric_filters(logs, cfg, render.metric_filters(cfg, cfg.monitoring.endpoints))
    message = str(info.value)
    assert "log group /deployctl/chat/staging does not exist yet" in message
    assert "deploy the environment once" in message
    assert info.value.exit_code != 3  # an expected condition, not an internal bug
    assert logs.puts == []


def test_change_summaries_say_what_happened() -> None:
    assert monitoring.AlarmChanges(created=("a", "b")).summary() == "2 alarms: 2 created"
    assert monitoring.AlarmChanges(updated=("a",), unchanged=("b",), removed=("c",)).summary() == \
        "2 alarms: 1 updated, 1 unchanged, 1 removed"
    assert monitoring.AlarmChanges(removed=("old",), noun="metric filter").summary() == \
        "0 metric filters: 1 removed"
    assert monitoring.AlarmChanges().summary() == "no alarms"  # not "0 alarms: none"
