"""What deployctl says about monitoring is what CloudWatch shows (moto server, rollout simulation).

- the first deploy that writes the roll-back alarms says it created them, not "up to date";
- `monitor apply` says which alarms it created, updated or left unchanged (human and --json);
- `metrics` prints thresholds as people write them (6,000 tokens, not 6e+03).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.integration.test_preview import World, deploy, deploy_yaml, write_project
from tests.support import cli as in_process
from tests.support.aws_world import QUICK_PHASES

SIM_PHASES = QUICK_PHASES
MONITORING = {
    "load_balancer": "chat-api", "error_rate": 5, "latency": {"p99": "10s"},
    "tokens": {"namespace": "ChatApi/LLM", "metric": "TokensPerRequest", "dimensions": {"Service": "{service}"},
               "max_per_request": 6000, "service": "api"},
    "queue": {"name": "chat-jobs", "max_visible": 1000, "service": "worker"},
    "roll_back_on": ["error_rate"], "dashboard": True,
}
ALARMS = {"chat-api-staging-api-latency-p99", "chat-api-staging-api-error-rate",
          "chat-api-staging-api-tokens-per-request", "chat-api-staging-worker-queue-depth"}


def cli(world: World, proj: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return in_process.run(*args, cwd=proj, env={**world.aws.env, "COLUMNS": "200"})


def project(world: World, tmp_path: Path) -> Path:
    world.c("sqs").create_queue(QueueName="chat-jobs")
    doc = deploy_yaml(world)
    doc["monitoring"] = json.loads(json.dumps(MONITORING))
    return write_project(tmp_path, doc)


def test_first_deploy_says_it_created_the_alarms_and_apply_says_what_changed(world: World, ecs_sim: Any,
                                                                              tmp_path: Path) -> None:
    proj = project(world, tmp_path)
    lines = deploy(proj, "staging", world.push("v1"))
    said = [line for line in lines if line.startswith("monitoring:")]
    assert said == ["monitoring: 4 alarms: 4 created (roll back on: error_rate)"], lines
    stored = {a["AlarmName"] for a in world.c("cloudwatch").describe_alarms()["MetricAlarms"]}
    assert stored >= ALARMS

    # Nothing changed since: monitor apply writes no alarm and says so.
    puts = len(ecs_sim.calls_of("PutMetricAlarm"))
    res = cli(world, proj, "monitor", "apply", "--env", "staging", "--json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["schema"] == "deployctl.monitor-apply/v1"
    assert (data["created"], data["updated"]) == ([], [])
    assert set(data["unchanged"]) == set(data["alarms"]) == ALARMS
    assert len(ecs_sim.calls_of("PutMetricAlarm")) == puts

    # One threshold changed in deploy.yaml: exactly that alarm is updated, in CloudWatch too.
    doc = yaml.safe_load((proj / "deploy.yaml").read_text())
    doc["monitoring"]["error_rate"] = 7
    (proj / "deploy.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    res = cli(world, proj, "monitor", "apply", "--env", "staging")
    assert res.returncode == 0, res.stderr
    assert "4 alarms: 1 updated, 3 unchanged" in res.stdout
    assert "updated: chat-api-staging-api-error-rate" in res.stdout
    assert "up to date" not in res.stdout
    alarm = world.c("cloudwatch").describe_alarms(AlarmNames=["chat-api-staging-api-error-rate"])["MetricAlarms"][0]
    assert alarm["Threshold"] == 7.0
    assert len(ecs_sim.calls_of("PutMetricAlarm")) == puts + 1


def test_metrics_prints_thresholds_as_plain_numbers(world: World, ecs_sim: Any, tmp_path: Path) -> None:
    proj = project(world, tmp_path)
    res = cli(world, proj, "metrics", "--env", "staging")
    assert res.returncode == 0, res.stderr
    assert "6,000 tokens" in res.stdout and "1,000 msgs" in res.stdout, res.stdout
    assert "e+0" not in res.stdout
    data = json.loads(cli(world, proj, "metrics", "--env", "staging", "--json").stdout)
    assert data["schema"] == "deployctl.metrics/v1"
    thresholds = {row["metric"]: row["threshold"] for row in data["metrics"]}
    assert thresholds["tokens_per_request"] == 6000.0 and thresholds["queue_depth"] == 1000.0
