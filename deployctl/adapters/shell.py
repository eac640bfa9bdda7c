"""The one door to child processes: the only module in deployctl that imports subprocess.

Every command runs in its own session (and so its own process group) for two reasons:
Ctrl-C in a terminal goes to the whole foreground group, and we want to decide ourselves how
children stop (SIGTERM, a grace period, then SIGKILL) rather than race them; and killing a
group reaches grandchildren (`sh -c "make test"` → make → pytest) that killing one pid misses.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

# Longest chunk read as one "line": progress bars and minified output can go megabytes
# without a newline, and we would rather split them than hold them all in memory.
_MAX_LINE_BYTES = 64 * 1024


class Proc:
    """A running `/bin/sh -c` command whose merged stdout/stderr is read line by line.

    A daemon thread reads the pipe so the caller can wait for lines, exit, cancellation and
    deadlines at once, without ever blocking on a read that may never return (a background
    child can hold the pipe open long after the shell exits).
    """

    def __init__(self, popen: subprocess.Popen[bytes], command: str) -> None:
        self._popen = popen
        self.command = command
        self.pid = popen.pid  # also the process-group id: start_new_session makes it the leader
        self._lines: queue.Queue[str] = queue.Queue()
        self.eof = threading.Event()
        self._reader = threading.Thread(target=self._read, name=f"shell-reader-{self.pid}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        stream = self._popen.stdout
        assert stream is not None
        try:
            for raw in iter(lambda: stream.readline(_MAX_LINE_BYTES), b""):
                self._lines.put(raw.decode("utf-8", errors="replace").rstrip("\r\n"))
        except (OSError, ValueError):
            pass  # pipe closed under us while killing: nothing more to read
        finally:
            self.eof.set()

    def next_line(self, timeout: float) -> str | None:
        """The next output line, or None if none arrived within `timeout` seconds."""
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            return None

    def drain(self) -> list[str]:
        """Every line already read and not yet taken."""
        out: list[str] = []
        while True:
            try:
                out.append(self._lines.get_nowait())
            except queue.Empty:
                return out

    def has_exited(self) -> bool:
        """Whether the shell has exited, *without* reaping it.

        An unreaped (zombie) leader keeps its pid, and so the group id, from being reused, which
        makes a later killpg on this group safe: it can never hit an unrelated new process.
        """
        if self._popen.returncode is not None:
            return True
        if hasattr(os, "waitid"):
            try:
                info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG)
            except ChildProcessError:
                return True
            return info is not None
        # No waitid (macOS): poll reaps; the pid-reuse window it opens is tiny and accepted.
        return self._popen.poll() is not None

    @property
    def reaped(self) -> bool:
        return self._popen.returncode is not None

    def wait(self, timeout: float | None = None) -> int:
        """Reap the shell and return its exit code (negative: killed by that signal)."""
        return self._popen.wait(timeout=timeout)

    def close(self) -> None:
        if self._popen.stdout is not None and self.eof.is_set():
            self._popen.stdout.close()


def start(
    command: str,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
) -> Proc:
    """Start `command` with `/bin/sh -c` in a new session; stderr is merged into stdout.

    `env` replaces the environment entirely when given (callers merge with os.environ first if
    they want inheritance). stdin is /dev/null: a pipeline step must never wait for a keyboard.
    """
    popen = subprocess.Popen(
        ["/bin/sh", "-c", command],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=dict(env) if env is not None else None,
        cwd=str(cwd) if cwd is not None else None,
        start_new_session=True,
    )
    return Proc(popen, command)


def signal_group(proc: Proc, sig: int) -> None:
    """Send `sig` to the whole process group; an already-empty group is not an error."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def kill_group(proc: Proc, grace: float = 2.0) -> int:
    """Stop every process of the command: SIGTERM, up to `grace` seconds, then SIGKILL. Reaps.

    "Everyone has stopped" is judged by the shell having exited *and* the output pipe reaching
    EOF: every process in the group inherited that pipe, so EOF means they have all gone (or
    closed it deliberately, in which case the SIGKILL below still reaches them). The SIGKILL is
    sent unconditionally because it is harmless to an empty group and the leader is unreaped
    until after it, so the group id cannot have been reused.
    """
    signal_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + max(grace, 0.0)
    while time.monotonic() < deadline and not (proc.has_exited() and proc.eof.is_set()):
        time.sleep(0.02)
    signal_group(proc, signal.SIGKILL)
    code = proc.wait()
    # After SIGKILL the pipe closes as soon as the kernel tears the processes down; a process
    # that escaped the group (its own setsid) may keep it open, so don't wait forever.
    proc.eof.wait(timeout=1.0)
    proc.close()
    return code


def run_capture(
    argv: Sequence[str],
    timeout: float | None = None,
    *,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
) -> tuple[int, str, str]:
    """Run a small helper command to completion: (exit code, stdout, stderr), text decoded.

    For short calls (git, docker CLI, version probes), not pipeline steps: output is buffered,
    not streamed. Raises FileNotFoundError if argv[0] does not exist and TimeoutError (after
    killing the command's whole group) if it runs longer than `timeout` seconds.
    """
    popen = subprocess.Popen(
        list(argv),
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(env) if env is not None else None,
        cwd=str(cwd) if cwd is not None else None,
        start_new_session=True,
    )
    try:
        out, err = popen.communicate(input=stdin.encode() if stdin is not None else None, timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(popen.pid, signal.SIGKILL)
        popen.communicate()
        raise TimeoutError(f"{argv[0]} timed out after {timeout:g}s") from None
    except BaseException:
        # KeyboardInterrupt and friends: don't leave the helper running behind us.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(popen.pid, signal.SIGKILL)
        popen.wait()
        raise
    return popen.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
