"""CloudWatch alarms and metrics, and the CloudWatch Logs metric filters that feed them, typed.

Callers get Alarm, MetricFilter and plain numbers, never a response dict. Whether a stored
alarm or filter already holds what a rendered Put request asks for is decided here (`holds`):
the Describe answers add keys of their own (AlarmArn, state, creation time), so only the keys
sent are compared. Functions take the service's client ("cloudwatch", "logs").

Shapes: https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_MetricAlarm.html,
API_CompositeAlarm.html, API_MetricDataResult.html;
https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_MetricFilter.html.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from deployctl.adapters.aws import BotoClient

# DescribeAlarms takes at most 100 names a call.
_NAMES_PER_CALL = 100
METRIC_ALARMS = ("MetricAlarm",)


def holds(sent: object, stored: object) -> bool:
    """True when `stored` (a Describe answer) already has every key of `sent` (a Put request)
    with the same value; numbers compare as numbers (CloudWatch answers 5 as 5.0)."""
    if isinstance(sent, Mapping):
        return isinstance(stored, Mapping) and all(holds(v, stored.get(k)) for k, v in sent.items())
    if isinstance(sent, list):
        return isinstance(stored, list) and len(sent) == len(stored) and all(map(holds, sent, stored))
    if isinstance(sent, int | float) and isinstance(stored, int | float):
        return float(sent) == float(stored)
    return bool(sent == stored)


@dataclass(frozen=True)
class Alarm:
    name: str
    state: str = ""  # OK | ALARM | INSUFFICIENT_DATA
    composite: bool = False
    has_actions: bool = False  # AlarmActions or OKActions set
    _stored: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def firing(self) -> bool:
        return self.state == "ALARM"

    def holds(self, request: Mapping[str, Any]) -> bool:
        """Whether PutMetricAlarm with `request` would change nothing."""
        return holds(request, self._stored)

    @classmethod
    def from_api(cls, raw: Mapping[str, Any], *, composite: bool = False) -> Alarm:
        return cls(name=str(raw.get("AlarmName", "")), state=str(raw.get("StateValue", "") or ""),
                   composite=composite, has_actions=bool(raw.get("AlarmActions") or raw.get("OKActions")),
                   _stored=dict(raw))


def alarms(cloudwatch: BotoClient, names: Iterable[str],
           types: tuple[str, ...] | None = METRIC_ALARMS) -> dict[str, Alarm]:
    """The alarms of `names` that exist, by name. `types` None asks DescribeAlarms without
    AlarmTypes and reads both of its lists."""
    listed = list(names)
    found: dict[str, Alarm] = {}
    for i in range(0, len(listed), _NAMES_PER_CALL):
        kwargs: dict[str, Any] = {"AlarmNames": listed[i:i + _NAMES_PER_CALL]}
        if types is not None:
            kwargs["AlarmTypes"] = list(types)
        resp = cloudwatch.describe_alarms(**kwargs)
        for raw in resp.get("MetricAlarms") or []:
            found[str(raw["AlarmName"])] = Alarm.from_api(raw)
        for raw in resp.get("CompositeAlarms") or []:
            found[str(raw["AlarmName"])] = Alarm.from_api(raw, composite=True)
    return found


def alarm_states(cloudwatch: BotoClient, names: Iterable[str],
                 types: tuple[str, ...] | None = METRIC_ALARMS) -> dict[str, str]:
    """name → state of the alarms of `names` that exist."""
    return {name: alarm.state for name, alarm in alarms(cloudwatch, names, types).items()}


def put_metric_alarm(cloudwatch: BotoClient, request: Mapping[str, Any]) -> None:
    cloudwatch.put_metric_alarm(**request)


def delete_alarms(cloudwatch: BotoClient, names: list[str]) -> None:
    cloudwatch.delete_alarms(AlarmNames=names)


def put_dashboard(cloudwatch: BotoClient, name: str, body: str) -> None:
    cloudwatch.put_dashboard(DashboardName=name, DashboardBody=body)


def metric_value(cloudwatch: BotoClient, metric_stat: Mapping[str, Any], start: datetime,
                 end: datetime) -> float | None:
    """The newest value GetMetricData gives for one MetricStat over start..end; None: no data."""
    resp = cloudwatch.get_metric_data(MetricDataQueries=[{"Id": "m", "ReturnData": True, "MetricStat": metric_stat}],
                                      StartTime=start, EndTime=end)
    results = resp.get("MetricDataResults") or [{}]
    values = results[0].get("Values") or []
    return float(values[0]) if values else None


# --- CloudWatch Logs metric filters ---------------------------------------------------------------


@dataclass(frozen=True)
class MetricFilter:
    name: str
    _stored: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def holds(self, request: Mapping[str, Any]) -> bool:
        """Whether PutMetricFilter with `request` would change nothing."""
        return holds(request, self._stored)

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> MetricFilter:
        return cls(name=str(raw.get("filterName", "")), _stored=dict(raw))


def metric_filters(logs: BotoClient, group: str, prefix: str) -> dict[str, MetricFilter]:
    """The log group's metric filters whose names start with `prefix`, by name (every page). A
    missing log group is raised (ResourceNotFoundException)."""
    found: dict[str, MetricFilter] = {}
    kwargs: dict[str, Any] = {"logGroupName": group, "filterNamePrefix": prefix}
    while True:
        resp = logs.describe_metric_filters(**kwargs)
        for raw in resp.get("metricFilters") or []:
            found[str(raw["filterName"])] = MetricFilter.from_api(raw)
        if not resp.get("nextToken"):
            return found
        kwargs["nextToken"] = resp["nextToken"]


def put_metric_filter(logs: BotoClient, request: Mapping[str, Any]) -> None:
    logs.put_metric_filter(**request)


def delete_metric_filter(logs: BotoClient, group: str, name: str) -> None:
    logs.delete_metric_filter(logGroupName=group, filterName=name)
