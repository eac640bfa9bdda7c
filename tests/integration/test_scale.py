"""`deployctl scale` against the moto server with the ECS rollout simulation: the real CLI in a
subprocess, the service deployed first by the ECS target as `run` deploys it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from deployctl import lock
from deployctl.adapters import aws
from tests.integration.test_ecs_deploy import calls, deploy, load
from tests.support.aws_world import API, REGION, World, base_config


def _scale(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "deployctl", "scale", "-f", str(tmp_path / "deploy.yaml"),
                           "--env", "staging", *args], capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


def _deployed(world: World, tmp_path: Path, **staging: Any) -> None:
    doc = base_config(world)
    doc["environments"]["staging"].update(staging)
    cfg = load(tmp_path, doc)
    res = deploy(cfg, world.push("v1"))
    assert res.exit_code == 0, res.text


def test_scale_sets_the_count_and_history_shows_it(world: World, sim: Any, tmp_path: Path) -> None:
    _deployed(world, tmp_path)
    before = world.service()
    updates = calls(sim, "UpdateService")

    res = _scale(tmp_path, "api=3", "--yes", "--json")

    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["schema"] == "deployctl.scale/v1" and doc["done"] is True
    assert doc["services"] == {"api": {"ecs_service": API, "before": 2, "after": 3}}
    assert "api (chat-api-staging-api): 2 → 3 tasks" in res.stderr
    assert "deploy lock of chat-api/staging taken" in res.stderr
    svc = world.service()
    assert svc["desiredCount"] == 3 and calls(sim, "UpdateService") == updates + 1
    # Only the count: the deployment configuration and the revision stay.
    assert svc["deploymentConfiguration"] == before["deploymentConfiguration"]
    assert svc["taskDefinition"] == before["taskDefinition"]

    history = subprocess.run([sys.executable, "-m", "deployctl", "history", "-f", str(tmp_path / "deploy.yaml"),
                              "--env", "staging", "--json"], capture_output=True, text=True, timeout=120)
    assert history.returncode == 0, history.stderr
    entries = json.loads(history.stdout)["releases"]
    assert [e["kind"] for e in entries] == ["scale", "deploy"]
    assert entries[0]["detail"] == "api 2 → 3 tasks" and entries[0]["who"].startswith("tester@")
    assert entries[0]["outcome"] == "succeeded" and entries[1]["current"] is True
    # The lock was let go.
    assert lock.LockTable(aws.clients(REGION).client("dynamodb")).read(lock.lock_key("chat-api", "staging")) is None


def test_guardrails_refuse_and_nothing_changes(world: World, sim: Any, tmp_path: Path) -> None:
    _deployed(world, tmp_path, guardrails={"max_tasks": 3})
    updates = calls(sim, "UpdateService")

    res = _scale(tmp_path, "api=4", "--yes")

    assert res.returncode == 2, res.stdout + res.stderr
    assert "scale refused by guardrails: 4 tasks is over the limit max_tasks 3" in res.stderr
    assert world.service()["desiredCount"] == 2 and calls(sim, "UpdateService") == updates


def test_asks_first_and_without_a_terminal_needs_yes(world: World, sim: Any, tmp_path: Path) -> None:
    _deployed(world, tmp_path)

    res = _scale(tmp_path, "api=1")

    assert res.returncode == 2
    assert "needs a confirmation and there is no terminal" in res.stderr
    assert world.service()["desiredCount"] == 2


def test_a_held_deploy_lock_stops_it(world: World, sim: Any, tmp_path: Path) -> None:
    _deployed(world, tmp_path)
    table = lock.LockTable(aws.clients(REGION).client("dynamodb"))

    with lock.hold(table, "chat-api", "staging", command="deployctl run --env staging"):
        res = _scale(tmp_path, "api=1", "--yes")

    assert res.returncode == 1, res.stdout + res.stderr
    assert "chat-api/staging is locked by another deploy" in res.stderr
    assert world.service()["desiredCount"] == 2


def test_bad_arguments_are_usage_errors(world: World, sim: Any, tmp_path: Path) -> None:
    doc = base_config(world)
    doc["services"]["api"]["autoscaling"] = {"min": 1, "max": 4}
    (tmp_path / "deploy.yaml").write_text(yaml.safe_dump(doc))
    for args, says in ((["apu=2"], "'apu' is not a service of staging"),
                       (["api=two"], "api=two: the count must be a whole number from 0 to 1000"),
                       (["api=-1"], "api=-1: the count must be a whole number from 0 to 1000"),
                       (["api"], "'api' is not SERVICE=N"),
                       (["api=9"], "api=9 is outside its autoscaling range 1..4")):
        res = _scale(tmp_path, *args, "--yes")
        assert res.returncode == 2, (args, res.stderr)
        assert says in res.stderr, res.stderr
    assert calls(sim, "UpdateService") == 0


def test_policy_covers_scale_diff_and_history(world: World, sim: Any, tmp_path: Path) -> None:
    # The CI role's generated policy (`iam-policy`) allows every call these commands make.
    from deployctl.config import load_env, read
    from tests.integration.test_iam_coverage import denied, seen
    from tests.integration.test_preview import cli, deploy_yaml, write_project

    proj = write_project(tmp_path, deploy_yaml(world))
    ref = world.push("v1")
    assert cli(world.aws, proj, "run", "--env", "staging", "--image", ref, "--only", "deploy").returncode == 0
    policy = json.loads(cli(world.aws, proj, "iam-policy", "--env", "staging", "--json").stdout)["policy"]
    cfg = load_env(read(proj / "deploy.yaml", environ={}), "staging")

    start = len(sim.calls)
    for args in (("scale", "--env", "staging", "api=2", "--yes"), ("diff", "--env", "staging"),
                 ("history", "--env", "staging")):
        r = cli(world.aws, proj, *args)
        assert r.returncode == 0, r.stdout + r.stderr
    calls = sim.calls[start:]
    assert {"ecs:UpdateService", "ecs:TagResource", "ecs:DescribeServices",
            "elasticloadbalancing:DescribeTargetGroups"} <= seen(calls), seen(calls)
    assert denied(policy, calls, cfg, [world.secret_arn]) == []
