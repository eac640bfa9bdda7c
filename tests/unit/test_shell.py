"""The shell adapter, with real processes."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from deployctl.adapters import shell
from tests.support.processes import pid_alive


def read_all(proc: shell.Proc, timeout: float = 10) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while not (proc.eof.is_set() and proc.has_exited()) and time.monotonic() < deadline:
        line = proc.next_line(0.05)
        if line is not None:
            lines.append(line)
    return lines + proc.drain()


def wait_for_line(proc: shell.Proc, prefix: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.next_line(0.05)
        if line is not None and line.startswith(prefix):
            return line
    raise AssertionError(f"no line starting with {prefix!r} within {timeout}s")


def test_start_streams_merged_output_and_exit_code(tmp_path: Path) -> None:
    proc = shell.start(
        "echo out; echo err >&2; pwd; echo $ADDED; exit 4", env={**os.environ, "ADDED": "yes"}, cwd=tmp_path
    )
    lines = read_all(proc)
    assert proc.wait() == 4
    assert lines == ["out", "err", str(tmp_path), "yes"]


def test_command_runs_in_its_own_process_group() -> None:
    proc = shell.start("echo pid=$$; sleep 0.2")
    pid = int(wait_for_line(proc, "pid=").split("=")[1])
    assert pid == proc.pid
    assert os.getpgid(pid) == pid != os.getpgrp()
    proc.wait()


def test_kill_group_stops_grandchildren() -> None:
    proc = shell.start("sleep 30 & echo bg=$!; echo ready; sleep 30")
    bg = int(wait_for_line(proc, "bg=").split("=")[1])
    wait_for_line(proc, "ready")
    started = time.monotonic()
    code = shell.kill_group(proc, grace=2.0)
    assert code == -signal.SIGTERM
    assert time.monotonic() - started < 2.0, "SIGTERM was enough; it should not wait out the grace"
    deadline = time.monotonic() + 5
    while pid_alive(bg) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not pid_alive(bg)
    assert not pid_alive(proc.pid)


def test_kill_group_escalates_to_sigkill_when_sigterm_is_ignored() -> None:
    # An ignored signal stays ignored across exec, so the sleep ignores SIGTERM too.
    proc = shell.start("trap '' TERM; echo ready; sleep 30")
    wait_for_line(proc, "ready")
    started = time.monotonic()
    code = shell.kill_group(proc, grace=0.3)
    assert code == -signal.SIGKILL
    assert 0.3 <= time.monotonic() - started < 5


@pytest.mark.skipif(not hasattr(os, "waitid"), reason="needs waitid (Linux)")
def test_has_exited_does_not_reap() -> None:
    # The leader must stay a zombie until we reap it, so its pid (= the group id) cannot be
    # reused by an unrelated process while we may still signal the group.
    proc = shell.start("exit 7")
    deadline = time.monotonic() + 5
    while not proc.has_exited() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.has_exited()
    assert Path(f"/proc/{proc.pid}").exists()  # zombie, not yet reaped
    assert proc.wait() == 7
    assert not Path(f"/proc/{proc.pid}").exists()


def test_run_capture_returns_code_stdout_stderr() -> None:
    code, out, err = shell.run_capture(["/bin/sh", "-c", "echo hi; echo oops >&2; exit 2"])
    assert (code, out, err) == (2, "hi\n", "oops\n")


def test_run_capture_passes_stdin() -> None:
    assert shell.run_capture([sys.executable, "-c", "import sys; print(sys.stdin.read().upper())"],
                             stdin="abc") == (0, "ABC\n", "")


def test_run_capture_timeout_kills_the_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="timed out after 0.3s"):
        shell.run_capture(["/bin/sh", "-c", f"sleep 30 & echo $! > {pidfile}; sleep 30"], timeout=0.3)
    assert time.monotonic() - started < 5
    bg = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while pid_alive(bg) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not pid_alive(bg)


def test_run_capture_missing_program() -> None:
    with pytest.raises(FileNotFoundError):
        shell.run_capture(["/nonexistent/deployctl-no-such-program"])


def test_only_the_shell_adapter_imports_subprocess() -> None:
    root = Path(__file__).resolve().parents[2] / "deployctl"
    offenders = [
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if p.name != "shell.py" and any(
            line.strip().startswith(("import subprocess", "from subprocess"))
            for line in p.read_text(encoding="utf-8").splitlines()
        )
    ]
    assert offenders == []
