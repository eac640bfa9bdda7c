"""`deployctl logs` as a user runs it (a subprocess), reading moto's CloudWatch Logs.

The services' tasks come from the ECS rollout SIMULATION (two releases: the first one's tasks
are stopped by the second's rollout); their output is written into moto CloudWatch Logs where
the awslogs driver would write it (`<prefix>/<container>/<task id>`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.integration.test_ecs_deploy import cli, cli_project
from tests.support.aws_world import API, CLUSTER, FAMILY_API, base_config

GROUP = "/deployctl/chat-api/staging"


def _write(world: Any, task_id: str, *messages: str, ago_s: float = 5.0) -> None:
    logs, stream = world.c("logs"), f"api/api/{task_id}"
    if not logs.describe_log_streams(logGroupName=GROUP, logStreamNamePrefix=stream)["logStreams"]:
        logs.create_log_stream(logGroupName=GROUP, logStreamName=stream)
    at = int((time.time() - ago_s) * 1000)
    logs.put_log_events(logGroupName=GROUP, logStreamName=stream,
                        logEvents=[{"timestamp": at + i, "message": m} for i, m in enumerate(messages)])


def _two_releases(world: Any, sim: Any, tmp_path: Path) -> tuple[Path, dict[str, list[str]]]:
    """Deploy v1 then v2 with the CLI; returns the project and task ids by revision (":1", ":2")."""
    world.c("logs").create_log_group(logGroupName=GROUP)
    project = cli_project(tmp_path, base_config(world))
    for tag in ("v1", "v2"):
        r = cli(world.aws, project, "run", "--env", "staging", "--image", world.push(tag), "--only", "deploy")
        assert r.returncode == 0, r.stdout + r.stderr
    tasks: dict[str, list[str]] = {":1": [], ":2": []}
    for t in sim.tasks(API, cluster=CLUSTER):
        tasks[":" + t.task_definition_arn.rsplit(":", 1)[1]].append(t.id)
    assert tasks[":1"] and tasks[":2"]
    return project, tasks


def _release_of(world: Any, revision: str) -> str:
    tags = world.td_tags(f"{FAMILY_API}{revision}")
    return tags["deployctl:release"]


def test_logs_reads_every_task_redacted_and_by_release(world: Any, sim: Any, tmp_path: Path) -> None:
    project, tasks = _two_releases(world, sim, tmp_path)
    for rev, ids in tasks.items():
        for task_id in ids:
            _write(world, task_id, f"serving {rev} from {task_id}", "db password=hunter2hunter2 ok")
    _write(world, tasks[":2"][0], "an hour-old line", ago_s=3600)

    r = cli(world.aws, project, "logs", "--env", "staging", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["schema"] == "deployctl.logs/v1" and doc["env"] == "staging" and doc["since"] == "10m"
    messages = [e["message"] for e in doc["events"]]
    every = [*tasks[":1"], *tasks[":2"]]
    assert sorted({e["task_id"] for e in doc["events"]}) == sorted(every)
    assert all(e["service"] == "api" and e["stream"] == f"api/api/{e['task_id']}" for e in doc["events"])
    assert "hunter2hunter2" not in r.stdout and "db password=*** ok" in messages
    assert "an hour-old line" not in messages  # older than --since's default 10m
    assert [e["timestamp"] for e in doc["events"]] == sorted(e["timestamp"] for e in doc["events"])

    longer = json.loads(cli(world.aws, project, "logs", "--env", "staging", "api", "--since", "2h", "--json").stdout)
    assert "an hour-old line" in [e["message"] for e in longer["events"]]

    first = _release_of(world, ":1")
    only = json.loads(cli(world.aws, project, "logs", "--env", "staging", "--release", first, "--json").stdout)
    assert only["release"] == first
    assert sorted({e["task_id"] for e in only["events"]}) == sorted(tasks[":1"])

    # The terminal form: time, service, short task id, message; secrets masked there too.
    plain = cli(world.aws, project, "logs", "--env", "staging")
    assert plain.returncode == 0 and f"api {tasks[':2'][0][:8]} serving :2" in plain.stdout
    assert "hunter2hunter2" not in plain.stdout


def test_bad_requests_are_one_paragraph_errors(world: Any, sim: Any, tmp_path: Path) -> None:
    project = cli_project(tmp_path, base_config(world))
    r = cli(world.aws, project, "logs", "--env", "staging", "nope")
    assert r.returncode == 2 and "no service 'nope' in staging" in r.stderr and "Traceback" not in r.stderr
    r = cli(world.aws, project, "logs", "--env", "staging", "--since", "soon")
    assert r.returncode == 2 and "--since" in r.stderr
    # Nothing has logged yet: no log group.
    r = cli(world.aws, project, "logs", "--env", "staging")
    assert r.returncode == 1 and f"no log group {GROUP}" in r.stderr and "Traceback" not in r.stderr
    r = cli(world.aws, project, "logs", "--env", "staging", "--release", "20200101-0000-deadbee")
    assert r.returncode == 2 and "no release 20200101-0000-deadbee" in r.stderr


def test_follow_prints_new_lines_and_ctrl_c_exits_130(world: Any, sim: Any, tmp_path: Path) -> None:
    project, tasks = _two_releases(world, sim, tmp_path)
    task_id = tasks[":2"][0]
    _write(world, task_id, "before following")
    environ = {**os.environ, **world.aws.env, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-m", "deployctl", "logs", "--env", "staging", "--follow", "--json"],
                            cwd=project, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        assert first["schema"] == "deployctl.logs.event/v1" and first["message"] == "before following"
        _write(world, task_id, "a new line token=abcdefabcdef0123456789", ago_s=0)
        second = json.loads(proc.stdout.readline())
        assert second["message"].startswith("a new line token=") and "abcdefabcdef0123456789" not in second["message"]
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "stopped following the logs of staging" in err and "Traceback" not in err
    assert "before following" not in out  # each line once
