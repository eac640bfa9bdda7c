"""Tasks ECS scales in are not failures (moto + rollout SIMULATION).

When ECS stops a running task itself (a deployment draining the old tasks, a rollback scaling in
the new ones), the task shows stopCode ServiceSchedulerInitiated and stoppedReason
`Scaling activity initiated by (deployment ecs-svc/N)`, and its containers got SIGTERM, then
SIGKILL after the stop timeout: the simulation reports exit 143, or 137 for a deployment whose
containers ignore SIGTERM (``Scenario.ignores_sigterm``; see tests/simulation/ecs_rollout.py for
what is documented and what is assumed). deployctl's diagnosis must name the real cause of a
failed deploy, never blame those exits ("killed", "crash", "out of memory"), and a successful
deploy stays a success however its old tasks exited.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.integration.test_ecs_deploy import (  # the ECS deploy tests' world, fixtures and helpers
    API,
    CLUSTER,
    FAMILY_API,
    calls,
    deploy,
    first_deploy,
)

SCALED_IN = "Scaling activity initiated by (deployment "
# What a diagnosis must not say about tasks ECS scaled in (phrases: a bare "137" can be part of
# a target group ARN's hex id).
BLAME = ("exit 137", "exit 143", "code 137", "code 143", "out of memory", "outofmemory", "memory usage",
         "killed", "sigkill", "sigterm", "crash", "exited with code")


def diagnosis(text: str) -> list[str]:
    """The diagnosis lines deployctl logged (`likely cause` / `what to try` / `seen`), without
    the `[service]` prefix of the ECS target's log."""
    out: list[str] = []
    for line in text.splitlines():
        bare = re.sub(r"^\[[\w-]+\] ", "", line).strip()
        if bare.startswith("likely cause") or (out and bare.startswith(("what to try:", "seen:"))):
            out.append(bare)
    return out


def sim_stopped(sim: Any, deployment_id: str) -> list[Any]:  # noqa: F811
    return [t for t in sim.tasks(API, cluster=CLUSTER) if t.deployment_id == deployment_id and t.gone]


@pytest.mark.parametrize(("ignores_sigterm", "code"), [(False, 143), (True, 137)])
def test_a_rollback_after_failed_health_checks_blames_the_health_checks_not_the_scaled_in_tasks(
        world, sim, tmp_path, ignores_sigterm, code):  # noqa: F811
    # count 2, breaker threshold 3: tasks 1-3 fail their ELB health checks; task 4, started
    # with task 3, turns healthy just as the breaker trips, and ECS's rollback scales it in.
    bad = sim.scenario("unhealthy_targets", fail_tasks=3, drain_s=0.3, ignores_sigterm=ignores_sigterm)
    sim.script(API, "success", bad, cluster=CLUSTER)
    cfg, _ = first_deploy(world, tmp_path)
    old = world.service()["deployments"][0]["id"]
    res = deploy(cfg, world.push("v2"))

    assert res.exit_code == 1 and res.status == "failed", res.text
    assert f"rolled back to {FAMILY_API}:1" in res.message and "circuit breaker" in res.message
    assert calls(sim, "UpdateService") == 1  # ECS rolled back by itself
    assert world.service()["taskDefinition"].endswith(f"{FAMILY_API}:1")

    # The simulation did produce what the diagnosis must see through.
    (new,) = [d.id for d in sim.deployments(API, cluster=CLUSTER) if d.id != old]
    ours = sim_stopped(sim, new)
    scaled = [t for t in ours if t.stopped_reason == f"{SCALED_IN}{old})"]
    assert len(scaled) == 1 and len(ours) == 4, [(t.stopped_reason, t.exit_code) for t in ours]
    assert {(t.stop_code, t.exit_code) for t in ours} == {("ServiceSchedulerInitiated", code)}
    # ... and the watcher saw it: the scaled-in task is in the log, with its exit code.
    logged = [line for line in res.text.splitlines() if "stopped (ServiceSchedulerInitiated)" in line]
    assert any(SCALED_IN in line and f"exit {code}" in line for line in logged), "\n".join(logged)

    found = diagnosis(res.text)
    causes = [line for line in found if line.startswith("likely cause")]
    assert len(causes) == 1 and "load balancer's health checks failed" in causes[0], found
    assert "Task failed ELB health checks" in "\n".join(found)
    low = "\n".join(found).lower()
    assert not [word for word in BLAME if word in low], found
    assert world.td_tags(world.revisions()[-1])["deployctl:outcome"] == "rolled-back"


@pytest.mark.parametrize(("ignores_sigterm", "code"), [(False, 143), (True, 137)])
def test_a_deploy_whose_old_tasks_exit_143_or_137_when_drained_still_succeeds(
        world, sim, tmp_path, ignores_sigterm, code):  # noqa: F811
    first = sim.scenario("success", ignores_sigterm=ignores_sigterm)
    sim.script(API, first, "success", cluster=CLUSTER)
    cfg, _ = first_deploy(world, tmp_path)
    old = world.service()["deployments"][0]["id"]
    res = deploy(cfg, world.push("v2"))

    assert res.exit_code == 0 and res.status != "failed", res.text
    svc = world.service()
    assert svc["taskDefinition"].endswith(f"{FAMILY_API}:2")
    assert [(d["status"], d["rolloutState"]) for d in svc["deployments"]] == [("PRIMARY", "COMPLETED")]
    new = svc["deployments"][0]["id"]
    drained = sim_stopped(sim, old)
    assert len(drained) == 2
    assert {(t.stop_code, t.stopped_reason, t.exit_code) for t in drained} == {
        ("ServiceSchedulerInitiated", f"{SCALED_IN}{new})", code)}
    assert diagnosis(res.text) == [], res.text
    assert "FAILED" not in res.text and "rolled back" not in res.text
    assert world.td_tags(svc["taskDefinition"])["deployctl:outcome"] == "succeeded"
