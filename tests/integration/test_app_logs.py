"""A failed rollout shows the app's own last words: the failing container's last lines from
CloudWatch Logs (moto), redacted, under the stop reason, in the stage's JSON details and in the
GitHub step summary. The rollout itself is the ECS rollout SIMULATION; the logs are real moto
CloudWatch Logs, written where the awslogs driver would write them (prefix/container/task-id).
"""

from __future__ import annotations

import io
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from deployctl.adapters.git import GitFacts
from deployctl.pipeline import Job, run_jobs
from deployctl.plan import make_plan
from deployctl.targets import DeployOptions, ecs_app_logs
from deployctl.targets import ecs as ecs_target
from deployctl.ui import BaseReporter
from deployctl.ui.github import summary_markdown
from deployctl.ui.progress import PlainReporter, RichReporter
from tests.integration.test_cancel_ecr_calls import StallingECR
from tests.integration.test_ecs_deploy import SHA, first_deploy, load
from tests.support.aws_world import API, CLUSTER, base_config
from tests.support.aws_world import FAMILY_API as FAMILY

GROUP = "/deployctl/chat-api/staging"
SECRET = "hunter2-database-password"


def _app_output(task_id: str) -> list[str]:
    lines = [f"boot step {i} of task {task_id}" for i in range(40)]
    lines += [f"connecting with password={SECRET}",
              "Traceback (most recent call last):",
              "KeyError: 'MODEL_PATH'"]
    return lines


class AppWriter:
    """Writes each new simulated task's output into its awslogs stream as soon as the task
    exists (an app logs while it runs, before ECS sees it exit)."""

    def __init__(self, world: Any, sim: Any, revision: str) -> None:
        self.logs, self.sim, self.revision = world.c("logs"), sim, revision
        self.done: set[str] = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> AppWriter:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)

    def _loop(self) -> None:
        while not self.stop.is_set():
            for task in self.sim.tasks(API, cluster=CLUSTER):
                if task.id in self.done or not task.task_definition_arn.endswith(self.revision):
                    continue
                stream = f"api/api/{task.id}"
                self.logs.create_log_stream(logGroupName=GROUP, logStreamName=stream)
                now = int(time.time() * 1000)
                self.logs.put_log_events(logGroupName=GROUP, logStreamName=stream, logEvents=[
                    {"timestamp": now + i, "message": m} for i, m in enumerate(_app_output(task.id))])
                self.done.add(task.id)
            time.sleep(0.01)


def _deploy(cfg: Any, image_ref: str, *, terminal: bool = False) -> tuple[Any, list[str]]:
    """Deploy; the run's whole output as a person sees it: plain (CI, pipes) or the terminal view."""
    plan = make_plan(cfg, GitFacts(sha=SHA, branch="main"), image_override=image_ref)
    out = io.StringIO()
    reporter: BaseReporter = PlainReporter(out)
    if terminal:
        rich = RichReporter(out, force_terminal=True)
        rich.console.width = 400  # one app line per output line
        reporter = rich
    options = DeployOptions(poll_interval=0.05, timeout=30.0)
    report = run_jobs([Job("deploy", (), lambda ctx: ecs_target.deploy(plan, image_ref, ctx, options))], reporter,
                      handle_signals=False)
    return report, out.getvalue().splitlines()


def test_a_crash_shows_the_containers_last_lines_redacted(world: Any, sim: Any, tmp_path: Path) -> None:
    world.c("logs").create_log_group(logGroupName=GROUP)
    # The crash comes a while after RUNNING, as an app that fails while loading its model.
    sim.script(API, "success", sim.scenario("crash", exit_code=3, fail_s=0.6), cluster=CLUSTER)
    cfg, _ = first_deploy(world, tmp_path)
    with AppWriter(world, sim, ":2") as writer:
        report, lines = _deploy(cfg, world.push("v2"))

    assert report.exit_code == 1
    text = "\n".join(lines)
    assert writer.done, "no task of the new revision was simulated"
    # Output (CI): under the stop reason, the last 30 lines of the failing container, redacted,
    # said once, in the failure block at the end (not in the deploy's log as well).
    head = next(i for i, line in enumerate(lines) if "last lines of api in task" in line)
    assert "exit 3" in lines[head] and f"{GROUP} api/api/" in lines[head]
    shown = [line.split("| ", 1)[1] for line in lines[head + 1:head + 31]]
    assert shown[-1] == "KeyError: 'MODEL_PATH'" and shown[-2] == "Traceback (most recent call last):"
    assert shown[0].startswith("boot step 13 of task")  # 30 lines: 27 boot lines, then the last 3
    assert "| " not in lines[head + 31]  # exactly 30
    assert SECRET not in text and "password=***" in text
    # The lines come after the stop reason (the diagnosis), never before it, and each is said once.
    assert text.index("likely cause") < text.index("last lines of api")
    assert text.count("KeyError: 'MODEL_PATH'") == 1 and text.count("likely cause") == 1
    # The tasks that crashed the same way are one line, counted, not one line each.
    stopped = [line for line in lines if "stopped (EssentialContainerExited)" in line]
    assert len(stopped) == 1 and re.search(r"\] \d+ tasks stopped \(EssentialContainerExited\)", stopped[0]), stopped
    assert any(line.startswith("deploy of chat-api to staging failed") for line in lines[:head])

    # --json: the stage's details carry the same lines, redacted, with the stream they came from.
    stage = report.to_json_dict()["stages"][0]
    (app_log,) = stage["details"]["app_logs"]
    task_id = app_log["task_id"]
    assert app_log["service"] == "api" and app_log["container"] == "api" and app_log["exit_code"] == 3
    assert app_log["log_group"] == GROUP and app_log["log_stream"] == f"api/api/{task_id}"
    assert app_log["log_lines"] == shown and len(app_log["log_lines"]) == 30
    assert f"of task {task_id}" in app_log["log_lines"][0]
    # Step summary: the same lines in an open <details> block.
    summary = summary_markdown(report)
    assert f"api: last lines of container api in task {task_id}, exit 3" in summary
    assert "KeyError: 'MODEL_PATH'" in summary and SECRET not in summary


def test_the_terminal_view_keeps_the_apps_last_lines_after_the_live_view_is_gone(
        world: Any, sim: Any, tmp_path: Path) -> None:
    # The live view shows a 3-line tail and clears it when the stage ends: the lines must be in
    # what stays on the screen, the final block, under the stop reason.
    world.c("logs").create_log_group(logGroupName=GROUP)
    sim.script(API, "success", sim.scenario("crash", exit_code=3, fail_s=0.6), cluster=CLUSTER)
    cfg, _ = first_deploy(world, tmp_path)
    with AppWriter(world, sim, ":2"):
        report, lines = _deploy(cfg, world.push("v2"), terminal=True)

    assert report.exit_code == 1
    final = [re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", line).rstrip() for line in lines]
    block = final[next(i for i, line in enumerate(final) if line.startswith("deploy of chat-api to staging")):]
    text = "\n".join(block)
    assert "KeyError: 'MODEL_PATH'" in text and "| Traceback (most recent call last):" in text
    assert SECRET not in "\n".join(final) and "password=***" in text
    assert text.index("api: rolled back") < text.index("likely cause") < text.index("last lines of api in task")
    assert text.index("KeyError: 'MODEL_PATH'") < text.index("live now:")


def test_tasks_that_never_started_say_there_is_no_log(world: Any, sim: Any, tmp_path: Path) -> None:
    world.c("logs").create_log_group(logGroupName=GROUP)
    sim.script(API, "success", "tasks_fail_to_start", cluster=CLUSTER, failure="secrets")
    cfg, _ = first_deploy(world, tmp_path)
    report, lines = _deploy(cfg, world.push("v2"))

    assert report.exit_code == 1
    text = "\n".join(lines)
    assert "ResourceInitializationError" in text
    (app_log,) = report.to_json_dict()["stages"][0]["details"]["app_logs"]
    assert app_log["log_lines"] == [] and "no log stream api/api/" in app_log["missing"]
    assert f"last lines of api in task {app_log['task_id']}: no log stream" in text


def test_a_success_adds_no_app_logs(world: Any, sim: Any, tmp_path: Path) -> None:
    cfg = load(tmp_path, base_config(world))
    report, _ = _deploy(cfg, world.push("v1"))
    assert report.exit_code == 0
    assert report.to_json_dict()["stages"][0]["details"] == {}


class Timed(BaseReporter):
    """The deploy's log lines with the instant each was said."""

    def __init__(self) -> None:
        self.lines: list[tuple[float, str]] = []

    def stage_line(self, name: str, line: str) -> None:
        self.lines.append((time.monotonic(), line))


def test_deployctls_own_rollback_goes_out_before_a_slow_log_read(
        world: Any, sim: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The breaker fails the rollout but ECS does not roll back (rollback off): deployctl does.
    # CloudWatch Logs hangs: the app-log read must not hold the rollback back.
    world.c("logs").create_log_group(logGroupName=GROUP)
    doc = base_config(world)
    doc["deploy"]["circuit_breaker"] = {"enable": True, "rollback": False}
    sim.script(API, "success", sim.scenario("crash", exit_code=3, fail_s=0.6), "success", cluster=CLUSTER)
    cfg, _ = first_deploy(world, tmp_path, doc)
    proxy = StallingECR(world.aws.endpoint, {"GetLogEvents"})
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", proxy.url)
    try:
        plan = make_plan(cfg, GitFacts(sha=SHA, branch="main"), image_override=world.push("v2"))
        rep = Timed()
        before = len(sim.calls)
        options = DeployOptions(poll_interval=0.05, timeout=30.0)
        report = run_jobs([Job("deploy", (), lambda ctx: ecs_target.deploy(plan, plan.image_ref, ctx, options))],
                          rep, handle_signals=False)
    finally:
        proxy.close()

    assert report.exit_code == 1
    message = report.stage("deploy").message
    assert f"deployctl rolled back to {FAMILY}:1" in message, message
    said = next(t for t, line in rep.lines if "FAILED:" in line)
    updates = [c.monotonic for c in sim.calls[before:] if c.action == "UpdateService"]
    assert len(updates) == 2  # the rollout, then deployctl's rollback
    # The rollback went out before the (hanging) log read gave up: waiting for it would put
    # READ_GRACE (3 s) between the verdict and the rollback. (A 1 s bound failed on a loaded
    # machine at 1.01 s: the calls in between are a few moto round trips.)
    assert updates[1] - said < ecs_app_logs.READ_GRACE, updates[1] - said
    assert "GetLogEvents" in proxy.seen  # it was tried, while ECS rolled back
    (app_log,) = report.to_json_dict()["stages"][0]["details"]["app_logs"]
    assert app_log["log_lines"] == [] and "could not be read" in app_log["missing"]
    assert "likely cause" in message  # the diagnosis is still in the failure block
