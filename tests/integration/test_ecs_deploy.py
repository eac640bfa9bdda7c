"""The ECS target against a real moto server over HTTP, with the rollout SIMULATION installed.

Each test builds an AWS world in moto (cluster, ECR image, secrets, SSM parameter, ALB + target
group, IAM roles, a deployment alarm), then runs the ECS target's `deploy` inside the real stage
engine (`run_jobs`), exactly as `deployctl run` calls it, and checks the outcome, the log, the
API calls the simulation recorded and what ended up in ECS.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from deployctl.adapters.git import GitFacts
from deployctl.config import load_env, read
from deployctl.config.model import ResolvedConfig
from deployctl.pipeline import Job, run_jobs
from deployctl.plan import make_plan
from deployctl.render import ecs as render_ecs
from deployctl.targets import DeployOptions
from deployctl.targets import ecs as ecs_target
from deployctl.ui import BaseReporter
from tests.support.aws_world import (  # noqa: F401 - re-exported for the modules built on these tests
    ACCOUNT,
    ALARM,
    API,
    CLUSTER,
    FAMILY_API,
    REGION,
    REPO,
    WORKER,
    World,
    base_config,
    ecr_push,
    make_world,
)
from tests.support.mid_rollout import calls, calls_after, mid_rollout, when  # noqa: F401 - re-exported

SHA = "0123456789abcdef0123456789abcdef01234567"


def load(tmp_path: Path, doc: dict[str, Any]) -> ResolvedConfig:
    path = tmp_path / "deploy.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return load_env(read(path, environ={}), "staging")


# ---------------------------------------------------------------------------------- running


class Lines(BaseReporter):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def stage_line(self, name: str, line: str) -> None:
        self.lines.append(line)


@dataclass
class Result:
    exit_code: int
    status: str
    message: str
    lines: list[str]
    outputs: dict[str, str]

    @property
    def text(self) -> str:
        """What a person reads: the deploy's log, then its failure block (the diagnosis and the
        app's last lines are said there, once)."""
        return "\n".join([*self.lines, self.message])


def deploy(cfg: ResolvedConfig, image_ref: str, *, handle_signals: bool = False,
           run_wave: ecs_target.WaveRunner | None = None, **opts: Any) -> Result:
    opts.setdefault("poll_interval", 0.05)
    opts.setdefault("timeout", 30.0)
    options = DeployOptions(**opts)
    plan = make_plan(cfg, GitFacts(sha=SHA, branch="main"), image_override=image_ref)
    reporter = Lines()
    report = run_jobs([Job("deploy", (), lambda ctx: ecs_target.deploy(plan, image_ref, ctx, options,
                                                                       run_wave=run_wave))],
                      reporter, handle_signals=handle_signals)
    record = report.stage("deploy")
    return Result(report.exit_code, report.status, record.message, reporter.lines, dict(report.outputs))


def first_deploy(world: World, tmp_path: Path, doc: dict[str, Any] | None = None) -> tuple[ResolvedConfig, str]:
    cfg = load(tmp_path, doc or base_config(world))
    ref = world.push("v1")
    res = deploy(cfg, ref)
    assert res.exit_code == 0, res.text
    return cfg, ref


# ---------------------------------------------------------------------------------- tests


def test_first_deploy_creates_the_service_and_succeeds(world: World, sim: Any, tmp_path: Path) -> None:
    cfg = load(tmp_path, base_config(world))
    ref = world.push("v1")
    res = deploy(cfg, ref)

    assert res.exit_code == 0, res.text
    assert calls(sim, "CreateService") == 1 and calls(sim, "UpdateService") == 0
    svc = world.service()
    assert svc["taskDefinition"].endswith(f"{FAMILY_API}:1")
    (dep,) = svc["deployments"]
    assert dep["rolloutState"] == "COMPLETED" and dep["runningCount"] == 2
    tags = world.td_tags(svc["taskDefinition"])
    assert tags["deployctl:release"] == res.outputs["release"]
    assert tags["deployctl:git-sha"] == SHA and tags["deployctl:image-digest"] == ref.split("@")[1]
    assert tags["deployctl:outcome"] == "succeeded" and tags["deployctl:actor"] == f"tester@{socket.gethostname()}"
    assert tags["deployctl:service"] == "api" and tags["deployctl:env"] == "staging"
    # Full secret ARN (with the random suffix) from preflight, never the value.
    td = world.c("ecs").describe_task_definition(taskDefinition=svc["taskDefinition"])["taskDefinition"]
    secrets = {s["name"]: s["valueFrom"] for s in td["containerDefinitions"][0]["secrets"]}
    prefix = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:chat-api/openai-key-"
    assert secrets["OPENAI_API_KEY"].startswith(prefix)
    assert "sk-never-printed" not in res.text and "postgres://" not in res.text
    assert "succeeded" in res.text and "preflight: ok" in res.text
    # The watcher logged events and target health of the new tasks.
    assert "event: (service chat-api-staging-api) has started 2 tasks" in res.text
    assert "healthy" in res.text


def test_update_rolls_out_a_new_revision(world: World, sim: Any, tmp_path: Path) -> None:
    cfg, _ = first_deploy(world, tmp_path)
    ref2 = world.push("v2")
    res = deploy(cfg, ref2)

    assert res.exit_code == 0, res.text
    svc = world.service()
    assert svc["taskDefinition"].endswith(f"{FAMILY_API}:2")
    assert len(svc["deployments"]) == 1 and svc["deployments"][0]["rolloutState"] == "COMPLETED"
    assert calls(sim, "UpdateService") == 1
    assert "task definition changed (api.image)" in res.text
    # Success was reported only after the simulated deployment completed.
    ours = [o for o in sim.outcomes if o.service == API][-1]
    assert ours.rollout_state == "COMPLETED"


def test_identical_redeploy_is_a_no_op(world: World, sim: Any, tmp_path: Path) -> None:
    cfg, ref = first_deploy(world, tmp_path)
    registers, updates = calls(sim, "RegisterTaskDefinition"), calls(sim, "UpdateService")
    res = deploy(cfg, ref)

    assert res.exit_code == 0, res.text
    assert calls(sim, "RegisterTaskDefinition") == registers
    assert calls(sim, "UpdateService") == updates == 0
    assert len(world.revisions()) == 1
    assert "no change" in res.text


def test_force_redeploys_an_identical_release(world: World, sim: Any, tmp_path: Path) -> None:
    cfg, ref = first_deploy(world, tmp_path)
    res = deploy(cfg, ref, force=True)

    assert res.exit_code == 0, res.text
    assert len(world.revisions()) == 2 and calls(sim, "UpdateService") == 1
    assert world.service()["taskDefinition"].endswith(":2")


def test_tasks_fail_to_start_circuit_breaker_rolls_back_exit_1(world: World, sim: Any, tmp_path: Path) -> None:
    sim.script(API, "success", "tasks_fail_to_start", cluster=CLUSTER, failure="image")
    cfg, _ = first_deploy(world, tmp_path)
    res = deploy(cfg, world.push("v2"))

    assert res.exit_code == 1 and res.status == "failed"
    assert f"rolled back to {FAMILY_API}:1" in res.message
    assert "circuit breaker" in res.message
    svc = world.service()
    assert svc["taskDefinition"].endswith(f"{FAMILY_API}:1")  # stable on the OLD revision: still a failure
    assert world.td_tags(world.revisions()[-1])["deployctl:outcome"] == "rolled-back"
    # Stopped tasks were shown with their reason, and the diagnosis names the cause.
    assert "TaskFailedToStart" in res.text and "CannotPullContainerError" in res.text
    assert "likely cause" in res.text and "ecr:BatchGetImage" in res.text
    # ECS rolled back by itself: deployctl did not issue a second update.
    assert calls(sim, "UpdateService") == 1
    # Nothing was deregistered.
    assert calls(sim, "DeregisterTaskDefinition") == 0


def test_secrets_failure_is_diagnosed(world: World, sim: Any, tmp_path: Path) -> None:
    sim.script(API, "success", "tasks_fail_to_start", cluster=CLUSTER, failure="secrets")
    cfg, _ = first_deploy(world, tmp_path)
    res = deploy(cfg, world.push("v2"))

    assert res.exit_code == 1 and "rolled back to" in res.message
    assert "ResourceInitializationError" in res.text
    assert "Secrets Manager GetSecretValue permission" in res.text and "services.api.secrets" in res.text


def test_breaker_without_rollback_deployctl_rolls_back(world: World, sim: Any, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # A service whose circuit breaker stops a bad deployment but does not roll it back.
    original = render_ecs.deployment_configuration

    def no_ecs_rollback(*args: Any, **kwargs: Any) -> dict[str, object]:
        conf = original(*args, **kwargs)
        conf["deploymentCircuitBreaker"] = {"enable": True, "rollback": False}
        conf["alarms"] = {"alarmNames": [], "enable": False, "rollback": False}
        return conf

    monkeypatch.setattr(render_ecs, "deployment_configuration", no_ecs_rollback)
    sim.script(API, "success", "crash", "success", cluster=CLUSTER)
    cfg, _ = first_deploy(world, tmp_path)
    res = deploy(cfg, world.push("v2"))

    assert res.exit_code == 1, res.text
    assert "did not roll back" in res.message
    assert f"deployctl rolled back to {FAMILY_API}:1" in res.message
    assert calls(sim, "UpdateService") == 2  # ours, then deployctl's rollback
    svc = world.service()
    assert svc["taskDefinition"].endswith(f"{FAMILY_API}:1")
    (dep,) = svc["deployments"]
    assert dep["rolloutState"] == "COMPLETED" and dep["runningCount"] == 2  # the rollback was watched to the end
    assert "exit 1" in res.text and "aws logs tail /deployctl/chat-api/staging" in res.text
    assert world.td_tags(world.revisions()[-1])["deployctl:outcome"] == "rolled-back"


def test_no_rollback_flag_leaves_the_failed_revision(world: World, sim: Any, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    original = render_ecs.deployment_configuration

    def no_ecs_rollback(*args: Any, **kwargs: Any) -> dict[str, object]:
        conf = original(*args, **kwargs)
        conf["deploymentCircuitBreaker"] = {"enable": True, "rollback": False}
        return conf

    monkeypatch.setattr(render_ecs, "deployment_configuration", no_ecs_rollback)
    sim.script(API, "success", "oom", "success", cluster=CLUSTER)
    cfg, _ = first_deploy(world, tmp_path)
    res = deploy(cfg, world.push("v2"), no_rollback=True)

    assert res.exit_code == 1
    assert "--no-rollback" in res.message
    assert calls(sim, "UpdateService") == 1
    assert world.service()["deployments"][0]["rolloutState"] == "FAILED"
    assert "out of memory" in res.text and "services.api.memory (now 2048 MiB)" in res.text


def test_deployment_alarm_during_rollout_rolls_back(world: World, sim: Any, tmp_path: Path) -> None:
    cfg, _ = first_deploy(world, tmp_path)
    # The new release rolls out slowly enough for the alarm to fire mid-rollout.
    sim.script(API, sim.scenario("success", start_s=0.6, healthy_s=0.6), cluster=CLUSTER)
    ref2 = world.push("v2")
    started = mid_rollout(sim, lambda: world.set_alarm("ALARM"))
    res = deploy(cfg, ref2)
    started.join()

    assert res.exit_code == 1, res.text
    assert f"rolled back to {FAMILY_API}:1" in res.message and "alarm" in res.message
    assert f"alarm {ALARM}: OK → ALARM" in res.text
    assert world.service()["taskDefinition"].endswith(":1")
    assert "went into ALARM" in res.text


def test_unhealthy_targets_roll_back(world: World, sim: Any, tmp_path: Path) -> None:
    # Unhealthy targets stay registered a while before ECS replaces their tasks.
    sim.script(API, "success", sim.scenario("unhealthy_targets", drain_s=0.5), cluster=CLUSTER)
    cfg, _ = first_deploy(world, tmp_path)
    res = deploy(cfg, world.push("v2"))

    assert res.exit_code == 1
    assert f"rolled back to {FAMILY_API}:1" in res.message
    # Why the targets were unhealthy is shown: ECS's own event with the health-check codes. (The
    # target-health read itself now comes after the verdict, when the targets have drained: polls
    # near the end are 2 s apart and spend the whole call budget; docs/how-deploys-work.md.)
    assert "is unhealthy in" in res.text and "Health checks failed with these codes" in res.text
    assert "Task failed ELB health checks" in res.text
    assert "load balancer's health checks failed" in res.text and "start_period" in res.text


def test_timeout_makes_deployctl_roll_back(world: World, sim: Any, tmp_path: Path) -> None:
    doc = base_config(world)
    doc["deploy"]["circuit_breaker"] = False
    # The rollback's deployment completes at once in simulated time: deployctl's own rollback has
    # 3 s of real time, which a loaded machine (the suite runs in parallel) can use up in polls.
    instant = sim.scenario("success", start_s=0, healthy_s=0, drain_s=0)
    sim.script(API, "success", sim.scenario("stall", stuck="health"), instant, cluster=CLUSTER)
    cfg, _ = first_deploy(world, tmp_path, doc)
    t0 = time.monotonic()
    # deployctl's own rollback gets half the timeout more (docs/timeouts.md): 3 s here.
    res = deploy(cfg, world.push("v2"), timeout=6)

    assert res.exit_code == 1, res.text
    assert "timed out after 6s" in res.message
    assert f"deployctl rolled back to {FAMILY_API}:1" in res.message
    assert world.service()["taskDefinition"].endswith(":1")
    assert time.monotonic() - t0 < 30  # ended by its timeout, not by a hang (generous: a loaded machine)
    assert "likely cause" in res.text


def test_throttled_describe_services_is_survived(world: World, sim: Any, tmp_path: Path) -> None:
    cfg, _ = first_deploy(world, tmp_path)
    ref2 = world.push("v2")
    t = mid_rollout(sim, lambda: sim.throttle("DescribeServices", times=4))
    res = deploy(cfg, ref2)
    t.join()

    assert res.exit_code == 0, res.text
    throttled = [c for c in sim.throttled_calls if c.action == "DescribeServices"]
    assert len(throttled) == 4
    assert "AWS is throttling DescribeServices" in res.text
    assert world.service()["taskDefinition"].endswith(":2")


def test_two_services_in_parallel_one_fails(world: World, sim: Any, tmp_path: Path) -> None:
    doc = base_config(world)
    doc["services"]["worker"] = {"command": ["python", "-m", "worker"], "cpu": 512, "memory": 1024,
                                 "spot": True, "count": 1, "secrets": {"OPENAI_API_KEY": "chat-api/openai-key"}}
    sim.script(API, "success", sim.scenario("success", start_s=0.4, healthy_s=0.4), cluster=CLUSTER)
    sim.script(WORKER, "success", "tasks_fail_to_start", cluster=CLUSTER)
    cfg, _ = first_deploy(world, tmp_path, doc)
    seen = len(sim.outcomes)
    # The clock stands still from the first UpdateService until the second arrives (30 s at most):
    # deploying in parallel, both go out at once; one by one, the second would wait for a rollout
    # that cannot end, and come only after the thaw, when the first rollout has ended.
    first = sim.freeze_on("UpdateService")

    def thaw_on_the_second() -> None:
        first.wait(60)
        deadline = time.monotonic() + 30
        while len(sim.calls_of("UpdateService")) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        sim.thaw()

    thawing = threading.Thread(target=thaw_on_the_second, daemon=True)
    thawing.start()
    res = deploy(cfg, world.push("v2"), timeout=90)
    thawing.join()

    assert res.exit_code == 1, res.text
    assert "(worker)" in res.message and "worker: rolled back to chat-api-staging-worker:1" in res.message
    assert "api" not in res.message.split("failed (", 1)[1].split(")")[0]
    assert world.service(API)["taskDefinition"].endswith("chat-api-staging-api:2")
    assert world.service(WORKER)["taskDefinition"].endswith("chat-api-staging-worker:1")
    # Both updates went out before either rollout ended: they ran concurrently.
    updates = sim.calls_of("UpdateService")
    ends = [o.monotonic for o in sim.outcomes[seen:]]
    assert len(updates) == 2 and len(ends) >= 2 and max(u.monotonic for u in updates) < min(ends)
    assert "[api] succeeded" in res.text and "[worker] FAILED" in res.text


def test_waves_deploy_in_order_and_stop_after_a_failure(world: World, sim: Any, tmp_path: Path) -> None:
    doc = base_config(world)
    doc["services"]["worker"] = {"command": ["python", "-m", "worker"], "cpu": 512, "memory": 1024,
                                 "count": 1, "after": ["api"]}
    cfg = load(tmp_path, doc)
    res = deploy(cfg, world.push("v1"))
    assert res.exit_code == 0, res.text
    creates = sim.calls_of("CreateService")
    api_done = next(o for o in sim.outcomes if o.service == API and o.rollout_state == "COMPLETED")
    assert len(creates) == 2 and creates[1].monotonic > api_done.monotonic  # worker only after api completed

    sim.script(API, "tasks_fail_to_start", cluster=CLUSTER)
    res = deploy(cfg, world.push("v2"))
    assert res.exit_code == 1
    assert "worker not deployed (waits for api)" in res.message
    assert calls(sim, "UpdateService") == 1
    assert world.service(WORKER)["taskDefinition"].endswith("chat-api-staging-worker:1")


def test_first_deploy_failure_has_nothing_to_roll_back_to(world: World, sim: Any, tmp_path: Path) -> None:
    sim.script(API, "tasks_fail_to_start", cluster=CLUSTER)
    cfg = load(tmp_path, base_config(world))
    res = deploy(cfg, world.push("v1"))

    assert res.exit_code == 1
    assert "nothing to roll back to" in res.message
    assert calls(sim, "UpdateService") == 0


def test_preflight_lists_every_missing_thing_and_changes_nothing(env: Any, sim: Any, tmp_path: Path) -> None:
    world = make_world(env, skip=("secret", "ssm", "target_group", "role:chat-api-task", "alarm"))
    cfg = load(tmp_path, base_config(world))
    missing_image = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{REPO}@sha256:{'0' * 64}"
    res = deploy(cfg, missing_image)

    assert res.exit_code == 1
    msg = res.message
    assert "preflight found 6 problems" in msg and "nothing was changed" in msg
    for needle in ("image " + missing_image, "secret chat-api/openai-key does not exist",
                   "SSM parameter /chat-api/database-url does not exist", "target group chat-api-tg does not exist",
                   "IAM task role chat-api-task does not exist", f"CloudWatch alarm {ALARM} does not exist"):
        assert needle in msg
    for action in ("RegisterTaskDefinition", "CreateService", "UpdateService", "TagResource"):
        assert calls(sim, action) == 0
    # Values were never read: no GetSecretValue / GetParameter(s) at all.
    for action in ("GetSecretValue", "GetParameter", "GetParameters"):
        assert calls(sim, action) == 0
    assert world.c("ecs").list_services(cluster=CLUSTER)["serviceArns"] == []


def test_preflight_missing_cluster(env: Any, sim: Any, tmp_path: Path) -> None:
    world = make_world(env, skip=("cluster",))
    res = deploy(load(tmp_path, base_config(world)), world.push("v1"))
    assert res.exit_code == 1 and "ECS cluster ai-staging does not exist" in res.message
    assert calls(sim, "RegisterTaskDefinition") == 0


def test_ctrl_c_while_watching_exits_130_and_says_how_to_resume(world: World, sim: Any, tmp_path: Path) -> None:
    cfg, _ = first_deploy(world, tmp_path)
    sim.script(API, sim.scenario("success", start_s=3.0, healthy_s=3.0), cluster=CLUSTER)
    ref2 = world.push("v2")
    # SIGINT once the watcher has polled the new deployment (the clock is frozen: it stays IN_PROGRESS).
    polled = sim.freeze_on("UpdateService")
    t = when(lambda: polled.is_set() and calls_after(sim, "DescribeServices", "UpdateService") >= 2,
             lambda: os.kill(os.getpid(), signal.SIGINT))
    res = deploy(cfg, ref2, handle_signals=True)
    t.join()

    assert res.exit_code == 130 and res.status == "interrupted"
    assert "deployctl status --env staging --watch" in res.text
    assert "continues on its own" in res.text
    # The ECS deployment was left running, not rolled back or cancelled.
    assert calls(sim, "UpdateService") == 1
    assert world.service()["deployments"][0]["taskDefinition"].endswith(":2")


# ---------------------------------------------------------------------------------- the CLI


def cli_project(tmp_path: Path, doc: dict[str, Any]) -> Path:
    doc["deploy"] = {**doc.get("deploy", {}), "poll_interval": "50ms", "timeout": "30s"}
    (tmp_path / "deploy.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    for argv in (["git", "init", "-q"], ["git", "add", "deploy.yaml"],
                 ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "init"]):
        subprocess.run(argv, cwd=tmp_path, check=True, capture_output=True)
    return tmp_path


def cli(env: Any, project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, **env.env, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    environ.pop("GITHUB_ACTIONS", None)
    return subprocess.run([sys.executable, "-m", "deployctl", *args], cwd=project, env=environ,
                          capture_output=True, text=True, timeout=300)


def test_cli_run_image_deploys_and_then_reports_a_rollback_exit_1(world: World, sim: Any, tmp_path: Path) -> None:
    sim.script(API, "success", "tasks_fail_to_start", cluster=CLUSTER)
    project = cli_project(tmp_path, base_config(world))
    ok = cli(world.aws, project, "run", "--env", "staging", "--image", world.push("v1"), "--only", "deploy")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert world.service()["taskDefinition"].endswith(f"{FAMILY_API}:1")

    bad = cli(world.aws, project, "run", "--env", "staging", "--image", world.push("v2"), "--only", "deploy")
    out = bad.stdout + bad.stderr
    assert bad.returncode == 1, out
    assert f"rolled back to {FAMILY_API}:1" in out and "Traceback" not in out
    assert world.service()["taskDefinition"].endswith(f"{FAMILY_API}:1")


def test_cli_run_image_by_tag_is_resolved_to_its_digest_before_deploying(world: World, sim: Any,
                                                                         tmp_path: Path) -> None:
    project = cli_project(tmp_path, base_config(world))
    by_digest = world.push("v7")
    by_tag = by_digest.split("@", 1)[0] + ":v7"
    r = cli(world.aws, project, "run", "--env", "staging", "--image", by_tag, "--only", "deploy")
    assert r.returncode == 0, r.stdout + r.stderr
    td = world.c("ecs").describe_task_definition(taskDefinition=world.service()["taskDefinition"])["taskDefinition"]
    # The task definition pins the digest the tag pointed at, so a later re-tag changes nothing.
    assert td["containerDefinitions"][0]["image"] == by_digest
    missing = cli(world.aws, project, "run", "--env", "staging", "--image", by_digest.split("@", 1)[0] + ":nope",
                  "--only", "deploy")
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    # Reported by preflight, with any other problem, before the lock or any registration.
    said = missing.stdout + missing.stderr
    assert "nope" in said and "preflight found 1 problem" in said and "push it" in said
