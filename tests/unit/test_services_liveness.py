"""scripts/services' idea of "is the service I started still alive" (live_pid, wait_until).

CI once declared a healthy registry dead during start-up: the pid file is written as soon as
the background job forks, and for a moment that child is still a copy of the script (or shows
an empty cmdline while it execs), so matching its cmdline against "docker-registry" failed.
These run the script's own functions in bash, on real processes; no Docker needed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SERVICES = Path(__file__).resolve().parents[2] / "scripts" / "services"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None or not Path("/proc/self/status").exists(),
                                reason="needs bash and /proc (Linux)")


def bash(script: str, state_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", f'source "{SERVICES}"\n{script}'],
        capture_output=True, text=True, timeout=30,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEPLOYCTL_SERVICES_DIR": str(state_dir)},
    )


def test_sourcing_the_script_runs_no_command(tmp_path: Path) -> None:
    result = bash("echo sourced", tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "sourced\n" and "usage" not in result.stderr


def liveness(state_dir: Path, start: str, pattern: str) -> str:
    """What live_pid says of the process `start` records in $STATE_DIR/svc.pid."""
    result = bash(f'mkdir -p "$STATE_DIR"; {start}\n'
                  f'live_pid svc {pattern} >/dev/null && echo alive || echo dead\n'
                  'kill %1 2>/dev/null || true', state_dir)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_a_child_that_has_not_exec_d_yet_counts_as_started(tmp_path: Path) -> None:
    # `sleep` never matches the pattern, exactly like a forked child before its exec.
    assert liveness(tmp_path, 'sleep 20 & echo $! >"$STATE_DIR/svc.pid"', "docker-registry") == "alive"


def test_a_process_that_is_not_ours_and_does_not_match_is_not_the_service(tmp_path: Path) -> None:
    # A stale pid file whose pid now belongs to something else (pid 1 here).
    assert liveness(tmp_path, 'echo 1 >"$STATE_DIR/svc.pid"', "docker-registry") == "dead"


def test_a_child_that_died_is_dead_even_before_it_is_reaped(tmp_path: Path) -> None:
    assert liveness(tmp_path, 'sh -c "exit 3" & echo $! >"$STATE_DIR/svc.pid"; sleep 0.3',
                    "docker-registry") == "dead"


def test_a_matching_process_is_the_service(tmp_path: Path) -> None:
    assert liveness(tmp_path, 'sleep 20 & echo $! >"$STATE_DIR/svc.pid"', "sleep") == "alive"


def test_wait_until_trusts_a_passing_health_check_over_a_lost_pid(tmp_path: Path) -> None:
    # The recorded pid is gone (say, a launcher that forked), but the service answers.
    ok = tmp_path / "healthy"
    result = bash(f'mkdir -p "$STATE_DIR"; echo 999999 >"$STATE_DIR/svc.pid"; n=0\n'
                  f'check() {{ n=$((n+1)); ((n > 1)) && [[ -e "{ok}" ]]; }}\n'
                  f': >"{ok}"\n'
                  'wait_until svc /dev/null svc docker-registry check && echo up || echo failed', tmp_path)
    assert result.stdout.strip() == "up", result.stderr


def test_wait_until_reports_a_service_that_died_during_start_up(tmp_path: Path) -> None:
    log = tmp_path / "svc.log"
    log.write_text("listen tcp 127.0.0.1:5000: bind: address already in use\n")
    result = bash(f'mkdir -p "$STATE_DIR"; echo 999999 >"$STATE_DIR/svc.pid"\n'
                  f'wait_until svc "{log}" svc docker-registry false && echo up || echo failed', tmp_path)
    assert result.stdout.strip() == "failed"
    assert "svc exited during start-up" in result.stderr
    assert "address already in use" in result.stderr
