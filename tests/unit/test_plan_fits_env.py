"""`deployctl plan` says what the matching command really does, for every kind of environment.

- `plan --image REF` lists what `run --image REF` runs (no build, no push) and names REF's tag;
- every alarm the UpdateService request carries is shown per service, human and --json;
- `plan --env preview --name N` shows the preview copy's own ECS names;
- a docker-target environment shows no ECS columns or Fargate cost;
- a promote_from environment shows the promotion, not build stages that `run` refuses.

Run through the real CLI on the reference deploy.yaml; nothing touches Docker or AWS.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from deployctl.app.run import select_stages
from deployctl.config import load_env, read
from tests.support import cli as in_process

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "127.0.0.1:5000/chat-api:v9"
DIGEST = "sha256:" + "ab" * 32


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GITHUB_ACTIONS", "COLUMNS")}
    return in_process.run(*args, cwd=ROOT, env=env, replace_env=True)


def plan_json(*args: str) -> dict[str, Any]:
    res = cli("plan", *args, "--json")
    assert res.returncode == 0, res.stderr
    return dict(json.loads(res.stdout))


def test_plan_with_image_lists_the_stages_run_with_image_runs() -> None:
    data = plan_json("--env", "staging", "--image", IMAGE)
    cfg = load_env(read(ROOT / "deploy.yaml", environ={}), "staging")
    assert [s["name"] for s in data["stages"]] == list(select_stages(cfg, image=IMAGE))
    assert [s["name"] for s in data["stages"]] == ["lint", "test", "deploy"]
    # deploy still waits for the checks, as `run --image` does
    assert data["stages"][-1]["needs"] == ["lint", "test"]
    assert data["image"] == {"registry": "127.0.0.1:5000", "repository": "chat-api", "tag": "v9", "ref": IMAGE}

    by_digest = f"127.0.0.1:5000/chat-api@{DIGEST}"
    data = plan_json("--env", "staging", "--image", by_digest)
    assert data["image"] == {"registry": "127.0.0.1:5000", "repository": "chat-api", "tag": None,
                             "ref": by_digest}

    human = cli("plan", "--env", "staging", "--image", IMAGE)
    assert human.returncode == 0, human.stderr
    stage_rows = [line.split("│")[1].strip() for line in human.stdout.splitlines() if line.startswith("│")]
    assert "build" not in stage_rows and "push" not in stage_rows
    assert "deploy" in stage_rows


def test_plan_shows_every_alarm_the_service_request_carries() -> None:
    data = plan_json("--env", "staging")
    for name, svc in data["services"].items():
        carried = svc["update_service"]["deploymentConfiguration"]["alarms"]["alarmNames"]
        assert svc["deployment_alarms"] == carried, name
    api = data["services"]["api"]["deployment_alarms"]
    assert api == ["chat-api-5xx", "chat-api-staging-api-latency-p99", "chat-api-staging-api-error-rate"]
    assert data["services"]["worker"]["deployment_alarms"] == ["chat-api-5xx"]
    assert data["alarms"] == api  # every alarm that can roll any service back

    human = cli("plan", "--env", "staging")
    assert human.returncode == 0, human.stderr
    lines = human.stdout.splitlines()
    assert "  api: " + ", ".join(api) in lines
    assert "  worker: chat-api-5xx" in lines


def test_plan_of_a_preview_copy_names_the_copy() -> None:
    data = plan_json("--env", "preview", "--name", "pr-7")
    assert data["preview"] == "pr-7"
    assert data["services"]["api"]["ecs_service"] == "chat-api-preview-pr-7-api"
    assert data["services"]["api"]["create_service"]["serviceName"] == "chat-api-preview-pr-7-api"
    assert data["services"]["worker"]["family"] == "chat-api-preview-pr-7-worker"

    human = cli("plan", "--env", "preview", "--name", "pr-7")
    assert human.returncode == 0, human.stderr
    assert "chat-api-preview-pr-7-api" in human.stdout
    assert "chat-api-preview-api " not in human.stdout

    wrong = cli("plan", "--env", "staging", "--name", "pr-7")
    assert wrong.returncode == 2
    assert "--name is only for preview environments" in wrong.stderr
    bad = cli("plan", "--env", "preview", "--name", "PR 7!")
    assert bad.returncode == 2, bad.stderr


def test_plan_of_a_docker_environment_shows_no_ecs_or_fargate() -> None:
    human = cli("plan", "--env", "dev")
    assert human.returncode == 0, human.stderr
    assert "ecs service" not in human.stdout
    assert "estimated Fargate cost" not in human.stdout and "$/month" not in human.stdout
    assert "local Docker engine" in human.stdout
    data = plan_json("--env", "dev")
    assert data["cost"] is None
    assert data["alarms"] == []
    assert data["services"]["api"] == {"wave": 0, "count": 1, "port": 8000, "local_port": 8080}


def test_plan_of_a_promoted_environment_shows_the_promotion() -> None:
    data = plan_json("--env", "prod")
    assert [s["name"] for s in data["stages"]] == ["promote", "deploy"]
    assert data["promote_from"] == "staging"
    assert data["image"]["tag"] is None  # prod never gets this commit's tag: it runs staging's digest
    human = cli("plan", "--env", "prod")
    assert human.returncode == 0, human.stderr
    assert "deployctl promote staging prod" in human.stdout
    stage_rows = [line.split("│")[1].strip() for line in human.stdout.splitlines() if line.startswith("│")]
    assert "build" not in stage_rows and "push" not in stage_rows and "promote" in stage_rows
    refused = cli("plan", "--env", "prod", "--image", IMAGE)
    assert refused.returncode == 2
    assert "promotion" in refused.stderr
