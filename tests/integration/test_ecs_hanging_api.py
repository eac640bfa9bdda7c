"""ECS: DescribeServices hangs mid-deploy (issue 12 §7). The ECS endpoint is a proxy in front of
the moto server (the approach of test_cancel_ecr_calls) that, once the deploy's UpdateService has
gone through, holds every DescribeServices unanswered. The rollout SIMULATION runs behind it.

The deploy must end within deploy.timeout plus the stated rollback budget (plus the grace for
recording the outcome and a little slack), exit 1, say that AWS did not answer (not "tasks
stuck in PENDING"), whether the rollback happened, what runs, and what to run next.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from deployctl import rollout
from tests.integration.conftest import git
from tests.integration.test_cancel_ecr_calls import StallingECR
from tests.integration.test_ecs_deploy import API, CLUSTER
from tests.integration.test_releases import FAMILY_STAGING, RELEASE_PHASES, Project, service, td

SIM_PHASES = RELEASE_PHASES
TIMEOUT = 4.0
SLACK = 3.0  # process-local overheads: config, git, client creation on a loaded 2-core machine


@pytest.fixture
def stalled_ecs(project: Project, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[StallingECR, set[str]]]:  # noqa: F811
    stall: set[str] = set()
    proxy = StallingECR(project.world.aws.endpoint, stall)  # the set is read per request
    monkeypatch.setenv("AWS_ENDPOINT_URL_ECS", proxy.url)
    stop = threading.Event()

    def arm() -> None:  # DescribeServices hangs from the first UpdateService on
        while not stop.is_set():
            if "UpdateService" in proxy.seen:
                stall.add("DescribeServices")
                return
            time.sleep(0.002)

    project.deployed("staging", "v1")  # through the proxy, nothing stalled yet
    assert proxy.seen.count("DescribeServices") > 0
    # The short timeout only for the deploy under test: a loaded machine can spend 4 s on the
    # first deploy's preflight alone.
    doc = yaml.safe_load((project.path / "deploy.yaml").read_text())
    doc["deploy"]["timeout"] = f"{TIMEOUT:g}s"
    (project.path / "deploy.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    git(project.path, "commit", "-qam", "short timeout")
    thread = threading.Thread(target=arm, daemon=True)
    thread.start()
    try:
        yield proxy, stall
    finally:
        stop.set()
        proxy.close()


def test_a_hanging_describe_services_ends_within_the_budget_and_says_what_is_known(
        project: Project, sim: Any, stalled_ecs: tuple[StallingECR, set[str]]) -> None:  # noqa: F811
    proxy, _ = stalled_ecs
    sim.script(API, sim.scenario("success", start_s=60), cluster=CLUSTER)  # would take long anyway

    began = time.monotonic()
    res = project.run("staging", project.world.push("v2"))
    took = time.monotonic() - began

    budget = TIMEOUT + rollout.rollback_budget(TIMEOUT) + rollout.OUTCOME_GRACE
    assert took <= budget + SLACK, f"took {took:.1f}s, budget {budget:g}s:\n{res.text}"
    assert res.code == 1, res.text
    assert "Traceback" not in res.text and "internal error" not in res.text
    text = " ".join(res.text.split())
    # The cause is AWS's silence, never stale task counts.
    assert "AWS did not answer DescribeServices" in text, res.text
    assert "PENDING" not in text.split("likely cause", 1)[-1].split("what to try", 1)[0], res.text
    # Whether the rollback happened: ECS accepted deployctl's UpdateService back to :1…
    assert proxy.seen.count("UpdateService") == 2
    assert f"the rollback to {FAMILY_STAGING}:1 was requested (ECS accepted the update)" in text, res.text
    # …what runs is unknown because AWS did not answer, and what to run next.
    assert f"whether {FAMILY_STAGING}:1 serves now is unknown" in text, res.text
    assert "deployctl status --env staging" in text
    # The new revision is recorded as failed (the outcome tag went through within the grace).
    _, tags = td(project.world, f"{FAMILY_STAGING}:2")
    assert tags["deployctl:outcome"] == "failed"
    # ECS did get the rollback: once AWS answers again, the service runs :1.
    proxy.release()
    deadline = time.monotonic() + 60
    while service(project.world, CLUSTER)["taskDefinition"].rsplit("/", 1)[-1] != f"{FAMILY_STAGING}:1":
        assert time.monotonic() < deadline, service(project.world, CLUSTER)["deployments"]
        time.sleep(0.1)


def test_when_update_service_hangs_too_the_rollback_is_reported_as_not_done(
        project: Project, sim: Any, stalled_ecs: tuple[StallingECR, set[str]]) -> None:  # noqa: F811
    proxy, stall = stalled_ecs
    sim.script(API, sim.scenario("success", start_s=60), cluster=CLUSTER)

    def hang_updates_later() -> None:  # after deployctl's own UpdateService went through
        while "UpdateService" not in proxy.seen:
            time.sleep(0.002)
        stall.add("UpdateService")

    threading.Thread(target=hang_updates_later, daemon=True).start()
    began = time.monotonic()
    res = project.run("staging", project.world.push("v2"))
    took = time.monotonic() - began

    budget = TIMEOUT + rollout.rollback_budget(TIMEOUT) + rollout.OUTCOME_GRACE
    assert took <= budget + SLACK, f"took {took:.1f}s:\n{res.text}"
    assert res.code == 1, res.text
    text = " ".join(res.text.split())
    assert f"the rollback to {FAMILY_STAGING}:1 was NOT done" in text, res.text
    assert f"deployctl rollback --env staging` if {FAMILY_STAGING}:2 is still live" in text, res.text
    assert "Last seen:" in text, res.text
    assert "Traceback" not in res.text
