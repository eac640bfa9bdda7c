"""Text shared by every reporter: durations, status words, the timing table, summary lines.

Pure functions of records and reports, so plain, rich and GitHub output say the same things.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from deployctl.redact import Redactor

if TYPE_CHECKING:
    from deployctl.pipeline import RunReport, StageRecord

STATUS_WORDS = {
    "succeeded": "succeeded",
    "failed": "failed",
    "skipped": "skipped",
    "cancelled": "cancelled",
    "not_run": "not run",
}
STATUS_ICONS = {
    "pending": "·",
    "running": "▸",
    "succeeded": "✓",
    "failed": "✗",
    "skipped": "↷",
    "cancelled": "⊘",
    "not_run": "·",
}
TABLE_HEADERS = ("stage", "status", "duration", "note")

_SCRUBBER: list[Any] = []


def scrub(text: str) -> str:
    """The last pass over text on its way out (terminal, GitHub log, annotations, step summary,
    step outputs). Stage output, notes and messages are redacted where they arise, by the run's
    redactor, which also knows the registered secret values; this pass applies the same shapes
    once more at the door, so text composed later (a table, a summary, an annotation) cannot
    carry a credential out either."""
    if not _SCRUBBER:
        _SCRUBBER.append(Redactor())
    return str(_SCRUBBER[0].redact(text))


def format_duration(seconds: float | None) -> str:
    """0.4s, 12.3s, 2m05s, 1h02m; "-" for a stage that never ran."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def record_note(record: StageRecord) -> str:
    """The one-line note for a stage: why it failed or was skipped (its summary when the
    reason is a block, said in full once at the end), else its last note."""
    text = record.summary or record.message or record.note
    return " ".join(text.split())  # tables are one line per stage


def failure_block(report: RunReport) -> list[str]:
    """The failed stage's message, line by line, when it is a block (a deploy's outcome, every
    preflight problem): the one place it is said in full. [] otherwise."""
    failed = report.failed_stage
    if failed is None or not failed.summary:
        return []
    return [line.rstrip() for line in failed.message.splitlines() if line.strip()]


def timing_rows(report: RunReport) -> list[tuple[str, str, str, str]]:
    return [
        (r.name, STATUS_WORDS.get(r.status, r.status), format_duration(r.duration_s), record_note(r))
        for r in report.stages
    ]


def plain_table(rows: Sequence[Sequence[str]], headers: Sequence[str] = TABLE_HEADERS) -> str:
    """A fixed-width text table; the last column is not padded (no trailing spaces)."""
    all_rows = [tuple(headers), *[tuple(r) for r in rows]]
    widths = [max(len(r[i]) for r in all_rows) for i in range(len(headers) - 1)]
    lines = []
    for row in all_rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])] + [row[-1]]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def stage_finished_line(record: StageRecord) -> str:
    """`lint succeeded in 1.2s`, `build failed in 3.4s: …`, `push skipped: …`, `deploy not run: …`."""
    dur = format_duration(record.duration_s)
    note = record_note(record)
    if record.status == "succeeded":
        return f"{record.name} succeeded in {dur}" + (f" ({note})" if note else "")
    if record.status == "failed":
        return f"{record.name} failed in {dur}: {note}"
    if record.status == "cancelled":
        return f"{record.name} cancelled after {dur}"
    word = STATUS_WORDS.get(record.status, record.status)
    return f"{record.name} {word}" + (f": {note}" if note else "")


def outcome_line(report: RunReport) -> str:
    """The last line of a run: `run succeeded in 12.3s` / `run failed in 5.0s (exit 1): build: …`."""
    dur = format_duration(report.duration_s)
    if report.status == "succeeded":
        return f"run succeeded in {dur}"
    if report.status == "interrupted":
        return interrupt_line(report)
    failed = report.failed_stage
    cause = f": {failed.name}: {record_note(failed)}" if failed is not None else ""
    if failed is not None and failed.summary:
        cause = f": {failed.name} failed (above)"  # the block above says it; not again here
    return f"run failed in {dur} (exit {report.exit_code}){cause}"


def interrupt_line(report: RunReport) -> str:
    """One line saying what was and wasn't done, e.g.
    `interrupted: lint, build done; test cancelled; push, deploy not run`."""
    groups: dict[str, list[str]] = {"done": [], "failed": [], "cancelled": [], "not run": []}
    said: list[str] = []  # cancelled stages that say what they had done and what goes on
    for r in report.stages:
        if r.status == "cancelled" and r.summary:
            said.append(r.summary)
            continue
        key = {"succeeded": "done", "skipped": "done", "not_run": "not run"}.get(r.status, r.status)
        groups.setdefault(key, []).append(r.name)
    parts = [f"{', '.join(names)} {key}" for key, names in groups.items() if names]
    if not groups["done"] and not said:
        parts.insert(0, "nothing done")
    # What goes on last: it is what the person needs to act on.
    return "interrupted: " + "; ".join(parts + said)
