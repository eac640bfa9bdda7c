"""promote / rollback / status / history against a real moto server with the rollout SIMULATION.

The CLI runs in this process (`deployctl.cli.main`), so the simulation's scripted scenarios
apply; deploys go through `deployctl run --image …` exactly as a person would start them. The
AWS world (cluster, ECR image, secrets, target group, roles, alarm) is the one of
test_ecs_deploy, plus a prod environment promoted from staging on its own cluster.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime
from typing import Any

import pytest

from deployctl.commands.common import engine_runner
from deployctl.config import load_env, read
from deployctl.targets import DeployOptions, for_config
from tests.integration.conftest import REPO_ROOT, git
from tests.integration.test_local_target import App, app, client, images  # noqa: F401 - fixtures
from tests.support.aws_world import (  # noqa: F401 - re-exported for the modules built on these tests
    API,
    CLUSTER,
    FAMILY_PROD,
    FAMILY_STAGING,
    PROD_CLUSTER,
    RELEASE_PHASES,
    World,
)
from tests.support.mid_rollout import wait_until
from tests.support.release_project import Cli, Project, cli, committed_project  # noqa: F401 - re-exported

SIM_PHASES = RELEASE_PHASES


def service(world: World, cluster: str) -> dict[str, Any]:
    # each environment has its own ECS service (app-env-service), here one environment per cluster
    name = API if cluster == CLUSTER else "chat-api-prod-api"
    return world.c("ecs").describe_services(cluster=cluster, services=[name])["services"][0]


def td(world: World, arn: str) -> tuple[dict[str, Any], dict[str, str]]:
    resp = world.c("ecs").describe_task_definition(taskDefinition=arn, include=["TAGS"])
    return resp["taskDefinition"], {t["key"]: t["value"] for t in resp.get("tags", [])}


def image_of(world: World, cluster: str) -> str:
    definition, _ = td(world, service(world, cluster)["taskDefinition"])
    return str(definition["containerDefinitions"][0]["image"])


# ------------------------------------------------------------------------------------ promote


def test_promote_deploys_the_digest_staging_runs(project: Project, sim: Any) -> None:
    ref, staging_release = project.deployed("staging", "v1")
    git_sha = project.history("staging")[0]["git_sha"]

    res = project.cli("promote", "staging", "prod", "-f", project.file, "--yes")

    assert res.code == 0, res.text
    prod = service(project.world, PROD_CLUSTER)
    definition, tags = td(project.world, prod["taskDefinition"])
    # The registered prod task definition runs exactly staging's image, by digest…
    assert definition["containerDefinitions"][0]["image"] == ref == image_of(project.world, CLUSTER)
    assert tags["deployctl:image-digest"] == ref.split("@")[1]
    # …with prod's settings, recorded as a prod release that names where it came from.
    assert definition["family"] == FAMILY_PROD and prod["desiredCount"] == 3
    assert tags["deployctl:env"] == "prod" and tags["deployctl:outcome"] == "succeeded"
    assert tags["deployctl:kind"] == "promote" and tags["deployctl:source"] == f"staging/{staging_release}"
    assert tags["deployctl:git-sha"] == git_sha
    assert "succeeded" in res.out and f"release {staging_release}" in res.out
    (rel,) = project.history("prod")
    assert rel["kind"] == "promote" and rel["outcome"] == "succeeded" and rel["current"] is True


def test_promote_is_refused_after_a_failed_staging_release(project: Project, sim: Any) -> None:
    project.deployed("staging", "v1")
    sim.script(API, "tasks_fail_to_start", cluster=CLUSTER)
    bad = project.run("staging", project.world.push("v2"))
    assert bad.code == 1, bad.text

    res = project.cli("promote", "staging", "prod", "-f", project.file, "--yes")

    assert res.code == 1
    assert "staging's latest release" in res.err and "failed and was rolled back" in res.err
    assert "refusing to promote" in res.err and "Traceback" not in res.text
    assert project.world.c("ecs").list_services(cluster=PROD_CLUSTER)["serviceArns"] == []
    assert project.world.c("ecs").list_task_definitions(familyPrefix=FAMILY_PROD)["taskDefinitionArns"] == []


def start_run(project: Project, sim: Any, env: str, image: str) -> subprocess.Popen[str]:
    """`deployctl run` in a subprocess; returns once its UpdateService reached the server."""
    before = len(sim.calls_of("UpdateService"))
    proc = subprocess.Popen([sys.executable, "-m", "deployctl", "run", "-f", project.file, "--env", env,
                             "--image", image], env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120  # a wait for an event: generous, it costs nothing when all is well
    while len(sim.calls_of("UpdateService")) == before:
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "the deploy never updated the service"
        time.sleep(0.05)
    return proc


def test_promote_is_refused_while_staging_rolls_out(project: Project, sim: Any) -> None:
    project.deployed("staging", "v1")
    sim.script(API, sim.scenario("success", start_s=1.5, healthy_s=0.5), cluster=CLUSTER)
    proc = start_run(project, sim, "staging", project.world.push("v2"))
    try:
        res = project.cli("promote", "staging", "prod", "-f", project.file, "--yes")
    finally:
        out, _ = proc.communicate(timeout=60)
    assert res.code == 1, res.text
    assert "still rolling out" in res.err and "status --env staging --watch" in res.err
    assert proc.returncode == 0, out
    assert project.world.c("ecs").list_services(cluster=PROD_CLUSTER)["serviceArns"] == []


def test_run_prod_is_refused_pointing_to_promote(project: Project) -> None:
    res = project.run("prod", project.world.push("v1"))
    assert res.code == 2
    assert "`run --env prod` is refused" in res.err and "deployctl promote staging prod" in res.err


def test_promote_needs_the_configured_source_and_a_confirmation(project: Project) -> None:
    project.deployed("staging", "v1")
    wrong = project.cli("promote", "prod", "staging", "-f", project.file, "--yes")
    assert wrong.code == 2 and "staging is not a promotion target" in wrong.err
    # No terminal on stdin (pytest) and no --yes: refused before anything changes.
    unasked = project.cli("promote", "staging", "prod", "-f", project.file)
    assert unasked.code == 2 and "--yes" in unasked.err and "no terminal" in unasked.err
    assert project.world.c("ecs").list_services(cluster=PROD_CLUSTER)["serviceArns"] == []


# ------------------------------------------------------------------------------------ rollback


def test_rollback_with_no_earlier_release_is_a_clear_error(project: Project, sim: Any) -> None:
    _, first = project.deployed("staging", "v1")
    res = project.cli("rollback", "-f", project.file, "--env", "staging", "--yes")
    assert res.code == 2
    assert f"staging has no earlier succeeded release to roll back to (it runs {first})" in res.err
    assert "Traceback" not in res.text
    assert len(sim.calls_of("UpdateService")) == 0


def test_rollback_to_a_chosen_release(project: Project, sim: Any) -> None:
    ref1, rel1 = project.deployed("staging", "v1")
    project.deployed("staging", "v2")
    ref3, rel3 = project.deployed("staging", "v3")
    assert image_of(project.world, CLUSTER) == ref3
    registered = len(sim.calls_of("RegisterTaskDefinition"))
    # Release records have second resolution (history orders by them): in the simulation a
    # rollback can start in the same second as the deploy before it, which real ECS never does.
    time.sleep(1.05 - time.time() % 1)

    res = project.cli("rollback", "-f", project.file, "--env", "staging", "--to", rel1, "--yes")

    assert res.code == 0, res.text
    assert f"release {rel3} → release {rel1}" in res.out
    assert f"api: {FAMILY_STAGING}:3 → {FAMILY_STAGING}:1" in res.out
    # Release 1's revision is still ACTIVE: it runs again as it is, nothing is registered (issue
    # 15, item 9), and what the preview named is what runs.
    arn = service(project.world, CLUSTER)["taskDefinition"]
    assert arn.endswith(f"{FAMILY_STAGING}:1") and image_of(project.world, CLUSTER) == ref1
    assert len(sim.calls_of("RegisterTaskDefinition")) == registered
    assert f"runs {FAMILY_STAGING}:1 again as it is" in res.text
    # The rollback is a release of its own in history, recorded on that revision beside release 1.
    _, tags = td(project.world, arn)
    assert tags["deployctl:release"] == rel1 and tags["deployctl:outcome"] == "succeeded"
    (rerun,) = [k for k in tags if k.startswith("deployctl:rerun:")]
    releases = project.history("staging")
    assert [r["kind"] for r in releases] == ["rollback", "deploy", "deploy", "deploy"]
    top = releases[0]
    assert top["id"] == rerun.removeprefix("deployctl:rerun:") and top["source"] == rel1
    assert (top["outcome"], top["current"], top["image_digest"]) == ("succeeded", True, ref1.split("@")[1])
    assert top["services"]["api"]["task_definition"] == arn and top["git_sha"] == releases[-1]["git_sha"]
    assert top["duration_s"] is not None and top["who"] == releases[-1]["who"]
    # The releases rolled back over are still there, unchanged; release 1 too.
    assert releases[1]["id"] == rel3 and releases[1]["outcome"] == "succeeded"
    assert (releases[-1]["id"], releases[-1]["outcome"], releases[-1]["current"]) == (rel1, "succeeded", False)
    status = project.cli("status", "-f", project.file, "--env", "staging", "--json").json()
    assert status["current"]["id"] == top["id"] and status["services"][0]["release"] == top["id"]


def test_a_revision_rolled_back_to_many_times_stays_under_the_tag_limit(project: Project, sim: Any) -> None:
    """ECS allows 50 tags per resource; each rollback that reruns a revision adds one. The next
    rollback drops the oldest rollback records instead of failing on the limit."""
    ref1, rel1 = project.deployed("staging", "v1")
    project.deployed("staging", "v2")
    arn1 = f"{service(project.world, CLUSTER)['taskDefinition'].rsplit(':', 1)[0]}:1"
    _, tags = td(project.world, arn1)
    old = [f"deployctl:rerun:2020010{d}T000000Z-000000000000-0000" for d in range(1, 10)]
    filler = 50 - len(tags) - len(old)  # other tags a team added to the revision
    project.world.c("ecs").tag_resource(resourceArn=arn1, tags=[
        *({"key": k, "value": "outcome=succeeded by=ci"} for k in old),
        *({"key": f"team:note-{i}", "value": "x"} for i in range(filler))])
    assert len(td(project.world, arn1)[1]) == 50

    res = project.cli("rollback", "-f", project.file, "--env", "staging", "--to", rel1, "--yes")

    assert res.code == 0, res.text
    assert "dropped the record of 1 oldest rollback(s) to it" in res.text
    _, tags = td(project.world, arn1)
    assert len(tags) == 50 and old[0] not in tags and all(k in tags for k in old[1:])
    assert all(f"team:note-{i}" in tags for i in range(filler))  # only rollback records go
    top = project.history("staging")[0]
    assert top["kind"] == "rollback" and top["source"] == rel1 and top["outcome"] == "succeeded"
    assert image_of(project.world, CLUSTER) == ref1


def test_rollback_to_a_deregistered_revision_registers_a_copy(project: Project, sim: Any) -> None:
    ref1, rel1 = project.deployed("staging", "v1")
    project.deployed("staging", "v2")
    target = for_config(load_env(read(project.path / "deploy.yaml"), "staging"))
    choice = target.choose_rollback()
    assert f"api: {FAMILY_STAGING}:2 → {FAMILY_STAGING}:1 (sha256:" in choice.summary[1]
    # Deregistered after the choice (by hand, another tool): an INACTIVE revision cannot run, so
    # the rollback registers a copy of it and says so.
    project.world.c("ecs").deregister_task_definition(taskDefinition=f"{FAMILY_STAGING}:1")
    lines: list[str] = []
    code = target.rollback(choice, DeployOptions(yes=True), run=engine_runner(target, as_json=False),
                           log=lines.append)
    assert code == 0
    assert f"api: {FAMILY_STAGING}:1 is deregistered (INACTIVE): it runs again as a copy" in "\n".join(lines)
    arn = service(project.world, CLUSTER)["taskDefinition"]
    definition, tags = td(project.world, arn)
    assert arn.endswith(f"{FAMILY_STAGING}:3") and definition["containerDefinitions"][0]["image"] == ref1
    first, _ = td(project.world, f"{FAMILY_STAGING}:1")
    assert definition["containerDefinitions"] == first["containerDefinitions"]
    assert tags["deployctl:kind"] == "rollback" and tags["deployctl:source"] == rel1
    assert tags["deployctl:outcome"] == "succeeded"
    assert project.history("staging")[0]["kind"] == "rollback"


def test_default_rollback_goes_to_the_newest_release_of_other_images(project: Project, sim: Any) -> None:
    ref1, rel1 = project.deployed("staging", "v1")
    ref2, rel2 = project.deployed("staging", "v2")
    # The same digest deployed again (--force): a release, but no rollback target from v2.
    assert project.run("staging", ref2, "--force").code == 0
    res = project.cli("rollback", "-f", project.file, "--env", "staging", "--yes")
    assert res.code == 0, res.text
    assert f"→ release {rel1}" in res.out
    assert image_of(project.world, CLUSTER) == ref1
    # History now lists: the rollback (v1), the re-run (v2), rel2 (v2), rel1 (v1). Counted down
    # that list, v1's release runs the images that run now: one step back is v2, not two.
    listed = project.history("staging")
    assert [r["kind"] for r in listed] == ["rollback", "deploy", "deploy", "deploy"]
    steps2 = project.cli("rollback", "-f", project.file, "--env", "staging", "--steps", "2", "--yes")
    assert steps2.code == 2
    assert ("staging has only 1 earlier succeeded release(s) with other images, not 2, to roll back to "
            f"(it runs {listed[0]['id']})") in steps2.err
    again = project.cli("rollback", "-f", project.file, "--env", "staging", "--yes")
    assert again.code == 0, again.text
    assert f"→ release {listed[1]['id']}" in again.out
    assert image_of(project.world, CLUSTER) == ref2
    # --to the first v2 release: the very task definition that runs, under another number. Going
    # "back" to it would change nothing, so it is refused (exit 2) rather than reported done.
    updates = len(sim.calls_of("UpdateService"))
    same = project.cli("rollback", "-f", project.file, "--env", "staging", "--to", rel2, "--yes")
    assert same.code == 2
    assert (f"staging already runs what release {rel2} deployed: the same task definitions under other "
            f"revision numbers ({FAMILY_STAGING}:3 = {FAMILY_STAGING}:2)") in same.err
    assert len(sim.calls_of("UpdateService")) == updates


def test_a_rollback_that_would_change_no_image_is_refused(project: Project, sim: Any) -> None:
    ref1, rel1 = project.deployed("staging", "v1")
    assert project.run("staging", ref1, "--force").code == 0
    updates = len(sim.calls_of("UpdateService"))
    res = project.cli("rollback", "-f", project.file, "--env", "staging", "--yes")
    assert res.code == 2
    assert ("staging has no earlier succeeded release with other images to roll back to "
            f"(it runs {project.history('staging')[0]['id']}; {rel1} ran the same images)") in res.err
    assert len(sim.calls_of("UpdateService")) == updates  # nothing was touched


def test_rollback_to_a_failed_or_unknown_release_is_refused(project: Project, sim: Any) -> None:
    project.deployed("staging", "v1")
    sim.script(API, "tasks_fail_to_start", cluster=CLUSTER)
    assert project.run("staging", project.world.push("v2")).code == 1
    failed = project.history("staging")[0]["id"]
    res = project.cli("rollback", "-f", project.file, "--env", "staging", "--to", failed, "--yes")
    assert res.code == 2 and "failed and was rolled back; refusing to roll back to it" in res.err
    res = project.cli("rollback", "-f", project.file, "--env", "staging", "--to", "nope", "--yes")
    assert res.code == 2 and "staging has no release nope" in res.err


# ------------------------------------------------------------------------------------ history, status


def test_history_after_three_deploys_one_failed(project: Project, sim: Any) -> None:
    ref1, rel1 = project.deployed("staging", "v1")
    sim.script(API, "tasks_fail_to_start", "success", cluster=CLUSTER)
    ref2 = project.world.push("v2")
    assert project.run("staging", ref2).code == 1
    ref3, rel3 = project.deployed("staging", "v3")

    releases = project.history("staging")

    assert [r["id"] for r in releases][0::2] == [rel3, rel1]
    assert [r["outcome"] for r in releases] == ["succeeded", "rolled-back", "succeeded"]
    assert [r["image_digest"] for r in releases] == [x.split("@")[1] for x in (ref3, ref2, ref1)]
    assert [r["current"] for r in releases] == [True, False, False]
    for r in releases:
        assert set(r) >= {"id", "outcome", "kind", "git_sha", "image_digest", "who", "started_at",
                          "finished_at", "duration_s", "services", "current"}
        assert r["git_sha"] == git(project.path, "rev-parse", "HEAD") and r["who"] == f"tester@{socket.gethostname()}"
        assert r["duration_s"] is not None
        assert r["started_at"] <= r["finished_at"]
        # The whole release (preflight, register, rollout), not one service's rollout (issue 16, item 2).
        whole = (datetime.fromisoformat(r["finished_at"]) - datetime.fromisoformat(r["started_at"])).total_seconds()
        assert r["duration_s"] == whole
    assert releases[1]["services"]["api"]["revision"] == 2
    assert "circuit breaker" in releases[1]["detail"]

    text = project.cli("history", "-f", project.file, "--env", "staging")
    assert text.code == 0
    lines = text.out.splitlines()
    assert lines[0].split()[:3] == ["release", "outcome", "kind"]
    assert lines[1].startswith(f"* {rel3}") and "rolled back" in lines[2] and lines[3].startswith(f"  {rel1}")
    limited = project.history("staging", "--limit", "2")
    assert [r["id"] for r in limited] == [rel3, releases[1]["id"]]


# deployctl.status/v1, the same keys for every target (docs/cli.md "--json output"); keys are only added.
STATUS_V1 = ["schema", "app", "env", "target", "cluster", "settled", "ok", "current", "services"]
STATUS_V1_CURRENT = ["id", "outcome", "kind", "git_sha", "image_digest", "started_at", "finished_at"]
STATUS_V1_SERVICE = ["service", "exists", "release", "outcome", "image_digest", "image", "git_sha", "running",
                     "desired", "healthy", "rolled_back", "ecs_service", "task_definition", "revision", "pending",
                     "rollout_state", "rollout_reason", "deployments", "targets", "events", "stopped_by_cost_cap",
                     "url", "containers"]
STATUS_V1_ECS_ONLY = STATUS_V1_SERVICE[11:21]
STATUS_V1_DOCKER_ONLY = STATUS_V1_SERVICE[21:]


def assert_status_v1(doc: dict[str, Any], target: str) -> None:
    assert list(doc) == STATUS_V1 and doc["schema"] == "deployctl.status/v1" and doc["target"] == target
    assert doc["current"] is None or list(doc["current"]) == STATUS_V1_CURRENT
    for svc in doc["services"]:
        assert list(svc) == STATUS_V1_SERVICE
        for key in STATUS_V1_DOCKER_ONLY if target == "ecs" else STATUS_V1_ECS_ONLY:
            assert svc[key] is None, key


def test_status_shows_each_service(project: Project, sim: Any) -> None:
    ref, rel = project.deployed("staging", "v1")
    res = project.cli("status", "-f", project.file, "--env", "staging", "--json")
    assert res.code == 0, res.text
    doc = res.json()
    assert_status_v1(doc, "ecs")
    assert doc["settled"] and doc["ok"] and doc["cluster"] == CLUSTER
    assert (doc["current"]["id"], doc["current"]["outcome"], doc["current"]["kind"]) == (rel, "succeeded", "deploy")
    assert doc["current"]["image_digest"] == ref.split("@")[1]
    (api,) = doc["services"]
    assert api["release"] == rel and api["image_digest"] == ref.split("@")[1] and api["revision"] == 1
    assert api["exists"] is True and api["image"] == ref and api["git_sha"] == doc["current"]["git_sha"]
    assert (api["running"], api["desired"], api["rollout_state"]) == (2, 2, "COMPLETED")
    assert api["targets"] == {"healthy": 2} and api["healthy"] == 2 and api["rolled_back"] is None
    assert 1 <= len(api["events"]) <= 5 and any("steady state" in e["message"] for e in api["events"])
    text = project.cli("status", "-f", project.file, "--env", "staging")
    assert f"api: release {rel} (succeeded)" in text.out and "running 2/2" in text.out


def test_status_json_deployments_and_events_are_what_ecs_shows(project: Project, sim: Any) -> None:
    # deployments/events of deployctl.status/v1 as DescribeServices gives them (the schema's
    # contract, written out from the raw answer here): mid-rollout, so two deployments show.
    project.deployed("staging", "v1")
    sim.script(API, sim.scenario("success", start_s=30.0, healthy_s=0.5), cluster=CLUSTER)
    proc = start_run(project, sim, "staging", project.world.push("v2"))
    try:
        wait_until(lambda: len(service(project.world, CLUSTER)["deployments"]) == 2, "the second deployment")
        res = project.cli("status", "-f", project.file, "--env", "staging", "--json")
        raw = service(project.world, CLUSTER)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    assert res.code == 0, res.text
    (api,) = res.json()["services"]
    assert api["deployments"] == [
        {"id": d.get("id"), "status": d.get("status"), "task_definition": d["taskDefinition"].rsplit("/", 1)[-1],
         "rollout_state": d.get("rolloutState"), "running": d.get("runningCount"), "desired": d.get("desiredCount"),
         "failed_tasks": d.get("failedTasks")} for d in raw["deployments"]]
    assert len(api["deployments"]) == 2
    shown = [(e["at"], e["message"]) for e in api["events"]]
    assert shown and set(shown) <= {(e["createdAt"].isoformat(), e["message"]) for e in raw["events"]}


def test_status_watch_follows_a_rollout_to_its_end(project: Project, sim: Any) -> None:
    project.deployed("staging", "v1")
    sim.script(API, sim.scenario("success", start_s=1.0, healthy_s=0.5), cluster=CLUSTER)
    ref2 = project.world.push("v2")
    proc = start_run(project, sim, "staging", ref2)
    try:
        res = project.cli("status", "-f", project.file, "--env", "staging", "--watch", "--interval", "0.1")
    finally:
        out, _ = proc.communicate(timeout=60)
    assert res.code == 0, res.text
    assert "rollout in_progress" in res.out and "every rollout completed" in res.out
    assert proc.returncode == 0, out
    assert image_of(project.world, CLUSTER) == ref2


def test_status_watch_exits_1_after_an_ecs_rollback(project: Project, sim: Any) -> None:
    project.deployed("staging", "v1")
    sim.script(API, "tasks_fail_to_start", cluster=CLUSTER)
    assert project.run("staging", project.world.push("v2")).code == 1
    res = project.cli("status", "-f", project.file, "--env", "staging", "--watch", "--interval", "0.05")
    assert res.code == 1
    assert "is not what runs: the service went back to" in res.err


def test_status_watch_json_timeout_still_prints_the_document(project: Project, sim: Any) -> None:
    project.deployed("staging", "v1")
    sim.script(API, sim.scenario("success", start_s=3.0, healthy_s=1.0), cluster=CLUSTER)
    proc = start_run(project, sim, "staging", project.world.push("v2"))
    try:
        res = project.cli("status", "-f", project.file, "--env", "staging", "--watch", "--json",
                          "--interval", "0.1", "--timeout", "0.5s")
    finally:
        out, _ = proc.communicate(timeout=60)
    assert res.code == 1
    # CI reads stdout: the one document, saying the watch ended unsettled, then exit 1.
    doc = res.json()
    assert doc["schema"] == "deployctl.status/v1" and doc["settled"] is False and doc["ok"] is False
    assert doc["services"][0]["rollout_state"] == "IN_PROGRESS"
    assert "rollouts still not settled after 0.5s" in res.err and "status --env staging --watch" in res.err
    assert proc.returncode == 0, out


# ------------------------------------------------------------------------ a watch cut off by Ctrl-C


def interrupted_run(project: Project, sim: Any, image: str) -> str:
    """`deployctl run` stopped with Ctrl-C while it watches; returns the release it left in progress.

    The rollout stands still from its UpdateService until the check below: on a loaded machine a
    sub-second simulated rollout could otherwise end before the Ctrl-C lands. It runs on after."""
    sim.freeze_on("UpdateService")
    proc = start_run(project, sim, "staging", image)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "Resume watching with `deployctl status --env staging --watch`" in out
    newest = project.history("staging")[0]
    assert newest["outcome"] == "in-progress"
    sim.thaw()
    return str(newest["id"])


def test_resumed_watch_settles_the_release_and_promote_goes_ahead(project: Project, sim: Any) -> None:
    project.deployed("staging", "v1")
    sim.script(API, sim.scenario("success", start_s=1.5, healthy_s=1.0), cluster=CLUSTER)
    ref2 = project.world.push("v2")
    release = interrupted_run(project, sim, ref2)

    st = project.cli("status", "-f", project.file, "--env", "staging", "--watch", "--interval", "0.1")

    assert st.code == 0, st.text
    assert "every rollout completed" in st.out
    assert f"release {release}: recorded api as succeeded on {FAMILY_STAGING}:2" in st.err
    # Recorded on the revision like a run records it: outcome, finish time, duration.
    _, tags = td(project.world, service(project.world, CLUSTER)["taskDefinition"])
    assert tags["deployctl:release"] == release and tags["deployctl:outcome"] == "succeeded"
    assert tags["deployctl:started-at"] <= tags["deployctl:finished-at"]
    assert float(tags["deployctl:duration-s"]) > 0
    (newest, _) = project.history("staging")
    assert (newest["id"], newest["outcome"], newest["current"]) == (release, "succeeded", True)
    res = project.cli("promote", "staging", "prod", "-f", project.file, "--yes")
    assert res.code == 0, res.text
    assert image_of(project.world, PROD_CLUSTER) == ref2


def test_a_cut_off_release_that_ecs_rolled_back_is_recorded_rolled_back(project: Project, sim: Any) -> None:
    project.deployed("staging", "v1")
    sim.script(API, sim.scenario("tasks_fail_to_start", fail_s=0.5), cluster=CLUSTER)
    release = interrupted_run(project, sim, project.world.push("v2"))

    st = project.cli("status", "-f", project.file, "--env", "staging", "--watch", "--interval", "0.1")

    assert st.code == 1
    assert "is not what runs: the service went back to" in st.err
    (newest, first) = project.history("staging")
    assert (newest["id"], newest["outcome"], first["current"]) == (release, "rolled-back", True)
    _, tags = td(project.world, f"{FAMILY_STAGING}:2")
    assert tags["deployctl:rolled-back-to"] == f"{FAMILY_STAGING}:1"
    assert "ECS rolled the service back to" in tags["deployctl:outcome-detail"]
    res = project.cli("promote", "staging", "prod", "-f", project.file, "--yes")
    assert res.code == 1 and "failed and was rolled back" in res.err


def test_a_release_is_not_settled_while_a_deploy_holds_the_lock(project: Project, sim: Any) -> None:
    from deployctl import lock

    project.deployed("staging", "v1")
    sim.script(API, sim.scenario("success", start_s=0.5, healthy_s=0.5), cluster=CLUSTER)
    release = interrupted_run(project, sim, project.world.push("v2"))
    table = lock.LockTable(project.world.c("dynamodb"))
    with lock.hold(table, "chat-api", "staging", release=release, lease=30):
        # A deploy owns the environment: ECS has finished, but the verdict is left to it.
        st = project.cli("status", "-f", project.file, "--env", "staging", "--watch", "--interval", "0.1")
        assert st.code == 0, st.text
        assert project.history("staging")[0]["outcome"] == "in-progress"
        refused = project.cli("promote", "staging", "prod", "-f", project.file, "--yes")
        assert refused.code == 1 and "is still in progress" in refused.err
    # Lock released: `history` settles it from what ECS shows.
    (newest, _) = project.history("staging")
    assert (newest["id"], newest["outcome"]) == (release, "succeeded")
    _, tags = td(project.world, f"{FAMILY_STAGING}:2")
    assert tags["deployctl:outcome"] == "succeeded"


# ------------------------------------------------------------------------------------ local target


@pytest.mark.docker
def test_local_status_json_has_the_ecs_shape(app: App, images: dict[str, str],  # noqa: F811
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from deployctl.render import status_doc as release_cmds

    assert list(release_cmds.STATUS_KEYS) == STATUS_V1 and list(release_cmds.STATUS_SERVICE_KEYS) == STATUS_V1_SERVICE
    file = str(app.root / "deploy.yaml")
    assert app.deploy(images["1.0.0"], sha="1" * 40)[0].exit_code == 0
    res = cli(capsys, "status", "-f", file, "--env", "dev", "--json")
    assert res.code == 0, res.text
    doc = res.json()
    assert_status_v1(doc, "docker")
    assert (doc["cluster"], doc["settled"], doc["ok"]) == (None, True, True)
    assert (doc["current"]["id"], doc["current"]["outcome"], doc["current"]["git_sha"]) == ("r1", "succeeded", "1" * 40)
    (api,) = doc["services"]
    assert (api["service"], api["exists"], api["release"], api["outcome"]) == ("api", True, "r1", "succeeded")
    assert (api["running"], api["desired"], api["healthy"], api["rolled_back"]) == (1, 1, 1, None)
    assert api["url"] == f"http://127.0.0.1:{app.port}" and [c["release"] for c in api["containers"]] == ["r1"]
    assert api["image"] == images["1.0.0"] and api["image_digest"] == doc["current"]["image_digest"]

    # A release that never became healthy: r1 keeps serving, which is not ok (as on ECS).
    app.edit('MODEL_LOAD_SECONDS: "1"', 'MODEL_LOAD_SECONDS: "1"\n      FAIL_HEALTH: "1"')
    app.edit("start_period: 10s", "start_period: 2s")
    app.edit("retries: 3", "retries: 1")
    assert app.deploy(images["2.0.0"], sha="2" * 40)[0].exit_code == 1
    doc = cli(capsys, "status", "-f", file, "--env", "dev", "--json").json()
    assert_status_v1(doc, "docker")
    assert (doc["settled"], doc["ok"], doc["current"]["id"]) == (True, False, "r1")
    (api,) = doc["services"]
    assert api["release"] == "r1" and "release r2 (failed) is not what runs" in api["rolled_back"]


@pytest.mark.docker
def test_local_target_commands_delegate_to_the_docker_target(app: App, images: dict[str, str],  # noqa: F811
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    file = str(app.root / "deploy.yaml")
    assert app.deploy(images["1.0.0"], sha="1" * 40)[0].exit_code == 0
    assert app.deploy(images["2.0.0"], sha="2" * 40)[0].exit_code == 0

    hist = cli(capsys, "history", "-f", file, "--env", "dev", "--json")
    assert hist.code == 0, hist.text
    assert [(r["id"], r["current"], r["git_sha"]) for r in hist.json()["releases"]] == [
        ("r2", True, "2" * 40), ("r1", False, "1" * 40)]
    unasked = cli(capsys, "rollback", "-f", file, "--env", "dev")
    assert unasked.code == 2 and "--yes" in unasked.err

    res = cli(capsys, "rollback", "-f", file, "--env", "dev", "--yes")
    assert res.code == 0, res.text
    assert "r2 → r1" in res.out and app.version() == "1.0.0"
    (newest, *_) = cli(capsys, "history", "-f", file, "--env", "dev", "--json").json()["releases"]
    assert (newest["id"], newest["kind"], newest["source"], newest["current"]) == ("r3", "rollback", "r1", True)
    st = cli(capsys, "status", "-f", file, "--env", "dev", "--json")
    assert st.code == 0 and st.json()["target"] == "docker" and st.json()["current"]["id"] == "r3"
    assert_status_v1(st.json(), "docker")
    assert "nothing to unlock" in cli(capsys, "unlock", "-f", file, "--env", "dev").out
