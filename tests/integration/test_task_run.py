"""`deployctl task run` as a user runs it (a subprocess) against moto: the services come from
the ECS rollout SIMULATION, the one-off task from the one-off task SIMULATION
(tests/simulation/one_off_tasks.py), its output through moto's CloudWatch Logs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.integration.test_ecs_deploy import cli, cli_project
from tests.simulation.one_off_tasks import Script
from tests.support.aws_world import FAMILY_API, base_config
from tests.support.mid_rollout import calls


def _deployed(world: Any, tmp_path: Path, *tags: str) -> Path:
    project = cli_project(tmp_path, base_config(world))
    for tag in tags or ("v1",):
        r = cli(world.aws, project, "run", "--env", "staging", "--image", world.push(tag), "--only", "deploy")
        assert r.returncode == 0, r.stdout + r.stderr
    return project


def test_task_run_streams_the_output_and_exits_with_the_containers_code(world: Any, sim: Any, one_off_tasks: Any,
                                                                        tmp_path: Path) -> None:
    project = _deployed(world, tmp_path)
    one_off_tasks.script(Script(exit_code=3, lines=("checking 12 tables", "token=abcdef0123456789abcdef",
                                                    "2 problems found")))
    revisions = len(world.revisions())
    r = cli(world.aws, project, "task", "run", "--env", "staging", "--", "python", "manage.py", "check")

    assert r.returncode == 3, r.stderr
    assert r.stdout.splitlines()[0] == "checking 12 tables" and "2 problems found" in r.stdout
    assert "abcdef0123456789abcdef" not in r.stdout + r.stderr
    assert "one-off task of api (release " in r.stderr and f"{FAMILY_API}:1)" in r.stderr
    assert "api exited with code 3" in r.stderr and "Traceback" not in r.stderr
    # The live revision as it is, the command overridden, the service's network and capacity.
    (req,) = one_off_tasks.requests
    svc = world.service()
    assert req["taskDefinition"] == svc["taskDefinition"] and len(world.revisions()) == revisions
    assert req["overrides"] == {"containerOverrides": [{"name": "api", "command": ["python", "manage.py", "check"]}]}
    assert req["networkConfiguration"]["awsvpcConfiguration"]["subnets"] == list(world.subnets)
    assert req["capacityProviderStrategy"] == svc["capacityProviderStrategy"]
    assert req["startedBy"] == "deployctl-task"


def test_task_run_from_an_earlier_release_and_as_json(world: Any, sim: Any, one_off_tasks: Any,
                                                      tmp_path: Path) -> None:
    project = _deployed(world, tmp_path, "v1", "v2")
    first = world.td_tags(f"{FAMILY_API}:1")["deployctl:release"]
    one_off_tasks.script(Script(exit_code=0, lines=("ok",)))
    r = cli(world.aws, project, "task", "run", "--env", "staging", "--release", first, "--json", "--", "true")

    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["schema"] == "deployctl.task/v1" and doc["exit_code"] == 0 and doc["release"] == first
    assert doc["task_definition"].endswith(f"{FAMILY_API}:1") and doc["command"] == ["true"]
    assert doc["log_stream"] == f"api/api/{doc['task_id']}"
    assert "ok" in r.stderr.splitlines()  # with --json the task's output goes to stderr
    assert one_off_tasks.requests[-1]["taskDefinition"].endswith(f"{FAMILY_API}:1")


def test_a_task_that_never_starts_exits_1_with_the_reason(world: Any, sim: Any, one_off_tasks: Any,
                                                          tmp_path: Path) -> None:
    project = _deployed(world, tmp_path)
    one_off_tasks.script(Script(fail_to_start="CannotPullContainerError: pull image manifest has been retried"))
    r = cli(world.aws, project, "task", "run", "--env", "staging", "--", "true")
    assert r.returncode == 1
    assert "stopped before api ran (TaskFailedToStart: CannotPullContainerError" in r.stderr


def test_bad_requests_exit_2_and_an_undeployed_service_exit_1(world: Any, sim: Any, one_off_tasks: Any,
                                                               tmp_path: Path) -> None:
    project = cli_project(tmp_path, base_config(world))
    r = cli(world.aws, project, "task", "run", "--env", "staging", "--", "true")
    assert r.returncode == 1 and "service api is not deployed in staging" in r.stderr
    r = cli(world.aws, project, "task", "run", "--env", "staging", "--service", "web", "--", "true")
    assert r.returncode == 2 and "no service 'web' in staging" in r.stderr
    r = cli(world.aws, project, "task", "run", "--env", "staging")
    assert r.returncode == 2
    assert one_off_tasks.requests == []


def test_ctrl_c_stops_the_task_and_exits_130(world: Any, sim: Any, one_off_tasks: Any, tmp_path: Path) -> None:
    project = _deployed(world, tmp_path)
    one_off_tasks.script(Script(exit_code=0, run_s=120, lines=("migrating...",)))
    environ = {**os.environ, **world.aws.env, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-m", "deployctl", "task", "run", "--env", "staging", "--",
                             "python", "manage.py", "migrate"], cwd=project, env=environ,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "migrating..."  # it runs and its output streams
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted: asked ECS to stop task" in err and "Traceback" not in err
    assert calls(sim, "StopTask") == 1
    (task,) = one_off_tasks.tasks.values()
    assert task.stop_code == "UserInitiated" and task.stopped_reason == "deployctl: interrupted"
