"""Reporters: GitHub Actions commands and files, plain and rich output, reporter selection."""

from __future__ import annotations

import io
import sys
import threading
from pathlib import Path

from deployctl.errors import StageFailed
from deployctl.pipeline import Job, RunReport, StageContext, StageRecord, run_jobs
from deployctl.ui import make_reporter
from deployctl.ui.console import format_duration, interrupt_line
from deployctl.ui.github import (
    GithubReporter,
    error_command,
    escape_data,
    escape_property,
    format_outputs,
    summary_markdown,
)
from deployctl.ui.progress import PlainReporter, RichReporter


def make_report(status: str = "failed", exit_code: int = 1, **outputs: str) -> RunReport:
    return RunReport(
        status=status,
        exit_code=exit_code,
        started_at=1000.0,
        ended_at=1012.5,
        duration_s=12.5,
        stages=(
            StageRecord("lint", "succeeded", 1000.0, 1001.2, 1.2, note="0 issues"),
            StageRecord("test", "failed", 1000.0, 1003.0, 3.0, message="`pytest` exited 1 | 2 failed",
                        tail=("collected 3 items", "FAILED test_x.py::test_y", "uses ```fences```")),
            StageRecord("build", "cancelled", 1000.0, 1003.1, 3.1, message="run cancelled"),
            StageRecord("push", "not_run", message="needs test failed"),
        ),
        outputs=dict(outputs),
    )


def test_workflow_command_escaping() -> None:
    assert escape_data("50% done\r\nnext") == "50%25 done%0D%0Anext"
    assert escape_property("a: b, c%\n") == "a%3A b%2C c%25%0A"
    assert error_command("deploy failed", "rollout: 2 of 3\nrolled back") == (
        "::error title=deploy failed::rollout: 2 of 3%0Arolled back"
    )
    assert error_command("x: y, z", "m") == "::error title=x%3A y%2C z::m"


def test_concurrent_stages_get_one_group_each_and_failures_an_annotation(tmp_path: Path) -> None:
    summary, outputs = tmp_path / "summary.md", tmp_path / "output"
    summary.write_text("earlier step\n")
    out = io.StringIO()
    reporter = GithubReporter(out, summary_path=summary, output_path=outputs)
    turn = threading.Barrier(2, timeout=10)

    def chatty(ctx: StageContext) -> None:
        # Interleave the two stages' lines for certain: each prints, then waits for the other.
        for i in range(3):
            ctx.log(f"{ctx.name} line {i}")
            turn.wait()
        ctx.outputs.setdefault("image", "registry.local/app:abc")

    def failing(ctx: StageContext) -> None:
        chatty(ctx)
        ctx.log("::error::forged by the test output")
        raise StageFailed("50% of tests failed:\nsee log")

    report = run_jobs([Job("lint", (), chatty), Job("test", (), failing)], reporter)
    assert report.status == "failed"
    text = out.getvalue().splitlines()

    def group(name: str) -> list[str]:
        start = next(i for i, line in enumerate(text) if line.startswith(f"::group::{name} "))
        end = text.index("::endgroup::", start)
        return text[start:end + 1]

    lint, test = group("lint"), group("test")
    assert lint[0] == f"::group::lint succeeded in {format_duration(report.stage('lint').duration_s)}"
    token_line = lint[1]
    assert token_line.startswith("::stop-commands::") and len(token_line) > len("::stop-commands::") + 16
    assert lint[2:-2] == ["lint line 0", "lint line 1", "lint line 2"]
    assert lint[-2] == f"::{token_line.split('::')[2]}::"
    # The forged command is inside the fenced (stop-commands) region, so the runner ignores it.
    assert test[2:-2] == ["test line 0", "test line 1", "test line 2", "::error::forged by the test output"]
    annotation = "::error title=test failed::50%25 of tests failed: see log"
    assert annotation in text
    assert text.index(annotation) > text.index(test[-1])
    # Outputs file: key=value lines.
    assert outputs.read_text() == "image=registry.local/app:abc\n"
    # Summary appended, not overwritten.
    md = summary.read_text()
    assert md.startswith("earlier step\n### deployctl run ❌ failed in ")
    assert "| Stage | Status | Duration | Note |" in md
    assert f"| lint | ✓ succeeded | {format_duration(report.stage('lint').duration_s)} |  |" in md
    assert "| test | ✗ failed |" in md and "50% of tests failed: see log |" in md


def test_summary_markdown_table_outputs_and_failure_tail() -> None:
    md = summary_markdown(make_report(image="r/app@sha256:abc", release="app:7"))
    lines = md.splitlines()
    assert lines[0] == "### deployctl run ❌ failed in 12.5s (exit 1)"
    table = lines[2:8]
    assert table == [
        "| Stage | Status | Duration | Note |",
        "| --- | --- | ---: | --- |",
        "| lint | ✓ succeeded | 1.2s | 0 issues |",
        "| test | ✗ failed | 3.0s | `pytest` exited 1 \\| 2 failed |",
        "| build | ⊘ cancelled | 3.1s | run cancelled |",
        "| push | · not run | - | needs test failed |",
    ]
    assert "| image | `r/app@sha256:abc` |" in lines and "| release | `app:7` |" in lines
    # The tail is fenced with more backticks than the output contains.
    assert "````text" in lines and lines[lines.index("````text") + 1] == "collected 3 items"
    assert "<details><summary>last lines of test</summary>" in lines


def test_outputs_use_heredoc_for_multiline_values_and_drop_bad_names() -> None:
    text = format_outputs({"image": "r/app:1", "notes": "line one\nline two", "bad=name": "x", "digest": ""})
    lines = text.splitlines()
    assert lines[0] == "image=r/app:1"
    assert lines[1].startswith("notes<<ghadelimiter_")
    delimiter = lines[1].split("<<", 1)[1]
    assert lines[2:5] == ["line one", "line two", delimiter]
    assert lines[5:] == ["digest="]  # and nothing for "bad=name"


def test_github_reporter_interrupted_prints_one_line_and_still_writes_files(tmp_path: Path) -> None:
    out = io.StringIO()
    report = RunReport(
        "interrupted", 130, 0.0, 1.0, 1.0,
        (StageRecord("lint", "succeeded", 0, 1, 1), StageRecord("test", "cancelled", 0, 1, 1),
         StageRecord("push", "not_run")),
        {"image": "a:b"},
    )
    GithubReporter(out, summary_path=tmp_path / "s", output_path=tmp_path / "o").run_finished(report)
    assert out.getvalue() == "interrupted: lint done; test cancelled; push not run\n"
    assert (tmp_path / "o").read_text() == "image=a:b\n"
    assert "⚠️ interrupted" in (tmp_path / "s").read_text()


def test_interrupt_line_wording() -> None:
    report = RunReport("interrupted", 130, 0, 1, 1, (
        StageRecord("lint", "succeeded"), StageRecord("build", "skipped"), StageRecord("test", "cancelled"),
        StageRecord("push", "not_run"), StageRecord("deploy", "not_run")))
    assert interrupt_line(report) == "interrupted: lint, build done; test cancelled; push, deploy not run"
    nothing = RunReport("interrupted", 130, 0, 1, 1, (StageRecord("lint", "cancelled"),))
    assert interrupt_line(nothing) == "interrupted: nothing done; lint cancelled"


def test_plain_reporter_output() -> None:
    out = io.StringIO()
    reporter = PlainReporter(out)
    reporter.stage_started("lint")
    reporter.stage_line("lint", "checking")
    reporter.stage_note("lint", "12 files")
    reporter.stage_finished(StageRecord("lint", "succeeded", 0, 1.2, 1.2, note="12 files"))
    reporter.stage_finished(StageRecord("push", "skipped", 0, 0, 0.01, message="image already in registry"))
    reporter.run_finished(make_report())
    lines = out.getvalue().splitlines()
    assert lines[:5] == [
        "==> lint started",
        "[lint] checking",
        "==> lint: 12 files",
        "==> lint succeeded in 1.2s (12 files)",
        "==> push skipped: image already in registry",
    ]
    assert lines[6:11] == [
        "stage  status     duration  note",
        "lint   succeeded  1.2s      0 issues",
        "test   failed     3.0s      `pytest` exited 1 | 2 failed",
        "build  cancelled  3.1s      run cancelled",
        "push   not run    -         needs test failed",
    ]
    assert "  FAILED test_x.py::test_y" in lines
    assert lines[-1] == "run failed in 12.5s (exit 1): test: `pytest` exited 1 | 2 failed"


def test_rich_reporter_renders_rows_and_final_table() -> None:
    out = io.StringIO()
    reporter = RichReporter(out)
    reporter.console.width = 120
    reporter.run_started(["lint", "test"])
    reporter.stage_started("lint")
    reporter.stage_line("lint", "checking [bold]markup[/] stays literal")
    reporter.stage_note("lint", "12 files")
    live_view = _render_text(reporter)
    assert "lint" in live_view and "running" in live_view and "12 files" in live_view
    assert "checking [bold]markup[/] stays literal" in live_view
    reporter.stage_finished(StageRecord("lint", "succeeded", 0, 1.2, 1.2))
    reporter.run_finished(make_report())
    text = out.getvalue()
    assert "lint succeeded in 1.2s" in text
    assert "needs test failed" in text and "FAILED test_x.py::test_y" in text
    assert "run failed in 12.5s (exit 1)" in text


def _render_text(reporter: RichReporter) -> str:
    from rich.console import Console

    console = Console(file=io.StringIO(), width=120, color_system=None)
    console.print(reporter._render())
    return console.file.getvalue()  # type: ignore[attr-defined]


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_make_reporter_selection(tmp_path: Path, monkeypatch) -> None:
    gh = make_reporter(json_mode=False, stream=io.StringIO(),
                       env={"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(tmp_path / "s")})
    assert isinstance(gh, GithubReporter) and gh.summary_path == tmp_path / "s" and gh.output_path is None
    assert isinstance(make_reporter(json_mode=False, stream=io.StringIO(), env={}), PlainReporter)
    assert isinstance(make_reporter(json_mode=False, stream=_Tty(), env={}), RichReporter)
    assert isinstance(make_reporter(json_mode=False, stream=_Tty(), env={"TERM": "dumb"}), PlainReporter)
    # --json: stdout is reserved for the document, so progress goes to stderr.
    fake_out, fake_err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", fake_out)
    monkeypatch.setattr(sys, "stderr", fake_err)
    quiet = make_reporter(json_mode=True, env={})
    assert isinstance(quiet, PlainReporter) and quiet.stream is fake_err
    human = make_reporter(json_mode=False, env={})
    assert isinstance(human, PlainReporter) and human.stream is fake_out
