"""`deployctl rollback` settles a release whose deploy stopped watching before its verdict.

Against the moto server with the rollout SIMULATION, like test_releases: the newest release is
left `in-progress` by a `deployctl run` stopped with Ctrl-C, ECS then finishes the rollout, and
rollback must record the verdict ECS shows before it registers its own release (after which
the cut-off release is no longer the newest and would show as `interrupted` for good).
"""

from __future__ import annotations

import time
from typing import Any

from tests.integration.test_ecs_deploy import API, CLUSTER
from tests.integration.test_releases import (
    FAMILY_STAGING,
    RELEASE_PHASES,
    Project,
    image_of,
    interrupted_run,
    service,
    td,
)
from tests.support.mid_rollout import wait_until

SIM_PHASES = RELEASE_PHASES


def rollout_over(proj: Project, task_definition: str, timeout: float = 30) -> None:
    """Wait until ECS runs `task_definition` alone, COMPLETED (each look advances the simulation)."""
    deadline = time.monotonic() + timeout
    while True:
        deps = service(proj.world, CLUSTER)["deployments"]
        if len(deps) == 1 and deps[0]["rolloutState"] == "COMPLETED" and \
                deps[0]["taskDefinition"].endswith(f"/{task_definition}"):
            return
        assert time.monotonic() < deadline, f"ECS never settled on {task_definition}: {deps}"
        time.sleep(0.05)


def rollback(proj: Project, *extra: str) -> Any:
    return proj.cli("rollback", "-f", proj.file, "--env", "staging", "--yes", *extra)


def test_rollback_records_a_cut_off_success_and_can_go_back_to_it(project: Project, sim: Any) -> None:  # noqa: F811
    _, rel1 = project.deployed("staging", "v1")
    # Slow enough for Ctrl-C to land mid-rollout; the deploys after it are quick.
    sim.script(API, sim.scenario("success", start_s=1.5, healthy_s=1.0), "success", cluster=CLUSTER)
    ref2 = project.world.push("v2")
    rel2 = interrupted_run(project, sim, ref2)
    rollout_over(project, f"{FAMILY_STAGING}:2")

    res = rollback(project)

    assert res.code == 0, res.text
    assert f"release {rel2} → release {rel1}" in res.out
    releases = project.history("staging")
    assert [(r["id"], r["outcome"]) for r in releases[1:]] == [(rel2, "succeeded"), (rel1, "succeeded")]
    _, tags = td(project.world, f"{FAMILY_STAGING}:2")
    assert tags["deployctl:outcome"] == "succeeded"
    assert f"release {rel2}: recorded api as succeeded on {FAMILY_STAGING}:2" in res.err
    assert releases[0]["kind"] == "rollback" and releases[0]["current"] is True
    # Release 2 did succeed, so it stays a release one can go back to (unsettled it would be
    # `interrupted` for good and refused).
    again = rollback(project, "--to", rel2)
    assert again.code == 0, again.text
    assert image_of(project.world, CLUSTER) == ref2


def test_rollback_records_a_cut_off_release_that_ecs_rolled_back(project: Project, sim: Any) -> None:  # noqa: F811
    ref1, rel1 = project.deployed("staging", "v1")
    _, rel2 = project.deployed("staging", "v2")
    sim.script(API, sim.scenario("tasks_fail_to_start", fail_s=0.5), "success", cluster=CLUSTER)
    rel3 = interrupted_run(project, sim, project.world.push("v3"))
    rollout_over(project, f"{FAMILY_STAGING}:2")

    res = rollback(project)

    assert res.code == 0, res.text
    # Release 3 never became current: ECS went back to release 2, so rollback goes from 2 to 1.
    assert f"release {rel2} → release {rel1}" in res.out
    releases = project.history("staging")
    assert [(r["id"], r["outcome"]) for r in releases[1:]] == [
        (rel3, "rolled-back"), (rel2, "succeeded"), (rel1, "succeeded")]
    _, tags = td(project.world, f"{FAMILY_STAGING}:3")
    assert tags["deployctl:outcome"] == "rolled-back"
    assert tags["deployctl:rolled-back-to"] == f"{FAMILY_STAGING}:2"
    assert f"release {rel3}: recorded api as rolled back on {FAMILY_STAGING}:3" in res.err
    assert image_of(project.world, CLUSTER) == ref1


def test_rollback_records_nothing_while_a_deploy_holds_the_lock(project: Project, sim: Any) -> None:  # noqa: F811
    from deployctl import lock

    project.deployed("staging", "v1")
    sim.script(API, sim.scenario("success", start_s=0.5, healthy_s=0.5), cluster=CLUSTER)
    rel2 = interrupted_run(project, sim, project.world.push("v2"))
    rollout_over(project, f"{FAMILY_STAGING}:2")
    registered = len(sim.calls_of("RegisterTaskDefinition"))
    table = lock.LockTable(project.world.c("dynamodb"))
    with lock.hold(table, "chat-api", "staging", release=rel2, lease=30):
        res = rollback(project)
        # The deploy holding the lock owns its verdict; the rollback stops at the lock, as any deploy.
        assert res.code == 1 and "chat-api/staging is locked by another deploy" in res.text
        assert "recorded api" not in res.text
        _, tags = td(project.world, f"{FAMILY_STAGING}:2")
        assert tags["deployctl:outcome"] == "in-progress"
    assert len(sim.calls_of("RegisterTaskDefinition")) == registered
    assert service(project.world, CLUSTER)["taskDefinition"].endswith(f"/{FAMILY_STAGING}:2")


def test_rollback_that_waited_for_the_lock_refuses_when_what_runs_changed(project: Project, sim: Any) -> None:  # noqa: F811
    """Rollback chooses its target before the lock is its own; when the deploy it waited for
    changed what runs, it must not roll back from a state nobody looked at."""
    import threading

    from deployctl import lock

    ref1, rel1 = project.deployed("staging", "v1")
    _, rel2 = project.deployed("staging", "v2")
    registered = len(sim.calls_of("RegisterTaskDefinition"))
    table = lock.LockTable(project.world.c("dynamodb"))
    held, done = threading.Event(), threading.Event()

    def other_deploy() -> None:
        # Another deploy holds the lock and, while the rollback waits for it, puts release 1 back.
        with lock.hold(table, "chat-api", "staging", release="someone-else", lease=30):
            tries = len(sim.calls_of("PutItem"))
            held.set()
            wait_until(lambda: len(sim.calls_of("PutItem")) > tries, "the rollback to try the lock")
            project.world.c("ecs").update_service(cluster=CLUSTER, service=API,
                                                  taskDefinition=f"{FAMILY_STAGING}:1")
        done.set()

    worker = threading.Thread(target=other_deploy, daemon=True)
    worker.start()
    assert held.wait(10)
    res = rollback(project, "--lock-wait", "30s")
    worker.join(10)

    assert done.is_set()
    assert f"release {rel2} → release {rel1}" in res.out  # what it chose before waiting
    assert res.code == 1, res.text
    assert "staging changed while this rollback waited for the lock" in res.text
    assert f"api now runs {FAMILY_STAGING}:1 (was {FAMILY_STAGING}:2)" in res.text
    assert "nothing was changed" in res.text
    assert len(sim.calls_of("RegisterTaskDefinition")) == registered  # nothing registered
    assert service(project.world, CLUSTER)["taskDefinition"].endswith(f"/{FAMILY_STAGING}:1")
    assert image_of(project.world, CLUSTER) == ref1  # as the other deploy left it
