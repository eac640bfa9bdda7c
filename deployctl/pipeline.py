"""The stage engine behind `deployctl run`: a graph of jobs, run in parallel where independent.

- Every job whose `needs` have all succeeded (or been skipped) starts at once, each in a thread.
- Fail fast: the first failure cancels the run; running siblings have their process groups
  stopped (SIGTERM, a grace period, SIGKILL) and end `cancelled`; jobs not yet started end
  `not_run`.
- SIGINT/SIGTERM (installed only when called from the main thread) do the same and the report
  says `interrupted`, exit 130. A second signal SIGKILLs every child group at once.
- Every line a stage produces goes through the redactor before anyone sees it.

Nothing here prints: progress goes to a `Reporter` (below; implementations in deployctl.ui) and the outcome is returned
as a `RunReport`. Reporter methods are called under one lock, so a reporter never sees two
calls at once even though stages run in threads.

Why over 500 lines: scheduling, fail-fast cancellation and the signal handlers share one run's
state and lock; kept together, the order in which a job starts, stops and is reported can be
read in one place.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from deployctl.adapters import shell
from deployctl.errors import (
    EXIT_FAILED,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    DeployctlError,
    StageFailed,
    UsageError,
)
from deployctl.redact import Redactor

TAIL_LINES = 20
STAGE_STATUSES = ("succeeded", "failed", "skipped", "cancelled", "not_run")
RUN_STATUSES = ("succeeded", "failed", "interrupted")
# A skipped stage did its job (e.g. "image already in registry"), so dependents may go on.
_SATISFIED = frozenset({"succeeded", "skipped"})


class Reporter(Protocol):
    """Receives the events of one run. The engine never calls two methods at once.

    Order: run_started, then per stage stage_started → stage_line/stage_note* →
    stage_finished (stages that never start get only stage_finished, status not_run), and
    finally run_finished once.
    """

    def run_started(self, names: Sequence[str]) -> None: ...
    def stage_started(self, name: str) -> None: ...
    def stage_line(self, name: str, line: str) -> None: ...
    def stage_note(self, name: str, text: str) -> None: ...
    def stage_finished(self, record: StageRecord) -> None: ...
    def run_finished(self, report: RunReport) -> None: ...


# Reporter methods added after the first version of the protocol; reporters written against
# the original five methods keep working.
_OPTIONAL_REPORTER_METHODS = frozenset({"run_started"})


class Cancelled(Exception):
    """Raised inside a job when the run has been cancelled (by a failure elsewhere or a signal).

    `StageContext.sh` raises it after stopping the command; long pure-Python work can call
    `ctx.raise_if_cancelled()`. The engine records the stage as `cancelled`. `done`: what the
    stage had done by then and what goes on without it (a deploy whose rollout ECS continues);
    the interrupted run's last line says it instead of "cancelled".
    """

    def __init__(self, message: str = "run cancelled", *, done: str = "") -> None:
        super().__init__(message)
        self.done = done


@dataclass(frozen=True)
class Job:
    """One stage of the graph. `run` raises StageFailed (or any DeployctlError) to fail."""

    name: str
    needs: tuple[str, ...]
    run: Callable[[StageContext], None]

    def __post_init__(self) -> None:
        # Accept a list (or a lone name) from callers; a bare string would otherwise be
        # iterated into one "need" per character.
        needs = (self.needs,) if isinstance(self.needs, str) else tuple(self.needs)
        object.__setattr__(self, "needs", needs)


@dataclass(frozen=True)
class StageRecord:
    """What happened to one stage. Times are unix seconds; `tail` holds the last output lines
    (already redacted). `message` is the failure or skip reason; `note` the last progress note."""

    name: str
    status: str
    started_at: float | None = None
    ended_at: float | None = None
    duration_s: float | None = None
    message: str = ""
    tail: tuple[str, ...] = ()
    note: str = ""
    # Structured facts a stage adds for machines (StageContext.add_detail), e.g. `app_logs`:
    # the last lines of a failed rollout's container. Redacted when added.
    details: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    # Formatted traceback when a job raised something that is not a DeployctlError (a bug):
    # kept out of normal output and the JSON report, for `--verbose`.
    traceback: str = field(default="", repr=False)
    # Failed: one line standing for `message` in tables and the stage's finished line, when
    # the message is a block that says the failure in full (shown once, at the end; no tail
    # repeated under it); "" when the message is short enough to be its own cell.
    # Cancelled: what the stage had done and what goes on (Cancelled.done), or "".
    summary: str = ""


@dataclass(frozen=True)
class RunReport:
    status: str
    exit_code: int
    started_at: float
    ended_at: float
    duration_s: float
    stages: tuple[StageRecord, ...]
    outputs: dict[str, str] = field(default_factory=dict)

    def stage(self, name: str) -> StageRecord:
        for record in self.stages:
            if record.name == name:
                return record
        raise KeyError(name)

    @property
    def failed_stage(self) -> StageRecord | None:
        """The first stage that failed (the cause of a failed run), if any."""
        return next((r for r in self.stages if r.status == "failed"), None)

    def to_json_dict(self) -> dict[str, Any]:
        """The report as plain JSON data. Keys are stable (schema deployctl.run-report/v1):

        - `schema`: "deployctl.run-report/v1" (run, promote and rollback all print this report)
        - `schema_version`: 1 (kept for readers from before `schema`)
        - `status`: "succeeded" | "failed" | "interrupted"
        - `exit_code`: 0 ok, 1 a stage failed, 2 usage/config, 3 internal, 130 interrupted
        - `started_at`, `ended_at`: unix seconds (float, ms precision); `duration_s`: float
        - `stages`: list, in the order the jobs were given, of objects with
          `name`, `status` ("succeeded" | "failed" | "skipped" | "cancelled" | "not_run"),
          `started_at`, `ended_at`, `duration_s` (null when the stage never started),
          `message` (failure or skip reason, "" if none), `note` (last progress note, "" if none),
          `tail` (list of the last output lines, redacted), `details` (object: structured facts
          the stage added, each key a list; e.g. `app_logs`, see deployctl.diagnose.AppLog)
        - `outputs`: object of string → string (e.g. image, digest, release)
        """
        return {
            "schema": RUN_REPORT_SCHEMA,
            "schema_version": 1,
            "status": self.status,
            "exit_code": self.exit_code,
            "started_at": _round(self.started_at),
            "ended_at": _round(self.ended_at),
            "duration_s": _round(self.duration_s),
            "stages": [
                {
                    "name": r.name,
                    "status": r.status,
                    "started_at": _round(r.started_at),
                    "ended_at": _round(r.ended_at),
                    "duration_s": _round(r.duration_s),
                    "message": r.message,
                    "note": r.note,
                    "tail": list(r.tail),
                    "details": {k: list(v) for k, v in r.details.items()},
                }
                for r in self.stages
            ],
            "outputs": dict(self.outputs),
        }


RUN_REPORT_SCHEMA = "deployctl.run-report/v1"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


class StageContext:
    """Handed to a running job: output, commands, skip/note, the shared outputs, cancellation."""

    def __init__(self, name: str, run: _Run) -> None:
        self.name = name
        self.cancelled: threading.Event = run.cancel
        # Plain dict: single get/set operations are atomic under the GIL, which is all stages
        # need to publish image/digest/release for later stages.
        self.outputs: dict[str, str] = run.outputs
        self._run = run
        self._redact_line = run.redactor.stream()
        self._tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.skip_reason: str | None = None
        self.last_note = ""
        self._details: dict[str, list[Any]] = {}
        self._details_lock = threading.Lock()

    @property
    def tail(self) -> tuple[str, ...]:
        return tuple(self._tail)

    def log(self, line: str) -> None:
        """Emit output (redacted); embedded newlines make several lines."""
        for part in str(line).split("\n"):
            # Progress bars redraw with \r; a terminal would show only the last redraw.
            part = part.rstrip("\r").rsplit("\r", 1)[-1]
            clean = self._redact_line(part)
            self._tail.append(clean)
            self._run.emit("stage_line", self.name, clean)

    def note(self, text: str) -> None:
        """A short status shown next to the stage (e.g. "size 4.2 MB")."""
        self.last_note = self._run.redactor.redact(str(text))
        self._run.emit("stage_note", self.name, self.last_note)

    @property
    def details(self) -> dict[str, tuple[Any, ...]]:
        return {k: tuple(v) for k, v in self._details.items()}

    def add_detail(self, key: str, item: Any) -> None:
        """Add a structured fact (JSON data) to the stage's record under `key` (a list), redacted
        like its output. Thread-safe: services deploy in threads."""
        clean = self._run.redactor.redact_data(item)
        with self._details_lock:
            self._details.setdefault(key, []).append(clean)

    def skip(self, reason: str) -> None:
        """Mark the stage skipped; the job should return normally afterwards."""
        self.skip_reason = self._run.redactor.redact(str(reason))

    def add_secret(self, value: str | None) -> None:
        """Register a secret value discovered while running, so it is masked from now on."""
        self._run.redactor.add(value)

    def raise_if_cancelled(self) -> None:
        if self.cancelled.is_set():
            raise Cancelled("run cancelled")

    def sh(
        self,
        command: str,
        *,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
    ) -> None:
        """Run `command` with /bin/sh -c in its own process group, streaming its output.

        `env` adds to (and overrides) the current environment rather than replacing it: a
        stage that sets one variable still needs PATH and HOME. The command's stdin is
        /dev/null. Background processes it leaves behind are stopped when it exits, so a stage
        never leaks processes.

        Raises StageFailed on a non-zero exit or a timeout, Cancelled if the run is cancelled
        meanwhile (the command's group is stopped first in both of the latter cases).
        """
        self.raise_if_cancelled()
        grace = self._run.kill_grace
        full_env = {**os.environ, **env} if env is not None else None
        self.log(f"$ {command}")
        try:
            proc = shell.start(command, full_env, cwd)
        except OSError as exc:  # missing cwd, no /bin/sh
            raise StageFailed(f"`{command}` could not start: {exc}") from exc
        self._run.procs.add(proc)
        deadline = None if timeout is None else time.monotonic() + timeout
        exited_at: float | None = None
        code: int | None = None
        try:
            while True:
                line = proc.next_line(0.05)
                if line is not None:
                    self.log(line)
                if self.cancelled.is_set():
                    self._stop(proc, grace)
                    raise Cancelled(f"`{command}` stopped: run cancelled")
                if deadline is not None and time.monotonic() > deadline:
                    self._stop(proc, grace)
                    raise StageFailed(f"`{command}` timed out after {timeout:g}s")
                if line is not None:
                    continue
                if exited_at is None and proc.has_exited():
                    exited_at = time.monotonic()
                # Output can still be in flight after the shell exits; but a background child
                # may hold the pipe open forever, so give it half a second and then sweep.
                if exited_at is not None and (proc.eof.is_set() or time.monotonic() - exited_at > 0.5):
                    code = self._stop(proc, grace)
                    break
        finally:
            if code is None and not proc.reaped:
                # Something went wrong mid-stream (a reporter error, say): don't leave the
                # command running behind a stage that has already ended.
                shell.kill_group(proc, 0)
            self._run.procs.discard(proc)
        if code != 0:
            if code < 0:
                try:
                    how = f"was killed by {signal.Signals(-code).name}"
                except ValueError:
                    how = f"was killed by signal {-code}"
                raise StageFailed(f"`{command}` {how}")
            raise StageFailed(f"`{command}` exited {code}")

    def _stop(self, proc: shell.Proc, grace: float) -> int:
        code = shell.kill_group(proc, grace)
        for line in proc.drain():
            self.log(line)
        return code


class _Run:
    """Shared state of one run_jobs call."""

    def __init__(self, reporter: Reporter, redactor: Redactor, kill_grace: float) -> None:
        self.reporter = reporter
        self.redactor = redactor
        self.kill_grace = kill_grace
        self.cancel = threading.Event()
        self.interrupted = threading.Event()
        self.outputs: dict[str, str] = {}
        self.procs: set[shell.Proc] = set()
        self.state_lock = threading.Lock()
        self._report_lock = threading.Lock()
        # Once run_finished has been sent, jobs abandoned after a stop timeout must not keep
        # writing under the final table.
        self.closed = False

    def emit(self, method: str, *args: Any) -> None:
        with self._report_lock:
            if self.closed:
                return
            if method in _OPTIONAL_REPORTER_METHODS and not hasattr(self.reporter, method):
                return
            # A closed stdout (`deployctl run | head`) must not abort a deploy half-way.
            with contextlib.suppress(OSError):
                getattr(self.reporter, method)(*args)

    def close(self) -> None:
        with self._report_lock:
            self.closed = True

    def on_signal(self, signum: int, frame: object) -> None:
        # Runs in the main thread between bytecodes: only set events here. Taking a lock could
        # deadlock against the main thread itself holding it.
        if self.interrupted.is_set():
            # Second Ctrl-C: the user is done waiting for graceful shutdown.
            for proc in list(self.procs):
                shell.signal_group(proc, signal.SIGKILL)
            return
        self.interrupted.set()
        self.cancel.set()


@dataclass
class _Outcome:
    record: StageRecord
    exit_code: int


def validate_graph(jobs: Sequence[Job]) -> None:
    """Raise UsageError (exit 2) for duplicate names, unknown needs or a dependency cycle."""
    names = [job.name for job in jobs]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise UsageError(f"stage {name!r} is defined twice")
        seen.add(name)
    for job in jobs:
        for need in job.needs:
            if need not in seen:
                raise UsageError(
                    f"stage {job.name!r} needs unknown stage {need!r}",
                    hint=f"known stages: {', '.join(names)}",
                )
    needs = {job.name: job.needs for job in jobs}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for need in needs[name]:
            if state.get(need) == 1:
                cycle = path[path.index(need):] + [name, need] if need in path else [name, need]
                raise UsageError(f"stage dependencies form a cycle: {' -> '.join(cycle)}")
            if state.get(need) is None:
                visit(need, path + [name])
        state[name] = 2

    for name in names:
        if name not in state:
            visit(name, [])


def run_jobs(
    jobs: Sequence[Job],
    reporter: Reporter,
    *,
    redactor: Redactor | None = None,
    kill_grace: float = 2.0,
    stop_timeout: float = 10.0,
    handle_signals: bool = True,
) -> RunReport:
    """Run the job graph and return what happened. Never raises for a stage failure.

    Raises UsageError (before anything runs) if the graph is invalid; see validate_graph.
    `kill_grace`: seconds between SIGTERM and SIGKILL when stopping a command's group.
    `stop_timeout`: after a cancel, how long to wait for jobs doing non-shell work to notice
    before giving up on them (they are recorded `cancelled`, their threads abandoned).
    `handle_signals`: install SIGINT/SIGTERM handlers (only possible from the main thread;
    silently skipped elsewhere); previous handlers are restored on return.
    """
    validate_graph(jobs)
    run = _Run(reporter, redactor or Redactor(), kill_grace)
    installed: dict[signal.Signals, Any] = {}
    if handle_signals and threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            installed[sig] = signal.getsignal(sig)
            signal.signal(sig, run.on_signal)
    try:
        return _execute(jobs, run, stop_timeout)
    except BaseException:
        # The engine itself broke (a reporter bug, say): stop every job and child before the
        # error propagates, rather than leave them running unattended.
        run.cancel.set()
        for proc in list(run.procs):
            shell.signal_group(proc, signal.SIGKILL)
        raise
    finally:
        for sig, old in installed.items():
            # getsignal() returns None for handlers set outside Python; SIG_DFL is the honest
            # approximation.
            signal.signal(sig, old if old is not None else signal.SIG_DFL)


def _execute(jobs: Sequence[Job], run: _Run, stop_timeout: float) -> RunReport:
    started_at, t0 = time.time(), time.monotonic()
    results: queue.Queue[_Outcome] = queue.Queue()
    records: dict[str, StageRecord] = {}
    pending = list(jobs)
    running: dict[str, tuple[float, float, StageContext]] = {}
    first_failure_exit: int | None = None
    cancel_seen_at: float | None = None
    run.emit("run_started", tuple(job.name for job in jobs))

    def finish(record: StageRecord) -> None:
        records[record.name] = record
        run.emit("stage_finished", record)

    while True:
        # Start what can start; retire what never will. Loop to a fixpoint so a not_run stage
        # immediately makes its own dependents not_run too.
        progressed = True
        while progressed:
            progressed = False
            for job in list(pending):
                blocked = [n for n in job.needs if n in records and records[n].status not in _SATISFIED]
                # After a cancel nothing new starts; retiring the rest waits until the running
                # jobs have ended, so the reason can name the dependency that actually failed.
                if blocked or (run.cancel.is_set() and not running):
                    if blocked:
                        why = "; ".join(f"{n} {records[n].status.replace('_', ' ')}" for n in blocked)
                        message = f"needs {why}"
                    else:
                        message = "run interrupted" if run.interrupted.is_set() else "run cancelled"
                    pending.remove(job)
                    finish(StageRecord(job.name, "not_run", message=message))
                    progressed = True
                elif not run.cancel.is_set() and all(n in records for n in job.needs):
                    pending.remove(job)
                    _start(job, run, results, running)
                    progressed = True
        if not running:
            break
        if run.cancel.is_set() and cancel_seen_at is None:
            cancel_seen_at = time.monotonic()
        try:
            outcome = results.get(timeout=0.05)
        except queue.Empty:
            waited = time.monotonic() - cancel_seen_at if cancel_seen_at is not None else 0.0
            if waited > run.kill_grace + stop_timeout:
                _abandon(run, running, finish)
            continue
        running.pop(outcome.record.name, None)
        finish(outcome.record)
        if outcome.record.status == "failed" and first_failure_exit is None:
            first_failure_exit = outcome.exit_code

    # Belt and braces: whatever an abandoned job started is killed outright.
    for proc in list(run.procs):
        shell.signal_group(proc, signal.SIGKILL)

    if run.interrupted.is_set():
        status, exit_code = "interrupted", EXIT_INTERRUPTED
    elif first_failure_exit is not None or any(r.status in ("failed", "cancelled") for r in records.values()):
        status, exit_code = "failed", first_failure_exit or EXIT_FAILED
    else:
        status, exit_code = "succeeded", EXIT_OK
    ended_at = time.time()
    report = RunReport(
        status=status,
        exit_code=exit_code,
        started_at=started_at,
        ended_at=ended_at,
        duration_s=time.monotonic() - t0,
        stages=tuple(records[job.name] for job in jobs),
        outputs={k: run.redactor.redact_known(str(v)) for k, v in run.outputs.items()},
    )
    run.emit("run_finished", report)
    run.close()
    return report


def _start(
    job: Job,
    run: _Run,
    results: queue.Queue[_Outcome],
    running: dict[str, tuple[float, float, StageContext]],
) -> None:
    ctx = StageContext(job.name, run)
    started_at, t0 = time.time(), time.monotonic()
    running[job.name] = (started_at, t0, ctx)
    run.emit("stage_started", job.name)
    thread = threading.Thread(
        target=_run_job,
        args=(job, ctx, run, results, started_at, t0),
        name=f"stage-{job.name}",
        # Daemon: a job that ignores cancellation must not keep the process alive after an
        # interrupt; run_jobs gives up on it after stop_timeout.
        daemon=True,
    )
    thread.start()


def _run_job(
    job: Job,
    ctx: StageContext,
    run: _Run,
    results: queue.Queue[_Outcome],
    started_at: float,
    t0: float,
) -> None:
    status, message, exit_code, tb, summary = "succeeded", "", EXIT_OK, "", ""
    try:
        job.run(ctx)
        if ctx.skip_reason is not None:
            status, message = "skipped", ctx.skip_reason
    except Cancelled as exc:
        # The message can quote the stopped command line, which may carry a credential.
        status, message = "cancelled", run.redactor.redact(str(exc))
        summary = run.redactor.redact(" ".join(exc.done.split()))
    except BaseException as exc:  # noqa: BLE001 - every outcome must reach the main loop
        if isinstance(exc, DeployctlError):
            message, exit_code = exc.message, exc.exit_code
            summary = run.redactor.redact(summary_of(exc))
        else:
            message, exit_code = f"internal error: {type(exc).__name__}: {exc}", EXIT_INTERNAL
            tb = run.redactor.redact(traceback.format_exc())
        message = run.redactor.redact(message)
        with run.state_lock:
            # Errors raised after the run was cancelled are usually the cancellation itself
            # (a killed connection, a stopped process): the stage was cancelled, not the cause.
            if run.cancel.is_set():
                status, message = "cancelled", f"cancelled ({message})"
            else:
                status = "failed"
                run.cancel.set()  # fail fast: siblings' sh() loops see this within ~50 ms
    ended_at = time.time()
    record = StageRecord(
        name=job.name,
        status=status,
        started_at=started_at,
        ended_at=ended_at,
        duration_s=time.monotonic() - t0,
        message=message,
        tail=ctx.tail,
        note=ctx.last_note,
        details=ctx.details,
        traceback=tb,
        summary=summary if status in ("failed", "cancelled") else "",
    )
    results.put(_Outcome(record, exit_code))


# A failure message of this many lines is a block (every preflight problem, a deploy's outcome
# per service): its first line stands for it in tables.
BLOCK_LINES = 3


def summary_of(exc: DeployctlError) -> str:
    """The one line a table shows for a failure: the error's own `short`, else the first line
    of a message that is a block; "" when the message is its own cell."""
    if exc.short:
        return " ".join(exc.short.split())
    lines = [line for line in exc.message.splitlines() if line.strip()]
    if len(lines) >= BLOCK_LINES:
        return " ".join(lines[0].split()).rstrip(":") + " (see below)"
    return ""


def _abandon(
    run: _Run,
    running: dict[str, tuple[float, float, StageContext]],
    finish: Callable[[StageRecord], None],
) -> None:
    for name, (started_at, t0, ctx) in list(running.items()):
        finish(
            StageRecord(
                name=name,
                status="cancelled",
                started_at=started_at,
                ended_at=time.time(),
                duration_s=time.monotonic() - t0,
                message="did not stop after the run was cancelled; abandoned",
                tail=ctx.tail,
                note=ctx.last_note,
            )
        )
    running.clear()
