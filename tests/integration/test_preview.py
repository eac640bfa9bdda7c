"""Preview environments against moto server: deploy named previews, then `deployctl destroy` one.

The previews and a normal staging release are deployed by the real ECS target
(`deployctl.targets.ecs.deploy` with `DeployOptions(preview_name=…)`, inside the rollout
simulation). `deployctl run` has no `--name` flag yet, so the CLI is used for destroy only.
Destroy must remove exactly the named preview's services and task-definition revisions: the
other preview, the staging services and an untagged look-alike all survive.
"""

from __future__ import annotations

import json
import subprocess
import threading
import types
from pathlib import Path
from typing import Any

import pytest
import yaml

from deployctl.adapters.git import GitFacts
from deployctl.config import load_env, read
from deployctl.plan import make_plan
from deployctl.targets import DeployOptions
from tests.support import cli as in_process
from tests.support.aws_world import (  # noqa: F401 - re-exported for the modules built on these tests
    ACCOUNT,
    ALARM,
    CLUSTER,
    QUICK_PHASES,
    REGION,
    REPO,
    World,
    make_world,
)

ROOT = Path(__file__).resolve().parents[2]
SIM_PHASES = QUICK_PHASES
SHA = "89abcdef0123456789abcdef0123456789abcdef"


def deploy_yaml(world: World, *, load_balancer: bool = True) -> dict[str, Any]:
    env = {
        "target": "ecs",
        "cluster": CLUSTER,
        "network": {"subnets": list(world.subnets), "security_groups": [world.security_group]},
        "roles": {"execution": f"arn:aws:iam::{ACCOUNT}:role/chat-api-execution",
                  "task": f"arn:aws:iam::{ACCOUNT}:role/chat-api-task"},
    }
    api: dict[str, Any] = {
        "port": 8000, "cpu": 512, "memory": 1024,
        "health": {"path": "/health/ready", "start_period": "10s", "interval": "10s"},
        "secrets": {"OPENAI_API_KEY": "chat-api/openai-key", "DATABASE_URL": "ssm:/chat-api/database-url"},
        "count": 1,
    }
    if load_balancer:
        api["load_balancer"] = {"target_group": "chat-api-tg"}
    return {
        "version": 1, "app": "chat-api", "region": REGION,
        "image": {"repository": REPO},
        "services": {
            "api": api,
            "worker": {"command": ["python", "-m", "worker"], "cpu": 256, "memory": 512, "count": 1,
                       "secrets": {"OPENAI_API_KEY": "chat-api/openai-key"}, "after": ["api"]},
        },
        "deploy": {"alarms": [ALARM], "timeout": "60s", "poll_interval": "0.05s"},
        "environments": {
            "staging": {**env, "deploy_on": "main"},
            # previews have no load balancer of their own: the staging target group is staging's
            "preview": {**env, "preview": True, "services": {"api": {"load_balancer": None}}},
        },
    }


def write_project(tmp_path: Path, doc: dict[str, Any]) -> Path:
    """A git repository holding deploy.yaml (deployctl reads git facts for tags)."""
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "deploy.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=proj, check=True)
    subprocess.run([*git, "add", "-A"], cwd=proj, check=True)
    subprocess.run([*git, "commit", "-qm", "x"], cwd=proj, check=True)
    return proj


def deploy(proj: Path, env: str, image_ref: str, preview: str | None = None) -> list[str]:
    """The ECS target's deploy, as `deployctl run --env ENV [--name N] --image REF --only deploy` runs
    it; returns its log lines."""
    from deployctl.targets import ecs as ecs_target

    cfg = load_env(read(proj / "deploy.yaml", environ={}), env)
    plan = make_plan(cfg, GitFacts(sha=SHA, branch="main"), image_override=image_ref)
    lines: list[str] = []
    ctx = types.SimpleNamespace(log=lines.append, note=lambda *_: None, outputs={}, cancelled=threading.Event())
    options = DeployOptions(preview_name=preview, timeout=60.0, poll_interval=0.05, yes=True)
    try:
        ecs_target.deploy(plan, image_ref, ctx, options)
    except Exception as exc:
        raise AssertionError(f"deploy {env} {preview or ''} failed: {exc}\n" + "\n".join(lines)) from exc
    return lines


def cli(aws: Any, proj: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`deployctl ARGS` in `proj` with the moto server's environment, in this process."""
    return in_process.run(*args, cwd=proj, env=aws.env)


def test_destroy_removes_only_the_named_preview(world: World, tmp_path: Path) -> None:
    proj = write_project(tmp_path, deploy_yaml(world))
    ref = world.push("v1")
    deploy(proj, "staging", ref)
    deploy(proj, "preview", ref, preview="pr-1")
    deploy(proj, "preview", ref, preview="pr-2")
    # a look-alike by name only: same prefix, no deployctl:preview tag
    ecs = world.c("ecs")
    td = ecs.describe_task_definition(taskDefinition="chat-api-preview-pr-1-worker")["taskDefinition"][
        "taskDefinitionArn"]
    ecs.create_service(cluster=CLUSTER, serviceName="chat-api-preview-pr-1-hand-made", taskDefinition=td,
                       desiredCount=0)

    before = world.services()
    assert {n for n, s in before.items() if s == "ACTIVE"} == {
        "chat-api-staging-api", "chat-api-staging-worker", "chat-api-preview-pr-1-api", "chat-api-preview-pr-1-worker",
        "chat-api-preview-pr-2-api", "chat-api-preview-pr-2-worker", "chat-api-preview-pr-1-hand-made"}
    tags = ecs.describe_services(cluster=CLUSTER, services=["chat-api-preview-pr-1-api"], include=["TAGS"])
    assert {"key": "deployctl:preview", "value": "pr-1"} in tags["services"][0]["tags"]
    assert world.active_revisions("chat-api-preview-pr-1-api") and world.active_revisions("chat-api-preview-pr-2-api")

    dry = cli(world.aws, proj, "destroy", "--env", "preview", "--name", "pr-1", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would remove service chat-api-preview-pr-1-api" in dry.stdout
    assert world.services() == before, "--dry-run changes nothing"

    r = cli(world.aws, proj, "destroy", "--env", "preview", "--name", "pr-1", "--yes", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["services_deleted"] == ["chat-api-preview-pr-1-api", "chat-api-preview-pr-1-worker"]
    assert sorted(a.rsplit("/", 1)[1] for a in report["task_definitions_deregistered"]) == [
        "chat-api-preview-pr-1-api:1", "chat-api-preview-pr-1-worker:1"]
    assert report["skipped"] == ["service chat-api-preview-pr-1-hand-made: not tagged deployctl:preview=pr-1"]

    after = world.services()
    assert {n for n, s in after.items() if s == "ACTIVE"} == {
        "chat-api-staging-api", "chat-api-staging-worker", "chat-api-preview-pr-2-api",
        "chat-api-preview-pr-2-worker", "chat-api-preview-pr-1-hand-made"}
    assert world.active_revisions("chat-api-preview-pr-1-api") == []
    assert world.active_revisions("chat-api-preview-pr-1-worker") == []
    for family in ("chat-api-preview-pr-2-api", "chat-api-preview-pr-2-worker", "chat-api-staging-api",
                   "chat-api-staging-worker"):
        assert world.active_revisions(family), f"{family} must survive"

    again = cli(world.aws, proj, "destroy", "--env", "preview", "--name", "pr-1", "--yes")
    assert again.returncode == 0, again.stderr
    assert "nothing to remove" in again.stdout

    # Said as done (issue 16, item 6): services deleted, revisions deregistered and still there, INACTIVE.
    pr2 = [f"chat-api-preview-pr-2-{s}:1" for s in ("api", "worker")]
    gone = cli(world.aws, proj, "destroy", "--env", "preview", "--name", "pr-2", "--yes")
    assert gone.returncode == 0, gone.stderr
    assert "deleted service chat-api-preview-pr-2-api (scaled to 0 first)" in gone.stdout
    for label in pr2:
        assert f"deregistered task definition {label} (now INACTIVE)" in gone.stdout
        assert ecs.describe_task_definition(taskDefinition=label)["taskDefinition"]["status"] == "INACTIVE"
    assert "removed" not in gone.stdout


def test_destroy_refusals(world: World, tmp_path: Path) -> None:
    proj = write_project(tmp_path, deploy_yaml(world))
    r = cli(world.aws, proj, "destroy", "--env", "staging", "--name", "pr-1", "--yes")
    assert r.returncode == 2 and "not a preview environment" in r.stderr
    r = cli(world.aws, proj, "destroy", "--env", "preview", "--name", "PR_1", "--yes")
    assert r.returncode == 2 and "preview name 'PR_1' is not DNS-safe" in r.stderr
    r = cli(world.aws, proj, "destroy", "--env", "preview", "--yes")
    assert r.returncode == 2 and "--name" in r.stderr


def test_preview_names(tmp_path: Path) -> None:
    from deployctl import preview
    from deployctl.errors import UsageError

    proj = write_project(tmp_path, deploy_yaml(World(aws=None, subnets=("subnet-1",), security_group="sg-1")))
    cfg = load_env(read(proj / "deploy.yaml", environ={}), "preview")
    staging = load_env(read(proj / "deploy.yaml", environ={}), "staging")
    assert preview.check_name(cfg, "pr-42") == "pr-42"
    assert preview.service_names(cfg, "pr-42") == ["chat-api-preview-pr-42-api", "chat-api-preview-pr-42-worker"]
    assert preview.families(cfg, "pr-42") == ["chat-api-preview-pr-42-api", "chat-api-preview-pr-42-worker"]
    with pytest.raises(UsageError, match="--name is required"):
        preview.check_name(cfg, None)
    with pytest.raises(UsageError, match="only for preview environments"):
        preview.check_name(staging, "pr-1")
    assert preview.check_name(staging, None) is None
    assert preview.validate_name("a" * 20)
    for bad in ("a" * 21, "PR-1", "pr_1", "-pr", "pr-", "", "pr.1"):
        with pytest.raises(UsageError, match="preview name"):
            preview.validate_name(bad)


def test_run_with_name_deploys_a_preview_copy_through_the_cli(world: World, tmp_path: Path) -> None:
    proj = write_project(tmp_path, deploy_yaml(world))
    ref = world.push("v1")
    missing = cli(world.aws, proj, "run", "--env", "preview", "--image", ref, "--only", "deploy")
    assert missing.returncode == 2 and "--name is required" in missing.stderr
    wrong = cli(world.aws, proj, "run", "--env", "staging", "--name", "pr-9", "--image", ref, "--only", "deploy")
    assert wrong.returncode == 2 and "only for preview environments" in wrong.stderr

    r = cli(world.aws, proj, "run", "--env", "preview", "--name", "pr-9", "--image", ref, "--only", "deploy")
    assert r.returncode == 0, r.stdout + r.stderr
    services = world.services()
    assert services.get("chat-api-preview-pr-9-api") == "ACTIVE"
    assert services.get("chat-api-preview-pr-9-worker") == "ACTIVE"
    assert "chat-api-staging-api" not in services, "a preview run must not touch staging's services"
    tags = world.c("ecs").describe_services(cluster=CLUSTER, services=["chat-api-preview-pr-9-api"], include=["TAGS"])
    assert {"key": "deployctl:preview", "value": "pr-9"} in tags["services"][0]["tags"]


def test_previews_are_listed_and_each_has_its_status_and_history(world: World, tmp_path: Path) -> None:
    """Issue 16, item 7: `status`/`history --name`, and a way to list the live previews."""
    proj = write_project(tmp_path, deploy_yaml(world))
    ref = world.push("v1")
    deploy(proj, "preview", ref, preview="pr-1")
    deploy(proj, "preview", ref, preview="pr-7")

    listed = cli(world.aws, proj, "previews", "--env", "preview", "--json")
    assert listed.returncode == 0, listed.stderr
    doc = json.loads(listed.stdout)
    assert (doc["schema"], doc["env"], [p["name"] for p in doc["previews"]]) == (
        "deployctl.previews/v1", "preview", ["pr-1", "pr-7"])
    pr7 = doc["previews"][1]
    assert [s["service"] for s in pr7["services"]] == ["chat-api-preview-pr-7-api", "chat-api-preview-pr-7-worker"]
    assert pr7["services"][0]["task_definition"] == "chat-api-preview-pr-7-api:1" and pr7["release"]
    # `status` of a preview environment without --name lists them too, instead of "never deployed".
    plain = cli(world.aws, proj, "status", "--env", "preview")
    assert plain.returncode == 0, plain.stderr
    assert "2 live previews" in plain.stdout and "pr-7: release " in plain.stdout
    assert "does not exist" not in plain.stdout

    one = cli(world.aws, proj, "status", "--env", "preview", "--name", "pr-7", "--json")
    assert one.returncode == 0, one.stderr
    st = json.loads(one.stdout)
    assert st["schema"] == "deployctl.status/v1" and st["ok"] is True
    assert [s["ecs_service"] for s in st["services"]] == ["chat-api-preview-pr-7-api", "chat-api-preview-pr-7-worker"]
    assert st["current"]["id"] == pr7["release"]
    text = cli(world.aws, proj, "status", "--env", "preview", "--name", "pr-7")
    assert text.stdout.startswith("chat-api/preview preview pr-7 on cluster")

    hist = cli(world.aws, proj, "history", "--env", "preview", "--name", "pr-7", "--json")
    assert hist.returncode == 0, hist.stderr
    (release,) = json.loads(hist.stdout)["releases"]
    assert release["id"] == pr7["release"] and release["current"] is True
    assert release["services"]["api"]["task_definition"].endswith("chat-api-preview-pr-7-api:1")

    # Without --name, history says which names there are, and what it suggests works.
    nameless = cli(world.aws, proj, "history", "--env", "preview")
    assert nameless.returncode == 2
    assert "history needs --name (live previews: pr-1, pr-7)" in nameless.stderr
    assert "deployctl history --env preview --name pr-1" in nameless.stderr
    empty = cli(world.aws, proj, "history", "--env", "preview", "--name", "pr-9")
    assert empty.returncode == 0, empty.stderr
    assert "(deploy with `deployctl run --env preview --name pr-9`)" in empty.stdout
    # --name where there are no previews is refused, as for run.
    wrong = cli(world.aws, proj, "status", "--env", "staging", "--name", "pr-7")
    assert wrong.returncode == 2 and "--name is only for preview environments" in wrong.stderr

    # A destroyed preview is no longer listed.
    assert cli(world.aws, proj, "destroy", "--env", "preview", "--name", "pr-1", "--yes").returncode == 0
    after = json.loads(cli(world.aws, proj, "previews", "--env", "preview", "--json").stdout)
    assert [p["name"] for p in after["previews"]] == ["pr-7"]


def test_a_preview_rolls_back_on_its_own(world: World, tmp_path: Path) -> None:
    proj = write_project(tmp_path, deploy_yaml(world))
    ref1, ref2 = world.push("v1"), world.push("v2")
    deploy(proj, "preview", ref1, preview="pr-3")
    deploy(proj, "preview", ref2, preview="pr-3")
    deploy(proj, "preview", ref2, preview="pr-4")
    nameless = cli(world.aws, proj, "rollback", "--env", "preview", "--yes")
    assert nameless.returncode == 2 and "rollback needs --name (live previews: pr-3, pr-4)" in nameless.stderr

    r = cli(world.aws, proj, "rollback", "--env", "preview", "--name", "pr-3", "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "api: chat-api-preview-pr-3-api:2 → chat-api-preview-pr-3-api:1" in r.stdout
    running = world.services()
    ecs = world.c("ecs")
    svc = ecs.describe_services(cluster=CLUSTER, services=["chat-api-preview-pr-3-api"])["services"][0]
    assert svc["taskDefinition"].endswith("chat-api-preview-pr-3-api:1")
    other = ecs.describe_services(cluster=CLUSTER, services=["chat-api-preview-pr-4-api"])["services"][0]
    assert other["taskDefinition"].endswith("chat-api-preview-pr-4-api:1")  # pr-4 untouched (its only one)
    assert running["chat-api-preview-pr-4-api"] == "ACTIVE"
    hist = json.loads(cli(world.aws, proj, "history", "--env", "preview", "--name", "pr-3", "--json").stdout)
    assert [(r["kind"], r["current"]) for r in hist["releases"]] == [
        ("rollback", True), ("deploy", False), ("deploy", False)]


def test_destroy_removes_the_previews_scalable_targets_and_only_them(world: World, tmp_path: Path) -> None:
    doc = deploy_yaml(world)
    doc["services"]["api"]["autoscaling"] = {"min": 1, "max": 3, "target_cpu": 60}
    proj = write_project(tmp_path, doc)
    ref = world.push("v1")
    deploy(proj, "staging", ref)
    deploy(proj, "preview", ref, preview="pr-7")
    aas = world.c("application-autoscaling")

    def targets() -> set[str]:
        found = aas.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"]
        return {t["ResourceId"] for t in found}

    def policies(rid: str) -> list[str]:
        return [p["PolicyName"] for p in aas.describe_scaling_policies(
            ServiceNamespace="ecs", ResourceId=rid)["ScalingPolicies"]]

    preview_rid = f"service/{CLUSTER}/chat-api-preview-pr-7-api"
    staging_rid = f"service/{CLUSTER}/chat-api-staging-api"
    assert {preview_rid, staging_rid} <= targets() and policies(preview_rid)

    r = cli(world.aws, proj, "destroy", "--env", "preview", "--name", "pr-7", "--yes")

    assert r.returncode == 0, r.stderr
    assert f"scalable target {preview_rid} and its scaling policies" in r.stdout
    assert preview_rid not in targets() and policies(preview_rid) == []
    assert staging_rid in targets() and policies(staging_rid)  # staging keeps its scaling
