"""deployctl.releases: release records from task-definition tags, promote/rollback selection."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest

from deployctl import releases
from deployctl import releases_tags as rt
from deployctl.adapters.ecs_gateway import ServiceState, TaskDefinition
from deployctl.errors import DeployFailed, UsageError

ACCOUNT_ARN = "arn:aws:ecs:us-east-1:123456789012:task-definition"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/chat-api@sha256:"


def digest(n: int) -> str:
    return "sha256:" + f"{n:x}" * 64


def rev(service: str, number: int, release: str, outcome: str = rt.SUCCEEDED, *, image_n: int | None = None,
        started: str | None = None, env: str = "staging", **extra: str) -> releases.Revision:
    n = image_n if image_n is not None else number
    family = f"chat-api-{env}-{service}"
    tags = {"deployctl:app": "chat-api", "deployctl:env": env, "deployctl:service": service,
            "deployctl:release": release, "deployctl:git-sha": f"{number:040x}",
            "deployctl:image-digest": digest(n), "deployctl:actor": "tester",
            "deployctl:started-at": started or f"2026-03-15T10:{number:02d}:00Z",
            "deployctl:outcome": outcome, **extra}
    if outcome != rt.IN_PROGRESS:
        tags["deployctl:finished-at"] = f"2026-03-15T10:{number:02d}:30Z"
        tags["deployctl:duration-s"] = "30.0"
    return releases.Revision(arn=f"{ACCOUNT_ARN}/{family}:{number}", family=family, number=number,
                             service=service, image=IMAGE + digest(n)[7:], tags=tags)


def rid(n: int) -> str:
    return f"20260315T10{n:02d}00Z-{n:012x}-0000"


def history(*outcomes: str) -> list[releases.Release]:
    """One api release per outcome, oldest first in the arguments; returned newest first."""
    return releases.build([rev("api", i + 1, rid(i + 1), o) for i, o in enumerate(outcomes)])


# --------------------------------------------------------------------------- building releases


def test_revision_from_describe_task_definition() -> None:
    described = {"taskDefinition": {"taskDefinitionArn": f"{ACCOUNT_ARN}/chat-api-staging-api:7",
                                    "family": "chat-api-staging-api", "revision": 7,
                                    "containerDefinitions": [{"name": "api", "image": IMAGE + "ab"}]},
                 "tags": [{"key": "deployctl:release", "value": rid(7)}, {"key": "deployctl:service", "value": "api"}]}
    r = releases.revision_from(TaskDefinition.from_api(described))
    assert r is not None and (r.number, r.service, r.image, r.label) == (7, "api", IMAGE + "ab",
                                                                         "chat-api-staging-api:7")
    # Revisions not registered by deployctl (no release tag) are not releases.
    assert releases.revision_from(TaskDefinition.from_api({"taskDefinition": described["taskDefinition"],
                                                           "tags": []})) is None


def test_build_orders_newest_first_and_reads_every_field() -> None:
    built = history(rt.SUCCEEDED, rt.ROLLED_BACK, rt.SUCCEEDED)
    assert [r.id for r in built] == [rid(3), rid(2), rid(1)]
    assert [r.outcome for r in built] == ["succeeded", "rolled-back", "succeeded"]
    top = built[0]
    assert top.image_digest == digest(3) and top.git_sha == f"{3:040x}" and top.who == "tester"
    assert top.duration_s == 30.0 and top.started_at == "2026-03-15T10:03:00Z" and top.kind == "deploy"
    doc = top.to_json(current=True)
    assert list(doc) == ["id", "outcome", "kind", "source", "git_sha", "image_digest", "image", "who",
                         "started_at", "finished_at", "duration_s", "detail", "current", "services"]
    assert doc["services"]["api"]["revision"] == 3 and doc["current"] is True


def test_a_releases_duration_is_the_whole_release() -> None:
    # Two waves: api took 9.7 s of rollout, worker (after it) 8.1 s; the release ran 20 s from its
    # start to its last verdict (issue 16, item 2).
    def finished(r: releases.Revision, at: str, took: str) -> releases.Revision:
        return dataclasses.replace(r, tags={**r.tags, rt.FINISHED_AT: at, rt.DURATION: took})

    api = finished(rev("api", 1, rid(1)), "2026-03-15T10:01:10Z", "9.7")
    worker = finished(rev("worker", 1, rid(1)), "2026-03-15T10:01:20Z", "8.1")
    (built,) = releases.build([api, worker])
    assert (built.started_at, built.finished_at, built.duration_s) == (
        "2026-03-15T10:01:00Z", "2026-03-15T10:01:20Z", 20.0)
    assert built.to_json()["duration_s"] == 20.0
    # Still going: not known yet, whatever the finished service took.
    (going,) = releases.build([api, rev("worker", 1, rid(1), rt.IN_PROGRESS)])
    assert going.duration_s is None


def test_same_second_releases_are_ordered_by_revision() -> None:
    same = "2026-03-15T10:00:00Z"
    built = releases.build([rev("api", n, f"20260315T100000Z-abc-{n:04x}", started=same) for n in (2, 1, 3)])
    assert [r.revisions["api"].number for r in built] == [3, 2, 1]


def test_a_rollback_in_the_same_second_as_the_deploy_before_it_is_newer() -> None:
    """Without registeredAt (moto omits it), a deploy is ordered by its start tag, which has no
    fraction of a second; the rollback that reran revision 1 half a second later must still be newest."""
    first = rev("api", 1, rid(1))
    rerun_at = datetime(2026, 3, 15, 10, 2, 0, 500000, tzinfo=UTC).timestamp()
    tags = {**first.tags, rt.RERUN_PREFIX + rid(3): rt.record_value({rt.RERUN_AT: f"{rerun_at:.3f}",
                                                                     rt.OUTCOME: rt.SUCCEEDED})}
    described = {"taskDefinition": {"taskDefinitionArn": first.arn, "family": first.family, "revision": 1,
                                    "containerDefinitions": [{"name": "api", "image": first.image}]},
                 "tags": [{"key": k, "value": v} for k, v in tags.items()]}
    second = rev("api", 2, rid(2))  # started 10:02:00Z
    built = releases.build([*releases.revisions_from(TaskDefinition.from_api(described)), second])
    assert [(r.id, r.kind) for r in built][:2] == [(rid(3), releases.ROLLBACK), (rid(2), releases.DEPLOY)]


def test_a_multi_service_release_combines_outcomes() -> None:
    built = releases.build([rev("api", 1, rid(1)), rev("worker", 1, rid(1), rt.ROLLED_BACK, image_n=1)])
    (r,) = built
    assert set(r.revisions) == {"api", "worker"} and r.outcome == "rolled-back"
    assert releases.combined_outcome(["succeeded", "failed", "rolled-back"]) == "failed"
    assert releases.combined_outcome(["succeeded", "in-progress"]) == "in-progress"
    assert releases.combined_outcome(["succeeded"]) == "succeeded"


def test_a_superseded_in_progress_release_was_interrupted() -> None:
    built = history(rt.SUCCEEDED, rt.IN_PROGRESS, rt.SUCCEEDED, rt.IN_PROGRESS)
    assert [r.outcome for r in built] == ["in-progress", "succeeded", "interrupted", "succeeded"]


def test_other_environments_revisions_are_ignored() -> None:
    built = releases.build([rev("api", 1, rid(1)), rev("api", 2, rid(2), env="prod")], app="chat-api",
                           env="staging")
    assert [r.id for r in built] == [rid(1)]


# --------------------------------------------------------------------------- promote


def view(arn: str | None, state: str = "COMPLETED", deployments: int = 1) -> releases.ServiceView:
    return releases.ServiceView("api", arn, state if arn else None, deployments if arn else 0)


def test_promotable_takes_what_runs_and_succeeded() -> None:
    built = history(rt.SUCCEEDED, rt.SUCCEEDED)
    src = releases.promotable("staging", built, [view(built[0].revisions["api"].arn)])
    assert src.release.id == rid(2) and src.digest == digest(2) and src.image == IMAGE + digest(2)[7:]


@pytest.mark.parametrize(("outcome", "words"), [
    (rt.FAILED, "failed"), (rt.ROLLED_BACK, "failed and was rolled back"), (rt.IN_PROGRESS, "is still in progress")])
def test_promotable_refuses_an_unhealthy_latest_release(outcome: str, words: str) -> None:
    built = history(rt.SUCCEEDED, outcome)
    with pytest.raises(DeployFailed) as err:
        # ECS went back to release 1, which succeeded: still refused, the latest release did not.
        releases.promotable("staging", built, [view(built[1].revisions["api"].arn)])
    assert f"staging's latest release {rid(2)} {words}" in err.value.message


def test_promotable_refuses_a_rollout_in_flight_and_nothing_deployed() -> None:
    built = history(rt.SUCCEEDED)
    arn = built[0].revisions["api"].arn
    with pytest.raises(DeployFailed, match="still rolling out: api \\(in_progress, 2 deployments\\)"):
        releases.promotable("staging", built, [view(arn, "IN_PROGRESS", 2)])
    with pytest.raises(DeployFailed, match="staging does not run api"):
        releases.promotable("staging", built, [view(None)])
    with pytest.raises(DeployFailed, match="which deployctl did not deploy"):
        releases.promotable("staging", built, [view(f"{ACCOUNT_ARN}/other:1")])


def test_environments_must_agree_on_services() -> None:
    releases.same_services("staging", ["api", "worker"], "prod", ["worker", "api"])
    with pytest.raises(UsageError) as err:
        releases.same_services("staging", ["api", "worker"], "prod", ["api", "batch"])
    assert "only staging has worker; only prod has batch" in err.value.message
    assert err.value.exit_code == 2


# --------------------------------------------------------------------------- settling a cut-off watch


def ecs_service(*deployments: dict[str, Any]) -> ServiceState:
    return ServiceState.from_api({"deployments": list(deployments)})


def deployment(arn: str, status: str = "PRIMARY", state: str = "COMPLETED", *, running: int = 2,
               desired: int = 2, **extra: Any) -> dict[str, Any]:
    return {"id": "ecs-svc/1", "taskDefinition": arn, "status": status, "rolloutState": state,
            "runningCount": running, "desiredCount": desired, **extra}


def test_settle_records_success_only_when_our_deployment_completed_alone() -> None:
    built = history(rt.SUCCEEDED, rt.IN_PROGRESS)
    ours, old = built[0].revisions["api"], built[1].revisions["api"]
    finished = datetime(2026, 3, 15, 10, 2, 45, tzinfo=UTC)
    (s,) = releases.settle(built[0], {"api": ecs_service(deployment(ours.arn, updatedAt=finished))})
    assert (s.service, s.revision, s.outcome) == ("api", ours, rt.SUCCEEDED)
    tags = s.tags(datetime(2030, 1, 1, tzinfo=UTC))
    # The tags a run writes, timed by ECS's updatedAt and the release's start tag (10:02:00).
    assert tags[rt.OUTCOME] == "succeeded" and tags[rt.FINISHED_AT] == "2026-03-15T10:02:45Z"
    assert tags[rt.DURATION] == "45.0" and rt.tag_value(tags[rt.DETAIL]) == tags[rt.DETAIL]
    assert s.settled_revision(finished).outcome == rt.SUCCEEDED
    # Still moving, not alone, or short of its desired count: no verdict yet.
    for moving in (ecs_service(deployment(ours.arn, state="IN_PROGRESS")),
                   ecs_service(deployment(ours.arn), deployment(old.arn, "ACTIVE")),
                   ecs_service(deployment(ours.arn, running=1))):
        assert releases.settle(built[0], {"api": moving}) == []


def test_settle_records_a_failure_and_an_ecs_rollback() -> None:
    built = history(rt.SUCCEEDED, rt.IN_PROGRESS)
    ours, old = built[0].revisions["api"], built[1].revisions["api"]
    (failed,) = releases.settle(built[0], {"api": ecs_service(deployment(
        ours.arn, state="FAILED", rolloutStateReason="ECS deployment circuit breaker: tasks failed to start."))})
    assert failed.outcome == rt.FAILED and "circuit breaker: tasks failed to start" in failed.detail
    (back,) = releases.settle(built[0], {"api": ecs_service(deployment(old.arn))})
    assert (back.outcome, back.rolled_back_to) == (rt.ROLLED_BACK, "chat-api-staging-api:1")
    # The rollback still in flight, or our failed deployment still draining: wait.
    assert releases.settle(built[0], {"api": ecs_service(deployment(old.arn, state="IN_PROGRESS"))}) == []
    assert releases.settle(built[0], {"api": ecs_service(
        deployment(old.arn), deployment(ours.arn, "ACTIVE", "FAILED"))}) == []


def test_settle_leaves_alone_what_it_cannot_explain() -> None:
    built = history(rt.SUCCEEDED, rt.IN_PROGRESS)
    ours = built[0].revisions["api"]
    newer = f"{ACCOUNT_ARN}/chat-api-staging-api:9"
    foreign = f"{ACCOUNT_ARN}/someone-else:1"
    for arn in (newer, foreign):  # not a rollback: deployed by something else
        assert releases.settle(built[0], {"api": ecs_service(deployment(arn))}) == []
    assert releases.settle(built[0], {"api": None}) == []  # the service is gone
    assert releases.settle(built[0], {"api": ecs_service()}) == []  # no PRIMARY deployment
    # Only the newest release, and only while it is in progress.
    done = history(rt.SUCCEEDED)
    assert releases.settle(done[0], {"api": ecs_service(deployment(done[0].revisions["api"].arn))}) == []
    assert releases.settle(None, {}) == []
    settled = releases.settle(built[0], {"api": ecs_service(deployment(ours.arn))})[0].settled_revision(
        datetime(2026, 3, 15, 10, 3, tzinfo=UTC))
    revs = [r for rel in built for r in rel.revisions.values()]
    assert [r.outcome for r in releases.build(releases.apply_settlements(revs, [settled]))] == [
        "succeeded", "succeeded"]


# --------------------------------------------------------------------------- rollback


def running_of(r: releases.Release) -> dict[str, str]:
    return {name: v.arn for name, v in r.revisions.items()}


def test_default_rollback_is_the_previous_succeeded_release() -> None:
    built = history(rt.SUCCEEDED, rt.SUCCEEDED, rt.FAILED, rt.SUCCEEDED)
    choice = releases.choose_rollback("staging", built, running_of(built[0]))
    assert choice.current is not None and choice.current.id == rid(4)
    assert choice.target.id == rid(2)  # the failed release 3 is skipped
    assert choice.changes() == [("api", "chat-api-staging-api:4", f"chat-api-staging-api:2 ({digest(2)[:19]})")]
    assert releases.choose_rollback("staging", built, running_of(built[0]), steps=2).target.id == rid(1)
    with pytest.raises(UsageError, match="only 2 earlier succeeded release"):
        releases.choose_rollback("staging", built, running_of(built[0]), steps=3)


def test_rollback_after_a_rollback_counts_back_in_history_as_listed() -> None:
    revs = [rev("api", 1, rid(1)), rev("api", 2, rid(2)), rev("api", 3, rid(3)),
            rev("api", 4, rid(4), image_n=2, **{releases.KIND: "rollback", releases.SOURCE: rid(2)})]
    built = releases.build(revs)
    assert built[0].kind == "rollback" and built[0].source == rid(2)
    running = running_of(built[0])
    # History lists 4 (runs v2), 3 (v3), 2 (v2), 1 (v1). Release 2 ran the images that run now,
    # so it is no step back: the default goes to 3, --steps 2 to 1 (issue 16, item 9).
    assert releases.choose_rollback("staging", built, running).target.id == rid(3)
    assert releases.choose_rollback("staging", built, running, steps=2).target.id == rid(1)
    with pytest.raises(UsageError) as err:
        releases.choose_rollback("staging", built, running, steps=3)
    assert err.value.message == ("staging has only 2 earlier succeeded release(s) with other images, not 3, "
                                 f"to roll back to (it runs {rid(4)})")


def test_default_rollback_skips_releases_of_the_images_that_run_now() -> None:
    # Releases 2 and 3 deployed one digest (a re-run, a settings change): rolling back from 3 to 2
    # would change nothing, so the default goes to 1 (issue 16, item 1).
    revs = [rev("api", 1, rid(1)), rev("api", 2, rid(2)), rev("api", 3, rid(3), image_n=2)]
    built = releases.build(revs)
    choice = releases.choose_rollback("staging", built, running_of(built[0]))
    assert choice.target.id == rid(1)
    assert choice.changes() == [("api", "chat-api-staging-api:3", f"chat-api-staging-api:1 ({digest(1)[:19]})")]
    # With no older release of other images: exit 2, saying why.
    same = releases.build([rev("api", 1, rid(1)), rev("api", 2, rid(2), image_n=1)])
    with pytest.raises(UsageError) as err:
        releases.choose_rollback("staging", same, running_of(same[0]))
    assert err.value.exit_code == 2
    assert err.value.message == ("staging has no earlier succeeded release with other images to roll back to "
                                 f"(it runs {rid(2)}; {rid(1)} ran the same images)")
    # --to still goes to a release of the same images when asked by name.
    assert releases.choose_rollback("staging", same, running_of(same[0]), to=rid(1)).target.id == rid(1)


def test_one_chooser_for_every_target() -> None:
    # A target that is its image (the local engine): two releases of one image count once, and
    # counting starts below the release deployed last even when it is not serving (failing).
    made = [releases.Release(id=f"r{n}", app="a", env="dev", outcome=o, git_sha="", image_digest="", image="",
                             who="", started_at="", finished_at="", duration_s=None, number=n, image_id=i)
            for n, o, i in ((5, "succeeded", "img-c"), (4, "succeeded", "img-b"), (3, "failed", "img-a"),
                            (2, "succeeded", "img-b"), (1, "succeeded", "img-a"))]
    live = releases.LiveState(where="a/dev", env="dev", current=None, anchor=made[0],
                              images={r.id: {"image": r.image_id} for r in made}, running={"image": "img-c"},
                              nothing="nothing is deployed")
    assert releases.choose(made, live).id == "r4"
    assert releases.choose(made, live, steps=2).id == "r1"  # r2 is img-b again
    with pytest.raises(UsageError, match=r"it runs r5, which is failing"):
        releases.choose(made, live, steps=3)
    with pytest.raises(UsageError, match="r5 is what a/dev runs now, and it is failing"):
        releases.choose(made, live, to="r5")
    with pytest.raises(UsageError, match=r"^a/dev has no earlier succeeded release to roll back to \(nothing is"):
        releases.choose([], dataclasses.replace(live, anchor=None))


def test_rollback_errors_are_usage_errors_that_change_nothing() -> None:
    built = history(rt.SUCCEEDED)
    with pytest.raises(UsageError) as err:
        releases.choose_rollback("staging", built, running_of(built[0]))
    assert err.value.message == f"staging has no earlier succeeded release to roll back to (it runs {rid(1)})"
    assert err.value.exit_code == 2
    with pytest.raises(UsageError, match="nothing deployctl released runs there"):
        releases.choose_rollback("staging", [], {})
    built = history(rt.SUCCEEDED, rt.FAILED, rt.SUCCEEDED)
    with pytest.raises(UsageError, match="failed; refusing to roll back to it"):
        releases.choose_rollback("staging", built, running_of(built[0]), to=rid(2))
    with pytest.raises(UsageError, match="already runs release"):
        releases.choose_rollback("staging", built, running_of(built[0]), to=rid(3))
    with pytest.raises(UsageError, match="has no release nope"):
        releases.choose_rollback("staging", built, running_of(built[0]), to="nope")


def test_rollback_to_a_release_restores_services_it_did_not_touch() -> None:
    # Release 1 deployed api+worker; release 2 only api (worker unchanged); release 3 both.
    revs = [rev("api", 1, rid(1)), rev("worker", 1, rid(1), image_n=1),
            rev("api", 2, rid(2)),
            rev("api", 3, rid(3)), rev("worker", 2, rid(3), image_n=3)]
    built = releases.build(revs)
    running = {"api": built[0].revisions["api"].arn, "worker": built[0].revisions["worker"].arn}
    choice = releases.choose_rollback("staging", built, running, to=rid(2))
    assert {s: r.label for s, r in choice.revisions.items()} == {
        "api": "chat-api-staging-api:2", "worker": "chat-api-staging-worker:1"}


def test_register_request_copies_the_definition_under_a_new_release() -> None:
    described: dict[str, Any] = {
        "taskDefinition": {"taskDefinitionArn": f"{ACCOUNT_ARN}/f:1", "family": "f", "revision": 1,
                           "status": "ACTIVE", "compatibilities": ["FARGATE"], "registeredAt": "x",
                           "requiresAttributes": [], "containerDefinitions": [{"name": "api", "image": "i@sha256:1"}],
                           "cpu": "1024", "memory": "2048"},
        "tags": rt.to_list({**rev("api", 1, rid(1), rt.SUCCEEDED).tags, rt.DETAIL: "ok"}),
    }
    req = releases.register_request(TaskDefinition.from_api(described), release_id=rid(9), restores=rid(1))
    assert set(req) == {"family", "containerDefinitions", "cpu", "memory", "tags"}
    tags = rt.to_dict(req["tags"])
    assert tags[rt.RELEASE] == rid(9) and tags[releases.KIND] == "rollback" and tags[releases.SOURCE] == rid(1)
    assert tags["deployctl:image-digest"] == digest(1) and tags["deployctl:git-sha"] == f"{1:040x}"
    for gone in (rt.OUTCOME, rt.FINISHED_AT, rt.DURATION, rt.DETAIL, rt.ACTOR, rt.STARTED_AT):
        assert gone not in tags


def test_a_rollback_that_reran_a_revision_is_a_release_of_its_own() -> None:
    # Release 1's revision ran again as it is (issue 15, item 9): a rerun tag on it records the
    # rollback release; the revision's own tags still say release 1.
    one, two = rev("api", 1, rid(1)), rev("api", 2, rid(2))
    record = rt.record_value({rt.STARTED_AT: "2026-03-15T10:05:00Z", rt.ACTOR: "tester",
                              releases.SOURCE: rid(1), rt.OUTCOME: rt.SUCCEEDED,
                              rt.FINISHED_AT: "2026-03-15T10:05:40Z", rt.DURATION: "39.5",
                              rt.DETAIL: "ECS deployment ecs-svc/9 completed, 2 running"})
    rb = "20260315T100500Z-000000000001-beef"
    described = {"taskDefinition": {"taskDefinitionArn": one.arn, "family": one.family, "revision": 1,
                                    "containerDefinitions": [{"name": "api", "image": one.image}]},
                 "tags": rt.to_list({**one.tags, rt.rerun_key(rb): record})}
    base, rerun = releases.revisions_from(TaskDefinition.from_api(described))
    assert base.parsed.release == rid(1) and base.outcome == "succeeded" and not base.record
    assert (rerun.arn, rerun.record, rerun.parsed.release) == (one.arn, rt.rerun_key(rb), rb)
    assert rerun.parsed.detail == "ECS deployment ecs-svc/9 completed- 2 running"  # a tag holds no commas
    built = releases.build([base, two, rerun])
    assert [(r.id, r.kind, r.source) for r in built] == [(rb, "rollback", rid(1)), (rid(2), "deploy", ""),
                                                          (rid(1), "deploy", "")]
    assert (built[0].started_at, built[0].duration_s, built[0].who) == ("2026-03-15T10:05:00Z", 40.0, "tester")
    assert releases.current(built, {"api": one.arn}).id == rb
    # Its outcome is recorded in its rerun tag, never in the revision's own outcome tags.
    tags = releases.record_for(rerun, {rt.OUTCOME: rt.FAILED, rt.FINISHED_AT: "2026-03-15T10:06:00Z"})
    assert list(tags) == [rt.rerun_key(rb)]
    assert rt.record_tags(tags[rt.rerun_key(rb)])[rt.OUTCOME] == "failed"
    assert rt.record_tags(tags[rt.rerun_key(rb)])[rt.STARTED_AT] == "2026-03-15T10:05:00Z"
    assert releases.record_for(base, {rt.OUTCOME: rt.FAILED}) == {rt.OUTCOME: rt.FAILED}
    # Registering it again (if it were deregistered) copies none of the release records.
    request = releases.register_request(TaskDefinition.from_api(described), release_id="new", restores=rid(1))
    assert not any(t["key"].startswith(rt.RERUN_PREFIX) for t in request["tags"])
