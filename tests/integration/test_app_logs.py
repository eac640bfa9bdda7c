"""A failed rollout shows the app's own last words: the failing container's last lines from
CloudWatch Logs (moto), redacted, under the stop reason, in the stage's JSON details and in the
GitHub step summary. The rollout itself is the ECS rollout SIMULATION; the logs are real moto
CloudWatch Logs, written where the awslogs driver would write them (prefix/container/task-id).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from deployctl.adapters.git import GitFacts
from deployctl.pipeline import Job, run_jobs
from deployctl.plan import make_plan
from deployctl.targets import DeployOptions
from deployctl.targets import ecs as ecs_target
from deployctl.ui.github import summary_markdown
from tests.integration.test_ecs_deploy import SHA, Lines, first_deploy, load
from tests.support.aws_world import API, CLUSTER, base_config

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


def _deploy(cfg: Any, image_ref: str) -> tuple[Any, list[str]]:
    plan = make_plan(cfg, GitFacts(sha=SHA, branch="main"), image_override=image_ref)
    reporter = Lines()
    options = DeployOptions(poll_interval=0.05, timeout=30.0)
    report = run_jobs([Job("deploy", (), lambda ctx: ecs_target.deploy(plan, image_ref, ctx, options))], reporter)
    return report, reporter.lines


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
    # Terminal: under the stop reason, the last 30 lines of the failing container, redacted.
    head = next(i for i, line in enumerate(lines) if "last lines of api in task" in line)
    assert "exit 3" in lines[head] and f"{GROUP} api/api/" in lines[head]
    shown = [line.split("| ", 1)[1] for line in lines[head + 1:head + 31]]
    assert shown[-1] == "KeyError: 'MODEL_PATH'" and shown[-2] == "Traceback (most recent call last):"
    assert shown[0].startswith("boot step 13 of task")  # 30 lines: 27 boot lines, then the last 3
    assert not lines[head + 31].startswith("[api]   | ")  # exactly 30
    assert SECRET not in text and "password=***" in text
    # The lines come after the stop reason (the diagnosis), never before it.
    assert text.index("likely cause") < text.index("last lines of api")

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
