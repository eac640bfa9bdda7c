"""A failure whose message is a block (every preflight problem; a deploy's outcome) is said once,
line by line, at the end of the run; tables and the stage's finished line get a short cell.
The same through the plain reporter, the GitHub log and step summary. Ctrl-C's last line says
what a stage had done and what goes on."""

from __future__ import annotations

import io
from pathlib import Path

from deployctl.errors import DeployFailed, PreflightFailed
from deployctl.pipeline import Cancelled, Job, RunReport, StageContext, StageRecord, run_jobs
from deployctl.rollout import report
from deployctl.ui.console import interrupt_line
from deployctl.ui.github import GithubReporter
from deployctl.ui.progress import PlainReporter

PROBLEMS = ["preflight found 3 problems; nothing was changed:",
            "- image 123456789012.dkr.ecr.us-east-1.amazonaws.com/app@sha256:abc is not in ECR: push it first",
            "- secret app/openai-key does not exist in us-east-1: create it",
            "- target group app-tg does not exist: create it or fix services.api.load_balancer"]


def _run(exc: BaseException, reporter: object) -> RunReport:
    def job(ctx: StageContext) -> None:
        ctx.log("preflight: checking")
        raise exc

    return run_jobs([Job("deploy", (), job)], reporter, handle_signals=False)  # type: ignore[arg-type]


def test_a_preflight_error_with_many_problems_is_printed_one_per_line_once() -> None:
    out = io.StringIO()
    rep = _run(PreflightFailed("\n".join(PROBLEMS)), PlainReporter(out))
    text = out.getvalue()
    lines = text.splitlines()
    for problem in PROBLEMS[1:]:
        assert lines.count(problem) == 1, text  # on its own line, once
        assert sum(problem in line for line in lines) == 1, text
    short = "preflight found 3 problems; nothing was changed (see below)"
    assert f"==> deploy failed in {lines[-1].split(' in ')[1].split(' ')[0]}: {short}" in lines
    row = next(line for line in lines if line.startswith("deploy ") and " failed " in line)
    assert row.endswith(short)
    assert "last lines of deploy:" not in text  # the log is not repeated under it
    assert lines[-1].startswith("run failed in ") and lines[-1].endswith("(exit 1): deploy failed (above)")
    # The JSON report keeps the whole message.
    assert rep.stage("deploy").message == "\n".join(PROBLEMS)


def test_a_deploy_block_goes_whole_into_the_annotation_and_once_into_the_step_summary(tmp_path: Path) -> None:
    block, short = report.failure("chat-api", "prod", [
        report.Ended("api", report.ROLLED_BACK, "rolled back to chat-api-prod-api:4 (ECS deployment circuit "
                     "breaker: tasks failed to start)", "chat-api-prod-api:4",
                     ("likely cause (2 tasks): The container exited with code 1 shortly after starting.",
                      "  what to try: read the logs")),
        report.Ended("worker", report.NOT_DEPLOYED, "waits for api")])
    assert short == "api rolled back to chat-api-prod-api:4"
    out, summary = io.StringIO(), tmp_path / "summary.md"
    _run(DeployFailed(block, short=short), GithubReporter(out, summary_path=summary))
    log = out.getvalue()
    assert "::error title=deploy failed::deploy of chat-api to prod failed (api):%0A  api: rolled back" in log
    md = summary.read_text()
    assert md.count("circuit breaker: tasks failed to start") == 1
    assert "| deploy | ✗ failed |" in md and f"| {short} |" in md
    assert "- live now: api chat-api-prod-api:4, worker unchanged" in md
    assert "- next: fix the cause above, then deploy again (`deployctl run --env prod`)" in md
    assert "- worker not deployed (waits for api)" in md
    assert "<details>" not in md  # no log tail: the block says it


def test_a_failed_rollout_that_left_the_new_revision_live_points_at_rollback() -> None:
    block, short = report.failure("chat-api", "prod", [
        report.Ended("api", report.FAILED, "ECS deployment circuit breaker: tasks failed to start and ECS did not "
                     "roll back; not rolled back (--no-rollback): the service stays on the failed revision",
                     "chat-api-prod-api:5 (FAILED)")])
    assert "  live now: api chat-api-prod-api:5 (FAILED)" in block.splitlines()
    assert "`deployctl rollback --env prod`" in block
    assert short == "api failed: ECS deployment circuit breaker: tasks failed to start and ECS did not roll back"


def test_an_interrupted_deploy_says_what_it_did_and_what_goes_on() -> None:
    done = report.interrupted("staging", [
        report.Ended("api", report.OK, "succeeded", "chat-api-staging-api:7"),
        report.Ended("web", report.INTERRUPTED, "watch interrupted", "chat-api-staging-web:5"),
        report.Ended("worker", report.NOT_DEPLOYED, "run interrupted")])
    run = RunReport("interrupted", 130, 0, 1, 1, (
        StageRecord("lint", "succeeded"),
        StageRecord("deploy", "cancelled", message="interrupted while watching", summary=done)))
    assert interrupt_line(run) == (
        "interrupted: lint done; api: chat-api-staging-api:7 live; web: revision chat-api-staging-web:5 "
        "registered and rolling out; worker: not deployed; ECS continues the deployment — check with "
        "`deployctl status --env staging --watch`")
    # Without a stage that says what it did, the line stays as it was.
    bare = RunReport("interrupted", 130, 0, 1, 1, (StageRecord("deploy", "cancelled", message="run cancelled"),))
    assert interrupt_line(bare) == "interrupted: nothing done; deploy cancelled"


def test_cancelled_carries_what_was_done_into_the_record() -> None:
    def deploy(ctx: StageContext) -> None:
        raise Cancelled("interrupted while watching", done="web: revision x:5 registered and rolling out")

    rep = run_jobs([Job("deploy", (), deploy)], PlainReporter(io.StringIO()), handle_signals=False)
    assert rep.stage("deploy").summary == "web: revision x:5 registered and rolling out"


def test_the_terminal_view_prints_the_block_once_instead_of_the_log_tail() -> None:
    from deployctl.ui.progress import RichReporter

    out = io.StringIO()
    reporter = RichReporter(out)
    reporter.console.width = 200
    _run(PreflightFailed("\n".join(PROBLEMS)), reporter)
    text = out.getvalue()
    for problem in PROBLEMS[1:]:
        assert text.count(problem) == 1, text
    assert "last lines of deploy" not in text and "preflight: checking" not in text
    assert "run failed in " in text.splitlines()[-1]


def test_the_final_block_has_the_whole_diagnosis_and_the_apps_lines_under_the_stop_reason() -> None:
    diagnosis = ("likely cause (4 tasks): The container exited with code 3 shortly after starting.",
                 "  what to try: read the logs",
                 "  seen: Essential container in task exited")
    block, _ = report.failure("chat-api", "staging", [
        report.Ended("api", report.ROLLED_BACK, "rolled back to chat-api-staging-api:1 (ECS deployment circuit "
                     "breaker: tasks failed to start)", "chat-api-staging-api:1", diagnosis),
        report.Ended("worker", report.OK, "succeeded", "chat-api-staging-worker:3")])
    lines = block.splitlines()
    assert [line.strip() for line in lines[2:5]] == [d.strip() for d in diagnosis]  # all of it, once
    app_log = {"service": "api", "task_id": "abc", "container": "api", "exit_code": 3, "log_group": "/g",
               "log_stream": "api/api/abc", "log_lines": ["Traceback (most recent call last):",
                                                         "KeyError: 'MODEL_PATH'"], "missing": ""}
    shown = report.with_app_logs(lines, [app_log])
    at = shown.index("    last lines of api in task abc, exit 3 (/g api/api/abc):")
    assert at == 5  # under the api's stop reason and diagnosis
    assert shown[at + 1:at + 3] == ["      | Traceback (most recent call last):", "      | KeyError: 'MODEL_PATH'"]
    assert shown[at + 3].startswith("  live now:")


def test_the_plain_output_says_the_apps_lines_once_at_the_end() -> None:
    block, short = report.failure("chat-api", "staging", [
        report.Ended("api", report.ROLLED_BACK, "rolled back to x:1 (ECS deployment circuit breaker: tasks failed "
                     "to start)", "x:1", ("likely cause: a crash",))])

    def job(ctx: StageContext) -> None:
        ctx.add_detail("app_logs", {"service": "api", "task_id": "abc", "container": "api", "exit_code": 1,
                                    "log_group": "/g", "log_stream": "api/api/abc",
                                    "log_lines": ["KeyError: 'MODEL_PATH'"], "missing": ""})
        raise DeployFailed(block, short=short)

    out = io.StringIO()
    run_jobs([Job("deploy", (), job)], PlainReporter(out), handle_signals=False)
    text = out.getvalue()
    assert text.count("KeyError: 'MODEL_PATH'") == 1
    assert text.index("likely cause: a crash") < text.index("| KeyError: 'MODEL_PATH'") < text.index("live now:")
