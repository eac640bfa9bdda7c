"""What a person reads at the end of an ECS deploy (moto + rollout SIMULATION, the real stage
engine and the plain reporter): a failure said once, an alarm failure naming the alarm that
fired, deployctl's own rollback starting at the deadline, and Ctrl-C saying what goes on.
"""

from __future__ import annotations

import io
import os
import signal
import time
from pathlib import Path
from typing import Any

from deployctl.adapters.git import GitFacts
from deployctl.pipeline import Job, RunReport, run_jobs
from deployctl.plan import make_plan
from deployctl.targets import DeployOptions
from deployctl.targets import ecs as ecs_target
from deployctl.ui.progress import PlainReporter
from tests.integration.test_ecs_deploy import (  # the ECS deploy tests' world, fixtures and helpers
    ALARM,
    API,
    CLUSTER,
    FAMILY_API,
    SHA,
    base_config,
    calls,
    calls_after,
    first_deploy,
    mid_rollout,
    when,
)

REASON = "Threshold Crossed: 1 datapoint [12.0 (07/12/26 12:00:00)] was greater than the threshold (5.0)."


def plain_deploy(cfg: Any, ref: str, *, handle_signals: bool = False, **opts: Any) -> tuple[RunReport, str]:
    """The deploy stage under the plain reporter (what CI logs and pipes show)."""
    opts.setdefault("poll_interval", 0.05)
    opts.setdefault("timeout", 30.0)
    plan = make_plan(cfg, GitFacts(sha=SHA, branch="main"), image_override=ref)
    out = io.StringIO()
    options = DeployOptions(**opts)
    report = run_jobs([Job("deploy", (), lambda ctx: ecs_target.deploy(plan, ref, ctx, options))],
                      PlainReporter(out), handle_signals=handle_signals)
    return report, out.getvalue()


def after_stage_end(text: str) -> list[str]:
    """The lines from the deploy stage's finished line on: the run's summary."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("==> deploy failed"))
    return lines[start:]


def test_a_rollback_is_said_once_with_cause_what_is_live_and_the_next_command(world: Any, sim: Any,
                                                                              tmp_path: Path) -> None:
    sim.script(API, "success", "tasks_fail_to_start", cluster=CLUSTER, failure="image")
    cfg, _ = first_deploy(world, tmp_path)
    report, text = plain_deploy(cfg, world.push("v2"))

    assert report.exit_code == 1
    summary = after_stage_end(text)
    said = [line for line in summary if "circuit breaker: tasks failed to start" in line]
    assert len(said) == 1, "\n".join(summary)  # the block, and nowhere else after the log
    # The finished line and the table carry a short cell, not the whole text.
    assert summary[0].startswith("==> deploy failed in ") and summary[0].endswith(
        f"api rolled back to {FAMILY_API}:1")
    row = next(line for line in summary if line.startswith("deploy ") and " failed " in line)
    assert row.endswith(f"api rolled back to {FAMILY_API}:1")
    # The block: cause, what is live now, the next command - each once; no repeated log tail.
    assert sum("ECS could not pull the image" in line for line in summary) == 1
    assert summary.count(f"  live now: api {FAMILY_API}:1") == 1
    assert sum(line.startswith("  next: ") and "deployctl run --env staging" in line for line in summary) == 1
    assert not any("last lines of deploy" in line or "hint:" in line for line in summary)
    assert summary[-1].startswith("run failed in ") and "(exit 1)" in summary[-1]


def test_an_alarm_rollback_names_the_alarm_its_metric_and_reason(world: Any, sim: Any, tmp_path: Path) -> None:
    cfg, _ = first_deploy(world, tmp_path)
    sim.script(API, sim.scenario("success", start_s=0.6, healthy_s=0.6), cluster=CLUSTER)
    ref2 = world.push("v2")
    fire = mid_rollout(sim, lambda: world.c("cloudwatch").set_alarm_state(
        AlarmName=ALARM, StateValue="ALARM", StateReason=REASON))
    report, text = plain_deploy(cfg, ref2)
    fire.join()

    message = report.stage("deploy").message
    assert report.exit_code == 1, text
    assert "deployment deployment" not in text
    assert f"rolled back to {FAMILY_API}:1" in message
    named = f"{ALARM} (AWS/ApplicationELB HTTPCode_Target_5XX_Count Sum > 5)"
    assert named in message and REASON.rstrip(".") in message
    # The diagnosis names the alarm that fired (from DescribeAlarms), not the configured list.
    assert f"The deployment alarm {named} went into ALARM" in message


def test_deployctls_own_rollback_starts_within_2s_of_the_deadline(world: Any, sim: Any, tmp_path: Path) -> None:
    doc = base_config(world)
    doc["deploy"]["circuit_breaker"] = False
    sim.script(API, "success", sim.scenario("stall", stuck="health"), "success", cluster=CLUSTER)
    cfg, _ = first_deploy(world, tmp_path, doc)
    timeout = 10.0
    t0 = time.monotonic()
    # The real polling policy (2 s apart at first): the call budget is what could hold a rollback back.
    report, text = plain_deploy(cfg, world.push("v2"), timeout=timeout, poll_interval=5.0)

    assert report.exit_code == 1, text
    updates = sim.calls_of("UpdateService")
    assert len(updates) == 2  # ours, then deployctl's rollback
    assert updates[1].monotonic - t0 <= timeout + 2.0, updates[1].monotonic - t0
    assert world.service()["taskDefinition"].endswith(f"{FAMILY_API}:1")


def test_ctrl_c_while_watching_ends_with_what_was_done_and_what_goes_on(world: Any, sim: Any,
                                                                         tmp_path: Path) -> None:
    cfg, _ = first_deploy(world, tmp_path)
    sim.script(API, sim.scenario("success", start_s=3.0, healthy_s=3.0), cluster=CLUSTER)
    ref2 = world.push("v2")
    polled = sim.freeze_on("UpdateService")
    t = when(lambda: polled.is_set() and calls_after(sim, "DescribeServices", "UpdateService") >= 2,
             lambda: os.kill(os.getpid(), signal.SIGINT))
    report, text = plain_deploy(cfg, ref2, handle_signals=True)
    t.join()
    sim.thaw()

    assert report.exit_code == 130
    last = text.splitlines()[-1]
    assert last == (f"interrupted: api: revision {FAMILY_API}:2 registered and rolling out; ECS continues the "
                    "deployment — check with `deployctl status --env staging --watch`"), last
    assert "nothing done" not in text
    assert calls(sim, "UpdateService") == 1  # the deployment was left running
