"""The `--json` contract: every command that has `--json` prints one JSON object named by `schema`.

The commands are enumerated from the typer app itself, so a new command with a `--json` option
and no case here fails `test_every_json_command_has_a_case`; each case runs the real command (in
this process, against moto with the ECS rollout simulation) after the state it needs (a deploy
to roll back, a preview to destroy, monitoring to apply).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.main import get_command

from deployctl.cli import app
from tests.integration.conftest import git
from tests.support.aws_world import RELEASE_PHASES, World
from tests.support.release_project import Project, project_config

SIM_PHASES = RELEASE_PHASES
SCHEMA = re.compile(r"^deployctl\.[a-z][a-z-]*/v[1-9][0-9]*$")


def json_commands() -> list[str]:
    """Every command of the CLI (`monitor apply` for a sub-command) that has a --json option."""
    found: list[str] = []

    # Duck-typed: typer ships its own copy of click, so click's classes are not these.
    def walk(cmd: Any, path: tuple[str, ...]) -> None:
        subs = getattr(cmd, "commands", None)
        if subs is not None:
            for name, sub in sorted(subs.items()):
                walk(sub, (*path, name))
        elif any("--json" in getattr(p, "opts", ()) for p in cmd.params):
            found.append(" ".join(path))

    walk(get_command(app), ())
    return found


@pytest.fixture
def json_project(world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Project:
    """The release tests' chat-api project (staging, prod promoted from it) plus monitoring and a
    preview environment, committed."""
    from tests.support.aws_world import PROD_CLUSTER

    world.c("ecs").create_cluster(clusterName=PROD_CLUSTER, capacityProviders=["FARGATE", "FARGATE_SPOT"])
    doc = project_config(world)
    doc["monitoring"] = {"load_balancer": "chat-api", "error_rate": 5, "latency": {"p99": "10s"}, "dashboard": True}
    staging = doc["environments"]["staging"]
    doc["environments"]["preview"] = {**json.loads(json.dumps(staging)), "preview": True,
                                      "services": {"api": {"load_balancer": None, "count": 1}}}
    doc["environments"]["dev"] = {"target": "docker", "monitoring": None}  # for `down`
    path = tmp_path / "app"
    path.mkdir()
    (path / "deploy.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "app")
    return Project(path, world, capsys)


def _deployed(p: Project, *tags: str) -> None:
    for tag in tags:
        p.deployed("staging", tag)


def _preview(p: Project) -> None:
    res = p.cli("run", "-f", p.file, "--env", "preview", "--name", "pr-1", "--image", p.world.push("v1"))
    assert res.code == 0, res.text


def _logged(p: Project) -> None:
    """A deploy, and one line its api container wrote (where the awslogs driver would)."""
    import time

    _deployed(p, "v1")
    logs = p.world.c("logs")
    logs.create_log_group(logGroupName="/deployctl/chat-api/staging")
    stream = "chat-api-staging-api/api/0123456789abcdef"
    logs.create_log_stream(logGroupName="/deployctl/chat-api/staging", logStreamName=stream)
    logs.put_log_events(logGroupName="/deployctl/chat-api/staging", logStreamName=stream,
                        logEvents=[{"timestamp": int(time.time() * 1000), "message": "ready"}])


def _stopped_by_cap(p: Project) -> None:
    """A cost cap that stops the api, deployed; then the stop (simulated: moto runs no alarm actions,
    so the test sets the desired count to 0 as Application Auto Scaling would)."""
    from tests.support.aws_world import API, CLUSTER

    doc = yaml.safe_load(Path(p.file).read_text())
    doc["monitoring"]["tokens"] = {"namespace": "ChatApi/LLM", "hourly_cap": 2000000, "service": "api"}
    doc["monitoring"]["cost_cap"] = {"notify": ["oncall@example.com"], "on_cap": "stop", "services": ["api"]}
    Path(p.file).write_text(yaml.safe_dump(doc, sort_keys=False))
    git(Path(p.file).parent, "commit", "-qam", "cost cap")
    _deployed(p, "v1")
    p.world.c("ecs").update_service(cluster=CLUSTER, service=API, desiredCount=0)


def _existing_shared(p: Project) -> None:
    """staging and prod share roles and a target group the world made by hand: bootstrap creates
    only what one environment owns (render.cfn.check_owned), so they are listed as existing."""
    doc = yaml.safe_load(Path(p.file).read_text())
    doc["bootstrap"] = {"existing": ["roles", "target_groups"]}
    Path(p.file).write_text(yaml.safe_dump(doc, sort_keys=False))


# command → (its schema, what to do first, its arguments after `-f FILE`)
CASES: dict[str, tuple[str, Callable[[Project], Any], list[str]]] = {
    "config": ("deployctl.config/v1", lambda p: None, ["--env", "staging"]),
    "plan": ("deployctl.plan/v1", lambda p: None, ["--env", "staging"]),
    "run": ("deployctl.run-report/v1", lambda p: None, ["--env", "staging", "--image", "{v1}"]),
    "promote": ("deployctl.run-report/v1", lambda p: _deployed(p, "v1"), ["staging", "prod", "--yes"]),
    "rollback": ("deployctl.run-report/v1", lambda p: _deployed(p, "v1", "v2"), ["--env", "staging", "--yes"]),
    "status": ("deployctl.status/v1", lambda p: _deployed(p, "v1"), ["--env", "staging"]),
    "history": ("deployctl.history/v1", lambda p: _deployed(p, "v1"), ["--env", "staging"]),
    "iam-policy": ("deployctl.iam/v1", lambda p: None, ["--env", "staging"]),
    "destroy": ("deployctl.destroy/v1", _preview, ["--env", "preview", "--name", "pr-1", "--yes"]),
    "monitor apply": ("deployctl.monitor-apply/v1", lambda p: None, ["--env", "staging"]),
    "metrics": ("deployctl.metrics/v1", lambda p: None, ["--env", "staging"]),
    "diff": ("deployctl.diff/v1", lambda p: _deployed(p, "v1"), ["--env", "staging"]),
    "scale": ("deployctl.scale/v1", lambda p: _deployed(p, "v1"), ["--env", "staging", "api=3", "--yes"]),
    "bootstrap": ("deployctl.bootstrap-plan/v1", _existing_shared, ["--env", "staging", "--plan"]),
    "previews": ("deployctl.previews/v1", _preview, ["--env", "preview"]),
    "logs": ("deployctl.logs/v1", _logged, ["--env", "staging", "--since", "1h"]),
    "down": ("deployctl.down/v1", lambda p: None, ["--env", "dev", "--dry-run"]),
    "resume": ("deployctl.resume/v1", _stopped_by_cap, ["--env", "staging", "--yes"]),
    # the one-off task SIMULATION is installed for this case (tests/simulation/one_off_tasks.py)
    "task run": ("deployctl.task/v1", lambda p: _deployed(p, "v1"), ["--env", "staging", "--service", "api", "--",
                                                                    "echo", "ok"]),
}


def test_every_json_command_has_a_case() -> None:
    commands = json_commands()
    assert {"plan", "run", "monitor apply", "metrics"} <= set(commands), commands  # the walk sees them
    missing = sorted(set(commands) - set(CASES))
    assert not missing, f"commands with --json but no case in this contract test: {missing}"
    assert not set(CASES) - set(commands), "cases for commands that no longer have --json"


@pytest.mark.parametrize("command", json_commands())
def test_json_output_is_one_object_named_by_its_schema(command: str, json_project: Project, sim: Any,
                                                       request: pytest.FixtureRequest) -> None:
    schema, prepare, args = CASES[command]
    if command == "task run":
        request.getfixturevalue("one_off_tasks")
    prepare(json_project)
    args = [a.replace("{v1}", json_project.world.push("v1")) if a == "{v1}" else a for a in args]
    cut = args.index("--") if "--" in args else len(args)  # options before a `--` command
    res = json_project.cli(*command.split(), "-f", json_project.file, *args[:cut], "--json", *args[cut:])
    assert res.code == 0, res.text
    data = json.loads(res.out)  # the whole of stdout is one JSON document
    assert isinstance(data, dict)
    assert SCHEMA.match(str(data.get("schema"))), data.get("schema")
    assert data["schema"] == schema
    if schema == "deployctl.run-report/v1":
        assert data["schema_version"] == 1  # kept next to schema for existing readers
