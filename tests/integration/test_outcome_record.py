"""A release shows its real outcome even when its deploy could not record it, or was killed.

Against the moto server with the rollout SIMULATION (whose API hooks make TagResource fail):
the verdict a `deployctl run` reaches is written as outcome tags on the task-definition revision
it registered. When that write is throttled the run retries within its outcome budget
(docs/timeouts.md); when it fails for good, the run says so, and the release is settled from
what ECS shows (by `history`/`status`, or by the next deploy before it supersedes the release),
instead of showing `interrupted` once a later release exists. A deploy killed with SIGKILL
shows in `history` from the moment it registered its revision.
"""

from __future__ import annotations

import signal
import time
from typing import Any

from deployctl import lock
from tests.integration.test_ecs_deploy import API, CLUSTER
from tests.integration.test_releases import (
    FAMILY_STAGING,
    RELEASE_PHASES,
    Project,
    start_run,
    td,
)
from tests.integration.test_rollback_settle import rollout_over

SIM_PHASES = RELEASE_PHASES
NOT_RECORDED = "could NOT be recorded"


def outcomes(proj: Project) -> list[tuple[str, str]]:
    return [(r["id"], r["outcome"]) for r in proj.history("staging")]


def test_a_throttled_outcome_write_is_retried_until_recorded(project: Project, sim: Any) -> None:  # noqa: F811
    _, rel1 = project.deployed("staging", "v1")
    # More throttling errors in a row than botocore's own retries (5 attempts) get through.
    sim.throttle("TagResource", times=6)

    res = project.run("staging", project.world.push("v2"))

    assert res.code == 0, res.text
    assert NOT_RECORDED not in res.text
    assert len(sim.throttled_calls) == 6
    # Recorded by the run itself (no `history`/`status` has looked yet).
    _, tags = td(project.world, f"{FAMILY_STAGING}:2")
    assert tags["deployctl:outcome"] == "succeeded" and "deployctl:outcome-detail" not in tags
    rel2 = tags["deployctl:release"]
    assert outcomes(project) == [(rel2, "succeeded"), (rel1, "succeeded")]


def test_a_success_never_recorded_shows_as_succeeded_after_a_later_deploy(
        project: Project, sim: Any) -> None:  # noqa: F811
    _, rel1 = project.deployed("staging", "v1")
    sim.throttle("TagResource", times=10_000)  # every outcome write fails

    res = project.run("staging", project.world.push("v2"))

    assert res.code == 0, res.text  # the deploy succeeded; only its record is missing
    _, tags = td(project.world, f"{FAMILY_STAGING}:2")
    rel2 = tags["deployctl:release"]
    assert tags["deployctl:outcome"] == "in-progress"
    assert f"the outcome (succeeded) of release {rel2} {NOT_RECORDED} on {FAMILY_STAGING}:2" in res.text
    assert "`deployctl history` shows it in-progress until `status`, `history` or the next deploy" in res.text
    # Still unrecordable, `history` shows what ECS shows (and says it could not record it).
    assert outcomes(project) == [(rel2, "succeeded"), (rel1, "succeeded")]

    sim.unthrottle("TagResource")
    later = project.run("staging", project.world.push("v3"))

    assert later.code == 0, later.text
    assert f"recorded release {rel2} ({FAMILY_STAGING}:2) as succeeded, from what ECS shows" in later.text
    _, tags = td(project.world, f"{FAMILY_STAGING}:2")
    assert tags["deployctl:outcome"] == "succeeded"
    rel3 = project.history("staging")[0]["id"]
    # Superseded, it keeps its real outcome instead of `interrupted`.
    assert outcomes(project) == [(rel3, "succeeded"), (rel2, "succeeded"), (rel1, "succeeded")]


def test_an_ecs_rollback_never_recorded_shows_as_rolled_back_after_a_later_deploy(
        project: Project, sim: Any) -> None:  # noqa: F811
    _, rel1 = project.deployed("staging", "v1")
    sim.script(API, sim.scenario("tasks_fail_to_start", fail_s=0.3), "success", cluster=CLUSTER)
    sim.throttle("TagResource", times=10_000)

    res = project.run("staging", project.world.push("v2"))

    assert res.code == 1, res.text
    _, tags = td(project.world, f"{FAMILY_STAGING}:2")
    rel2 = tags["deployctl:release"]
    assert f"the outcome (rolled-back) of release {rel2} {NOT_RECORDED}" in res.text
    rollout_over(project, f"{FAMILY_STAGING}:1")

    sim.unthrottle("TagResource")
    later = project.run("staging", project.world.push("v3"))

    assert later.code == 0, later.text
    _, tags = td(project.world, f"{FAMILY_STAGING}:2")
    assert tags["deployctl:outcome"] == "rolled-back"
    assert tags["deployctl:rolled-back-to"] == f"{FAMILY_STAGING}:1"
    rel3 = project.history("staging")[0]["id"]
    assert outcomes(project) == [(rel3, "succeeded"), (rel2, "rolled-back"), (rel1, "succeeded")]


def test_a_deploy_killed_mid_watch_stays_in_history(
        project: Project, sim: Any, monkeypatch: Any) -> None:  # noqa: F811
    _, rel1 = project.deployed("staging", "v1")
    sim.script(API, sim.scenario("success", start_s=1.5, healthy_s=1.0), "success", cluster=CLUSTER)
    monkeypatch.setenv(lock.LEASE_ENV, "2s")  # the killed deploy's lock runs out 2 s after its last heartbeat
    proc = start_run(project, sim, "staging", project.world.push("v2"))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)

    # Killed while watching: it shows at once, in progress (its lock is still held).
    newest = project.history("staging")[0]
    rel2 = newest["id"]
    assert rel2 != rel1 and newest["outcome"] == "in-progress"
    assert newest["services"]["api"]["task_definition"].endswith(f"/{FAMILY_STAGING}:2")

    # Once its lock has run out and ECS has finished, it is settled from what ECS shows…
    rollout_over(project, f"{FAMILY_STAGING}:2")
    deadline = time.monotonic() + 60
    while outcomes(project)[0] != (rel2, "succeeded"):
        assert time.monotonic() < deadline, outcomes(project)
        time.sleep(0.3)
    # …and a later deploy leaves it there.
    later = project.run("staging", project.world.push("v3"))
    assert later.code == 0, later.text
    rel3 = project.history("staging")[0]["id"]
    assert outcomes(project) == [(rel3, "succeeded"), (rel2, "succeeded"), (rel1, "succeeded")]
