"""Progress for people: a rich live view for terminals, prefixed plain lines for everything else."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from deployctl.ui.base import BaseReporter
from deployctl.ui.console import (
    STATUS_ICONS,
    STATUS_WORDS,
    TABLE_HEADERS,
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

# How many of a failed stage's last lines to repeat at the end, where people look first (a
# failure whose message is a block says it there instead).
FAILURE_TAIL_LINES = 20


def _final_block(report: RunReport) -> list[str]:
    """The failure block as a terminal prints it: with the failing containers' last lines (a
    rollout's `app_logs` detail) under each service's stop reason. Redacted where read."""
    from deployctl.rollout import report as rollout_report  # lazy: only a failed run needs it

    block = failure_block(report)
    failed = report.failed_stage
    logs = failed.details.get("app_logs", ()) if failed is not None else ()
    return rollout_report.with_app_logs(block, logs) if block and logs else block


class PlainReporter(BaseReporter):
    """Line-oriented output for logs, pipes and CI.

    Concurrent stages interleave, so every output line carries its stage: `[lint] …`. Each
    write is flushed so a CI log shows progress as it happens.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def _write(self, text: str) -> None:
        self.stream.write(scrub(text) + "\n")
        self.stream.flush()

    def stage_started(self, name: str) -> None:
        self._write(f"==> {name} started")

    def stage_line(self, name: str, line: str) -> None:
        self._write(f"[{name}] {line}")

    def stage_note(self, name: str, text: str) -> None:
        self._write(f"==> {name}: {text}")

    def stage_finished(self, record: StageRecord) -> None:
        self._write(f"==> {stage_finished_line(record)}")

    def run_finished(self, report: RunReport) -> None:
        if report.status == "interrupted":
            self._write(interrupt_line(report))  # one line: the user asked us to stop
            return
        self._write("")
        self._write(plain_table(timing_rows(report)))
        failed = report.failed_stage
        block = _final_block(report)
        if block:  # the failure, said once (its log lines are already above)
            self._write("")
            for line in block:
                self._write(line)
        elif failed is not None and failed.tail:
            self._write("")
            self._write(f"last lines of {failed.name}:")
            for line in failed.tail[-FAILURE_TAIL_LINES:]:
                self._write(f"  {line}")
        self._write(outcome_line(report))


@dataclass
class _Row:
    name: str
    status: str = "pending"
    started: float | None = None  # monotonic
    duration_s: float | None = None
    note: str = ""
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=3))


class RichReporter(BaseReporter):
    """A live table for an interactive terminal: one row per stage with its state, elapsed time
    and note, the running stages' last few output lines under them, and a timing table at the
    end. rich is imported here, lazily, so nothing else pays for it."""

    def __init__(self, stream: TextIO, *, tail_lines: int = 3, refresh_per_second: float = 8,
                 force_terminal: bool | None = None) -> None:
        from rich.console import Console  # lazy: rich loads only when a terminal is drawn on

        # force_terminal: draw as on a terminal although `stream` is not one (tests; rich's own flag).
        self.console = Console(file=stream, highlight=False, force_terminal=force_terminal)
        self._tail_lines = tail_lines
        self._refresh = refresh_per_second
        self._rows: dict[str, _Row] = {}
        # The live display re-renders from its own thread; rows change in stage threads.
        self._lock = threading.Lock()
        self._live: Any = None

    # -- events --------------------------------------------------------------------------
    def run_started(self, names: Sequence[str]) -> None:
        with self._lock:
            for name in names:
                self._rows.setdefault(name, _Row(name, lines=deque(maxlen=self._tail_lines)))
        self._ensure_live()

    def stage_started(self, name: str) -> None:
        with self._lock:
            row = self._rows.setdefault(name, _Row(name, lines=deque(maxlen=self._tail_lines)))
            row.status, row.started = "running", time.monotonic()
        self._ensure_live()

    def stage_line(self, name: str, line: str) -> None:
        with self._lock:
            row = self._rows.get(name)
            if row is not None:
                row.lines.append(scrub(line))

    def stage_note(self, name: str, text: str) -> None:
        with self._lock:
            row = self._rows.get(name)
            if row is not None:
                row.note = scrub(text)

    def stage_finished(self, record: StageRecord) -> None:
        from rich.text import Text  # lazy: rich loads only when a terminal is drawn on

        with self._lock:
            row = self._rows.setdefault(record.name, _Row(record.name))
            row.status, row.duration_s = record.status, record.duration_s
            row.note = scrub(record_note(record))
            row.lines.clear()
        # Printed above the live area, so finished stages stay in the scrollback in the order
        # they ended.
        line = Text.assemble(
            (f"{STATUS_ICONS.get(record.status, '?')} ", _STYLE.get(record.status, "")),
            scrub(stage_finished_line(record)),
        )
        self.console.print(line)

    def run_finished(self, report: RunReport) -> None:
        # lazy: rich loads only when a terminal is drawn on
        from rich.table import Table
        from rich.text import Text

        if self._live is not None:
            self._live.stop()
            self._live = None
        if report.status == "interrupted":
            self.console.print(Text(scrub(interrupt_line(report)), style="yellow"))
            return
        table = Table(*TABLE_HEADERS, title=None, box=None, pad_edge=False)
        for name, status, duration, note in timing_rows(report):
            table.add_row(name, Text(status, style=_STYLE.get(_status_key(status), "")), duration, scrub(note))
        self.console.print()
        self.console.print(table)
        failed = report.failed_stage
        block = _final_block(report)
        if block:  # the failure, said once, with the app's own last lines (the live tail is gone)
            self.console.print()
            self.console.print(Text(scrub(block[0]), style="bold"))
            for block_line in block[1:]:
                self.console.print(Text(scrub(block_line)))
        elif failed is not None and failed.tail:
            self.console.print(Text(f"\nlast lines of {failed.name}:", style="bold"))
            for tail_line in failed.tail[-FAILURE_TAIL_LINES:]:
                self.console.print(Text.from_ansi(scrub(f"  {tail_line}")))
        style = "green" if report.status == "succeeded" else "red"
        self.console.print(Text(scrub(outcome_line(report)), style=f"bold {style}"))

    # -- rendering -----------------------------------------------------------------------
    def _ensure_live(self) -> None:
        if self._live is not None:
            return
        from rich.live import Live  # lazy: rich loads only when a terminal is drawn on

        self._live = Live(
            get_renderable=self._render,
            console=self.console,
            refresh_per_second=self._refresh,
            transient=True,  # the final table replaces the live view
        )
        self._live.start()

    def _render(self) -> Any:
        # lazy: rich loads only when a terminal is drawn on
        from rich.console import Group
        from rich.spinner import Spinner
        from rich.table import Table
        from rich.text import Text

        now = time.monotonic()
        with self._lock:
            rows = [
                (r.name, r.status, r.started, r.duration_s, r.note, list(r.lines))
                for r in self._rows.values()
            ]
        width = max((len(r[0]) for r in rows), default=4)
        parts: list[Any] = []
        for name, status, started, duration_s, note, lines in rows:
            if status == "running":
                icon: Any = Spinner("dots", style="cyan")
                elapsed = format_duration(now - started) if started is not None else ""
            else:
                icon = Text(STATUS_ICONS.get(status, "?"), style=_STYLE.get(status, "dim"))
                elapsed = format_duration(duration_s) if duration_s is not None else ""
            # One grid per stage with fixed column widths: rows stay aligned, and a stage's
            # output lines can sit directly under it at full width.
            grid = Table.grid(padding=(0, 1))
            grid.add_column(width=2)
            grid.add_column(width=width)
            grid.add_column(width=9)
            grid.add_column(width=7, justify="right")
            grid.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
            grid.add_row(
                icon,
                Text(name, style="bold"),
                Text(STATUS_WORDS.get(status, status), style=_STYLE.get(status, "dim")),
                elapsed,
                Text(note, style="dim"),
            )
            parts.append(grid)
            for line in lines:
                text = Text.from_ansi(f"    │ {line}", style="dim")
                text.no_wrap, text.overflow = True, "ellipsis"
                parts.append(text)
        return Group(*parts)


_STYLE = {
    "pending": "dim",
    "running": "cyan",
    "succeeded": "green",
    "failed": "red",
    "skipped": "yellow",
    "cancelled": "magenta",
    "not_run": "dim",
}


def _status_key(word: str) -> str:
    return {v: k for k, v in STATUS_WORDS.items()}.get(word, word)
