"""The stage engine, with real processes: ordering, concurrency, fail-fast, signals."""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from deployctl.adapters import shell
from deployctl.errors import EXIT_INTERNAL, PreflightFailed, StageFailed, UsageError
from deployctl.pipeline import Job, RunReport, StageContext, StageRecord, run_jobs, validate_graph
from deployctl.redact import Redactor
from deployctl.ui import BaseReporter
from deployctl.ui.report import write_report
from tests.support.processes import pid_alive

REPO = Path(__file__).resolve().parents[2]


def wait_dead(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not pid_alive(pid)


class Recorder(BaseReporter):
    """Keeps every event; lets a job wait for another stage's output line."""

    def __init__(self) -> None:
        self.events: list[tuple[str, ...]] = []
        self.records: dict[str, StageRecord] = {}
        self.report: RunReport | None = None
        self.changed = threading.Condition()

    def _add(self, *event: str) -> None:
        with self.changed:
            self.events.append(event)
            self.changed.notify_all()

    def run_started(self, names):  # type: ignore[override]
        self._add("run_started", *names)

    def stage_started(self, name: str) -> None:
        self._add("started", name)

    def stage_line(self, name: str, line: str) -> None:
        self._add("line", name, line)

    def stage_note(self, name: str, text: str) -> None:
        self._add("note", name, text)

    def stage_finished(self, record: StageRecord) -> None:
        self.records[record.name] = record
        self._add("finished", record.name, record.status)

    def run_finished(self, report: RunReport) -> None:
        self.report = report
        self._add("run_finished", report.status)

    def lines(self, name: str) -> list[str]:
        return [e[2] for e in self.events if e[0] == "line" and e[1] == name]

    def wait_line(self, name: str, prefix: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for line in self.lines(name):
                    if line.startswith(prefix):
                        return line
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{name} never printed {prefix!r}")
                self.changed.wait(left)


def ok(ctx: StageContext) -> None:
    ctx.log("ok")


# -- graph ---------------------------------------------------------------------------------


def test_independent_stages_run_concurrently_and_dependents_wait() -> None:
    # The barrier only opens when lint, test and build are all running at the same moment:
    # run them one after another and it times out, failing the stages.
    barrier = threading.Barrier(3, timeout=10)

    def checker(ctx: StageContext) -> None:
        barrier.wait()
        ctx.sh("sleep 0.2")

    rec = Recorder()
    report = run_jobs(
        [
            Job("lint", (), checker),
            Job("test", (), checker),
            Job("build", (), checker),
            Job("push", ("lint", "test", "build"), ok),
            Job("deploy", ("push",), ok),
        ],
        rec,
    )
    assert report.status == "succeeded" and report.exit_code == 0
    lint, test, build, push, deploy = (report.stage(n) for n in ("lint", "test", "build", "push", "deploy"))
    assert all(r.status == "succeeded" for r in report.stages)
    # Overlap, proved from recorded times: each started before the other ended.
    assert lint.started_at < test.ended_at and test.started_at < lint.ended_at
    assert build.started_at < lint.ended_at
    assert push.started_at >= max(lint.ended_at, test.ended_at, build.ended_at)
    assert deploy.started_at >= push.ended_at
    order = [e for e in rec.events if e[0] in ("started", "finished")]
    assert order.index(("started", "push")) > max(
        order.index(("finished", n, "succeeded")) for n in ("lint", "test", "build")
    )
    assert rec.events[0] == ("run_started", "lint", "test", "build", "push", "deploy")
    assert rec.events[-1] == ("run_finished", "succeeded")


def test_failed_dependency_makes_dependents_not_run() -> None:
    def fail(ctx: StageContext) -> None:
        ctx.log("about to fail")
        raise StageFailed("tests failed")

    rec = Recorder()
    report = run_jobs(
        [Job("test", (), fail), Job("push", ["test"], ok), Job("deploy", "push", ok)],
        rec,
    )
    assert report.status == "failed" and report.exit_code == 1
    assert [(r.name, r.status) for r in report.stages] == [
        ("test", "failed"), ("push", "not_run"), ("deploy", "not_run")
    ]
    assert report.stage("test").message == "tests failed"
    assert report.stage("test").tail == ("about to fail",)
    assert report.stage("push").message == "needs test failed"
    assert report.stage("deploy").message == "needs push not run"
    assert report.stage("push").started_at is None
    assert report.failed_stage == report.stage("test")
    assert not [e for e in rec.events if e[:2] == ("started", "push")]


def test_skipped_stage_satisfies_dependents() -> None:
    ran = []

    def push(ctx: StageContext) -> None:
        ctx.skip("image already in registry")

    report = run_jobs(
        [Job("push", (), push), Job("deploy", ("push",), lambda ctx: ran.append(ctx.name))],
        Recorder(),
    )
    assert report.status == "succeeded"
    assert report.stage("push").status == "skipped"
    assert report.stage("push").message == "image already in registry"
    assert report.stage("deploy").status == "succeeded"
    assert ran == ["deploy"]


def test_stage_error_exit_codes() -> None:
    report = run_jobs([Job("deploy", (), _raise(PreflightFailed("no cluster")))], Recorder())
    assert report.exit_code == 1 and report.stage("deploy").message == "no cluster"

    report = run_jobs([Job("build", (), _raise(KeyError("oops")))], Recorder())
    assert report.status == "failed" and report.exit_code == EXIT_INTERNAL
    record = report.stage("build")
    assert record.message == "internal error: KeyError: 'oops'"
    assert "Traceback" in record.traceback


def _raise(exc: BaseException):
    def run(ctx: StageContext) -> None:
        raise exc

    return run


@pytest.mark.parametrize(
    ("jobs", "match"),
    [
        ([Job("a", ("nope",), ok)], "stage 'a' needs unknown stage 'nope'"),
        ([Job("a", ("b",), ok), Job("b", ("c",), ok), Job("c", ("a",), ok)], "cycle: a -> b -> c -> a"),
        ([Job("a", ("a",), ok)], "cycle: a -> a"),
        ([Job("a", (), ok), Job("a", (), ok)], "defined twice"),
    ],
)
def test_invalid_graphs_are_usage_errors(jobs: list[Job], match: str) -> None:
    with pytest.raises(UsageError, match=match):
        validate_graph(jobs)
    with pytest.raises(UsageError):
        run_jobs(jobs, Recorder())


# -- commands --------------------------------------------------------------------------------


def test_sh_streams_lines_and_reports_exit_code(tmp_path: Path) -> None:
    def stage(ctx: StageContext) -> None:
        ctx.sh("echo $GREETING; pwd; ls / >/dev/null && echo path-ok", env={"GREETING": "hi"}, cwd=tmp_path)
        ctx.sh("echo before; exit 3")

    rec = Recorder()
    report = run_jobs([Job("test", (), stage)], rec)
    assert rec.lines("test") == [
        '$ echo $GREETING; pwd; ls / >/dev/null && echo path-ok',
        "hi", str(tmp_path), "path-ok",
        "$ echo before; exit 3", "before",
    ]
    assert report.stage("test").status == "failed"
    assert report.stage("test").message == "`echo before; exit 3` exited 3"


def test_sh_timeout_kills_the_command() -> None:
    def stage(ctx: StageContext) -> None:
        ctx.sh("echo pid=$$; exec sleep 30", timeout=0.5)

    rec = Recorder()
    started = time.monotonic()
    report = run_jobs([Job("test", (), stage)], rec, kill_grace=0.5)
    assert time.monotonic() - started < 10
    record = report.stage("test")
    assert record.status == "failed"
    assert record.message == "`echo pid=$$; exec sleep 30` timed out after 0.5s"
    pid = int(rec.wait_line("test", "pid=").split("=")[1])
    assert wait_dead(pid)


def test_background_processes_do_not_outlive_their_command() -> None:
    def stage(ctx: StageContext) -> None:
        ctx.sh("sleep 30 & echo bg=$!")

    rec = Recorder()
    started = time.monotonic()
    report = run_jobs([Job("build", (), stage)], rec, kill_grace=0.5)
    assert report.status == "succeeded"
    assert time.monotonic() - started < 10  # did not wait for the 30 s sleep holding the pipe
    assert wait_dead(int(rec.wait_line("build", "bg=").split("=")[1]))


def test_fail_fast_cancels_running_sibling_and_kills_its_processes() -> None:
    rec = Recorder()

    def slow(ctx: StageContext) -> None:
        ctx.sh("sleep 30 & echo bg=$!; echo pid=$$; exec sleep 30")

    def fast(ctx: StageContext) -> None:
        rec.wait_line("build", "pid=")  # make sure the sibling's processes exist first
        ctx.log("lint error: E501")
        raise StageFailed("`ruff check` exited 1")

    started = time.monotonic()
    report = run_jobs(
        [Job("lint", (), fast), Job("build", (), slow), Job("push", ("lint", "build"), ok)],
        rec,
        kill_grace=1.0,
    )
    assert time.monotonic() - started < 10
    assert report.status == "failed" and report.exit_code == 1
    assert report.stage("lint").status == "failed"
    assert report.stage("lint").tail == ("lint error: E501",)
    assert report.stage("build").status == "cancelled"
    assert report.stage("push").status == "not_run"
    assert report.failed_stage is not None and report.failed_stage.name == "lint"
    for prefix in ("pid=", "bg="):
        assert wait_dead(int(rec.wait_line("build", prefix).split("=")[1])), prefix


def test_job_that_ignores_cancellation_is_abandoned_after_stop_timeout() -> None:
    release, running = threading.Event(), threading.Event()

    def stubborn(ctx: StageContext) -> None:
        running.set()
        release.wait(30)  # pure-Python work that never checks ctx.cancelled

    def fail(ctx: StageContext) -> None:
        assert running.wait(10)
        raise StageFailed("bad")

    try:
        started = time.monotonic()
        report = run_jobs(
            [Job("lint", (), fail), Job("deploy", (), stubborn)],
            Recorder(),
            kill_grace=0.1,
            stop_timeout=0.3,
        )
        assert time.monotonic() - started < 5
        assert report.stage("deploy").status == "cancelled"
        assert "abandoned" in report.stage("deploy").message
    finally:
        release.set()


# -- interruption ----------------------------------------------------------------------------


def test_sigterm_in_process_interrupts_and_restores_handlers() -> None:
    rec = Recorder()
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)

    def slow(ctx: StageContext) -> None:
        ctx.sh("echo pid=$$; exec sleep 30")

    def trigger(ctx: StageContext) -> None:
        rec.wait_line("test", "pid=")
        os.kill(os.getpid(), signal.SIGTERM)

    report = run_jobs(
        [Job("lint", (), trigger), Job("test", (), slow), Job("push", ("lint", "test"), ok)],
        rec,
        kill_grace=1.0,
    )
    assert (report.status, report.exit_code) == ("interrupted", 130)
    assert report.stage("lint").status == "succeeded"
    assert report.stage("test").status == "cancelled"
    assert report.stage("push").status == "not_run"
    assert wait_dead(int(rec.wait_line("test", "pid=").split("=")[1]))
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


DRIVER = textwrap.dedent(
    """
    import sys
    from deployctl.pipeline import Job, run_jobs
    from deployctl.ui.progress import PlainReporter

    def slow(ctx):
        ctx.sh("sleep 30 & echo bg=$!; echo pid=$$; exec sleep 30")

    jobs = [
        Job("lint", (), lambda ctx: ctx.sh("true")),
        Job("build", (), lambda ctx: ctx.sh("true")),
        Job("test", ("lint",), slow),
        Job("push", ("lint", "test", "build"), lambda ctx: None),
        Job("deploy", ("push",), lambda ctx: None),
    ]
    sys.exit(run_jobs(jobs, PlainReporter(sys.stdout), kill_grace=1.0).exit_code)
    """
)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_to_runner_process_exits_130_and_leaves_no_child(sig: int) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    proc = shell.start(f"exec {sys.executable} -c '{DRIVER}'", env=env)
    seen: dict[str, int] = {}
    lines: list[str] = []
    deadline = time.monotonic() + 20
    # Signal once lint and build are done and test's processes exist.
    while not (len(seen) == 2 and "==> build succeeded" in " ".join(lines)) and time.monotonic() < deadline:
        line = proc.next_line(0.05)
        if line is None:
            continue
        lines.append(line)
        for key in ("pid", "bg"):
            if line.startswith(f"[test] {key}="):
                seen[key] = int(line.split("=")[1])
    assert len(seen) == 2, lines
    os.kill(proc.pid, sig)
    code = proc.wait(timeout=20)
    assert proc.eof.wait(5)
    lines += proc.drain()
    assert code == 130, lines
    assert wait_dead(seen["pid"]) and wait_dead(seen["bg"])
    # One closing line saying what was and was not done.
    assert lines[-1] == "interrupted: lint, build done; test cancelled; push, deploy not run", lines
    assert not lines[-2].startswith("interrupted"), lines


# -- redaction, outputs, report ----------------------------------------------------------------


def test_every_line_tail_note_and_message_is_redacted() -> None:
    redactor = Redactor()
    redactor.add("hunter2-very-secret")

    def stage(ctx: StageContext) -> None:
        ctx.sh("echo login with hunter2-very-secret; echo key AKIAABCDEFGHIJKLMNOP")
        ctx.note("using hunter2-very-secret")
        ctx.outputs["image"] = "registry/app:1"
        ctx.sh("echo hunter2-very-secret; exit 1")

    rec = Recorder()
    report = run_jobs([Job("build", (), stage)], rec, redactor=redactor)
    everything = json.dumps([rec.events, report.to_json_dict()])
    assert "hunter2-very-secret" not in everything
    assert "AKIAABCDEFGHIJKLMNOP" not in everything
    assert "login with ***" in rec.lines("build")
    assert report.stage("build").message == "`echo ***; exit 1` exited 1"
    assert report.outputs == {"image": "registry/app:1"}


def test_outputs_are_shared_between_stages() -> None:
    def build(ctx: StageContext) -> None:
        ctx.outputs["image"] = "r/app@sha256:abc"

    def deploy(ctx: StageContext) -> None:
        ctx.outputs["release"] = f"released {ctx.outputs['image']}"

    report = run_jobs([Job("build", (), build), Job("deploy", ("build",), deploy)], Recorder())
    assert report.outputs == {"image": "r/app@sha256:abc", "release": "released r/app@sha256:abc"}


def test_report_json_has_stable_keys_and_round_trips(tmp_path: Path) -> None:
    def build(ctx: StageContext) -> None:
        ctx.log("built")
        ctx.note("size 4.2 MB")
        ctx.outputs["digest"] = "sha256:abc"

    jobs = [Job("build", (), build), Job("push", ("build",), lambda c: c.skip("exists"))]
    report = run_jobs(jobs, Recorder())
    path = write_report(report, tmp_path / "report.json")
    data = json.loads(path.read_text())
    assert data == report.to_json_dict()
    assert list(data) == ["schema", "schema_version", "status", "exit_code", "started_at", "ended_at",
                          "duration_s", "stages", "outputs"]
    assert data["schema"] == "deployctl.run-report/v1"
    assert data["schema_version"] == 1 and data["status"] == "succeeded" and data["exit_code"] == 0
    build_data = data["stages"][0]
    assert list(build_data) == ["name", "status", "started_at", "ended_at", "duration_s", "message", "note",
                                "tail", "details"]
    assert (build_data["note"], build_data["tail"]) == ("size 4.2 MB", ["built"])
    assert build_data["details"] == {}
    assert data["stages"][1]["message"] == "exists"
    assert data["outputs"] == {"digest": "sha256:abc"}


def test_pipeline_import_stays_light() -> None:
    code, out, err = shell.run_capture(
        [sys.executable, "-c", "import sys, deployctl.pipeline, deployctl.ui; print('rich' in sys.modules)"],
        timeout=30,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert (code, out.strip()) == (0, "False"), err


def test_cancelled_stage_message_is_redacted() -> None:
    """A sibling stopped by fail-fast records its command line; a token in it is masked too."""
    rec = Recorder()
    token = "abcdefgh12345678"

    def slow(ctx: StageContext) -> None:
        ctx.sh(f"echo started; curl -H 'Authorization: Bearer {token}' x 2>/dev/null; exec sleep 30")

    def fail(ctx: StageContext) -> None:
        rec.wait_line("lint", "started")
        raise StageFailed("tests failed")

    report = run_jobs([Job("lint", (), slow), Job("test", (), fail)], rec, kill_grace=0.5)
    lint = report.stage("lint")
    assert lint.status == "cancelled"
    assert "stopped: run cancelled" in lint.message
    assert token not in lint.message
    assert token not in json.dumps([rec.events, report.to_json_dict()])
