"""`deployctl run`'s job graph: which selected stages wait for which, when some are left out.

A stage left out of the run (`--skip push`, `--only build,deploy`, `--image`) must not take its
own needs with it: deploy still waits for lint and test, so a failing test stops the deploy.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from deployctl.adapters.git import GitFacts
from deployctl.app.run import build_jobs, effective_needs, select_stages
from deployctl.config import load_env, read
from deployctl.errors import StageFailed
from deployctl.pipeline import Job, run_jobs
from deployctl.plan import Stage, make_plan
from deployctl.render.ecs import Facts
from deployctl.ui import BaseReporter

FIXTURE_YAML = Path(__file__).resolve().parents[1] / "fixtures" / "app" / "deploy.yaml"
GIT = GitFacts(sha="3f2a9c41d0b7e6f5a4c3b2a1908f7e6d5c4b3a29", branch="main")


def fixture_plan() -> tuple[Any, Any]:
    cfg = load_env(read(str(FIXTURE_YAML)), "dev")
    return cfg, make_plan(cfg, GIT)


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({}, {"lint": (), "test": (), "build": (), "push": ("lint", "test", "build"), "deploy": ("push",)}),
    ({"skip": "push"}, {"lint": (), "test": (), "build": (), "deploy": ("lint", "test", "build")}),
    ({"only": "build,deploy"}, {"build": (), "deploy": ("build",)}),
    ({"only": "test,deploy"}, {"test": (), "deploy": ("test",)}),
    ({"skip": "lint,push"}, {"test": (), "build": (), "deploy": ("test", "build")}),
    ({"image": "127.0.0.1:5000/a:b"}, {"lint": (), "test": (), "deploy": ("lint", "test")}),
    ({"from_stage": "push"}, {"push": (), "deploy": ("push",)}),
    ({"only": "deploy"}, {"deploy": ()}),
])
def test_unselected_stages_pass_their_needs_on(kwargs: dict[str, str], expected: dict[str, tuple[str, ...]]) -> None:
    cfg, plan = fixture_plan()
    selected = select_stages(cfg, **kwargs)
    assert effective_needs(plan.stages, selected) == expected


def test_build_jobs_uses_the_inherited_needs() -> None:
    cfg, plan = fixture_plan()
    selected = select_stages(cfg, skip="push")
    jobs = build_jobs(cfg, plan, Facts(git_sha=GIT.sha), selected, root=str(FIXTURE_YAML.parent))
    assert [(j.name, j.needs) for j in jobs] == [
        ("lint", ()), ("test", ()), ("build", ()), ("deploy", ("lint", "test", "build"))]


def test_needs_of_a_cycle_through_unselected_stages_terminate() -> None:
    stages = (Stage("a", ("b",), ""), Stage("b", ("c",), ""), Stage("c", ("b",), ""))
    assert effective_needs(stages, ("a",)) == {"a": ()}


def test_failing_test_stops_deploy_when_push_is_skipped() -> None:
    """The reviewer's case: `--skip push` and a slow failing test. Deploy must not run at all."""
    cfg, plan = fixture_plan()
    selected = select_stages(cfg, skip="push")
    needs = effective_needs(plan.stages, selected)
    deployed = threading.Event()

    def fns(name: str) -> Any:
        def run(ctx: Any) -> None:
            if name == "test":
                raise StageFailed("tests failed")
            if name == "deploy":
                deployed.set()
        return run

    report = run_jobs([Job(n, needs[n], fns(n)) for n in selected], BaseReporter())
    status = {s.name: s.status for s in report.stages}
    assert status["test"] == "failed"
    assert status["deploy"] == "not_run"
    assert not deployed.is_set()
    assert report.exit_code == 1
