"""GitHub Actions output: log groups, error annotations, the step summary and step outputs.

Workflow commands are lines on stdout (`::group::…`, `::error …::…`); the summary and the
outputs are files the runner names in $GITHUB_STEP_SUMMARY and $GITHUB_OUTPUT.
"""

from __future__ import annotations

import re
import uuid
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from deployctl.ui.base import BaseReporter
from deployctl.ui.console import (
    STATUS_ICONS,
    STATUS_WORDS,
    failure_block,
    format_duration,
    interrupt_line,
    outcome_line,
    plain_table,
    record_note,
    scrub,
    stage_finished_line,
    timing_rows,
)

if TYPE_CHECKING:
    from deployctl.pipeline import RunReport, StageRecord

# Per-stage buffer cap: a chatty build must not grow memory without bound; the end of a log is
# where failures are, so the oldest lines are the ones dropped.
MAX_BUFFERED_LINES = 20_000
_OUTPUT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def escape_data(text: str) -> str:
    """Escape a workflow command's message (after the final `::`)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a workflow command property value (`title=…`): also `:` and `,`."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def error_command(title: str, message: str) -> str:
    """An `::error` annotation. Its text is redacted first: annotations outlive the log (they are
    listed on the run's page and in the checks API)."""
    return f"::error title={escape_property(scrub(title))}::{escape_data(scrub(message))}"


class GithubReporter(BaseReporter):
    """Groups each stage's output, annotates failures, writes the summary and step outputs.

    Stages run concurrently, but a GitHub log group is simply "every line between ::group:: and
    ::endgroup::" — there is one open group at a time and no way to say which group a line
    belongs to. Streaming concurrent stages live would put lint's lines inside test's group.
    So each stage's lines are buffered and written as one group when the stage finishes; only
    the short `==> stage started` / note lines appear live, between groups.

    Stage output is untrusted (a test can print `::add-mask::` or `::set-env` lookalikes), so
    each group's lines are fenced with `::stop-commands::<random token>` to keep the runner
    from executing them.
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        summary_path: str | Path | None = None,
        output_path: str | Path | None = None,
        max_buffered_lines: int = MAX_BUFFERED_LINES,
    ) -> None:
        self.stream = stream
        self.summary_path = Path(summary_path) if summary_path else None
        self.output_path = Path(output_path) if output_path else None
        self._max = max_buffered_lines
        self._buffers: dict[str, deque[str]] = {}
        self._dropped: dict[str, int] = {}

    def _write(self, text: str) -> None:
        self.stream.write(scrub(text) + "\n")
        self.stream.flush()

    def stage_started(self, name: str) -> None:
        self._buffers[name] = deque(maxlen=self._max)
        self._dropped[name] = 0
        self._write(f"==> {name} started")

    def stage_line(self, name: str, line: str) -> None:
        buf = self._buffers.setdefault(name, deque(maxlen=self._max))
        if len(buf) == buf.maxlen:
            self._dropped[name] = self._dropped.get(name, 0) + 1
        buf.append(line)

    def stage_note(self, name: str, text: str) -> None:
        self._write(f"==> {name}: {text}")

    def stage_finished(self, record: StageRecord) -> None:
        lines = self._buffers.pop(record.name, None)
        dropped = self._dropped.pop(record.name, 0)
        if lines is None:  # never started (not_run): nothing to group
            self._write(f"==> {stage_finished_line(record)}")
        else:
            self._write(f"::group::{escape_data(stage_finished_line(record))}")
            token = uuid.uuid4().hex
            self._write(f"::stop-commands::{token}")
            if dropped:
                self._write(f"({dropped} earlier lines not shown)")
            for line in lines:
                self._write(line)
            self._write(f"::{token}::")
            self._write("::endgroup::")
        if record.status == "failed":
            # A block (a deploy's outcome, every preflight problem) goes whole into the annotation.
            text = record.message if record.summary else record_note(record)
            self._write(error_command(f"{record.name} failed", text or "failed"))

    def run_finished(self, report: RunReport) -> None:
        if report.status == "interrupted":
            self._write(interrupt_line(report))
        else:
            self._write(plain_table(timing_rows(report)))
            for line in failure_block(report):
                self._write(line)
            self._write(outcome_line(report))
        # Files last: if the runner is going away, the log lines above matter more.
        if self.summary_path is not None:
            append_step_summary(self.summary_path, report)
        if self.output_path is not None:
            append_outputs(self.output_path, report.outputs)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _md_text(text: str) -> str:
    """Plain text in Markdown: nothing in it may open HTML or a table."""
    return text.replace("<", "&lt;").replace("|", "\\|")


def summary_markdown(report: RunReport) -> str:
    """A Markdown summary: outcome, a per-stage table, outputs, and the failing stage's tail."""
    title = {"succeeded": "✅ succeeded", "failed": "❌ failed", "interrupted": "⚠️ interrupted"}
    lines = [
        f"### deployctl run {title.get(report.status, report.status)} in "
        f"{format_duration(report.duration_s)} (exit {report.exit_code})",
        "",
        "| Stage | Status | Duration | Note |",
        "| --- | --- | ---: | --- |",
    ]
    for r in report.stages:
        status = f"{STATUS_ICONS.get(r.status, '')} {STATUS_WORDS.get(r.status, r.status)}".strip()
        duration = format_duration(r.duration_s)
        lines.append(f"| {_cell(r.name)} | {status} | {duration} | {_cell(record_note(r))} |")
    if report.outputs:
        lines += ["", "| Output | Value |", "| --- | --- |"]
        lines += [f"| {_cell(k)} | `{_cell(v)}` |" for k, v in report.outputs.items()]
    failed = report.failed_stage
    block = failure_block(report)
    if report.status == "interrupted":
        lines += ["", _md_text(interrupt_line(report))]
    elif block:
        # The failure said once: its first line, then the rest (cause, what is live, next) as a list.
        lines += ["", f"**{_md_text(block[0])}**", ""] + [f"- {_md_text(line.strip())}" for line in block[1:]]
    elif failed is not None and failed.tail:
        body = "\n".join(failed.tail)
        # A fence longer than any backtick run in the output, so the output cannot close it.
        longest = max((len(m) for m in re.findall(r"`+", body)), default=0)
        fence = "`" * max(3, longest + 1)
        lines += [
            "",
            f"<details><summary>last lines of {failed.name}</summary>",
            "",
            f"{fence}text",
            body,
            fence,
            "",
            "</details>",
        ]
    for log in failed.details.get("app_logs", ()) if failed is not None else ():
        lines += _app_log_markdown(log)
    return "\n".join(lines) + "\n"


def _fenced(body: str) -> tuple[str, str]:
    longest = max((len(m) for m in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return fence, body


def _app_log_markdown(log: Mapping[str, Any]) -> list[str]:
    """The last lines a failed rollout's container wrote (deployctl.diagnose.AppLog.to_json)."""
    code = f", exit {log.get('exit_code')}" if log.get("exit_code") is not None else ""
    service = f"{log.get('service')}: " if log.get("service") else ""
    head = f"{service}last lines of container {log.get('container')} in task {log.get('task_id')}{code}"
    lines = log.get("log_lines") or []
    if not lines:
        return ["", f"**{_cell(head)}**: {_cell(str(log.get('missing') or 'it wrote nothing'))}"]
    fence, body = _fenced("\n".join(str(x) for x in lines))
    return ["", f"<details open><summary>{_cell(head)}</summary>", "", f"{fence}text", body, fence, "",
            "</details>"]


def append_step_summary(path: str | Path, report: RunReport) -> None:
    """Append the run's summary to $GITHUB_STEP_SUMMARY (append: other steps write there too)."""
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(scrub(summary_markdown(report)))


def format_outputs(outputs: Mapping[str, str]) -> str:
    """$GITHUB_OUTPUT lines: `key=value`, or the heredoc form for multi-line values.

    Names that GitHub cannot address (anything but letters, digits, `_`, `-`) are dropped
    rather than written, since a stray `=` or newline in a name would corrupt every later entry.
    """
    chunks = []
    for key, value in outputs.items():
        if not _OUTPUT_NAME.match(key):
            continue
        value = scrub(str(value))
        if "\n" in value or "\r" in value:
            delimiter = f"ghadelimiter_{uuid.uuid4().hex}"
            while delimiter in value:
                delimiter = f"ghadelimiter_{uuid.uuid4().hex}"
            chunks.append(f"{key}<<{delimiter}\n{value}\n{delimiter}\n")
        else:
            chunks.append(f"{key}={value}\n")
    return "".join(chunks)


def append_outputs(path: str | Path, outputs: Mapping[str, str]) -> None:
    text = format_outputs(outputs)
    if text:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(text)
