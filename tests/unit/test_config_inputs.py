"""`-f` inputs that used to hang, exhaust memory or load in quadratic time (issue 12, section 8).

Each case runs the real CLI in a fresh interpreter with a memory cap and a timeout, so a
regression fails the test instead of taking the machine down with it.
"""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from deployctl.config import read, validate_all
from deployctl.config.resolve import MAX_FILE_BYTES
from deployctl.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = (ROOT / "deploy.yaml").read_text(encoding="utf-8")
# The reference file with its build context and workdirs made absolute, to validate from anywhere.
ANYWHERE = REFERENCE.replace("context: examples/chat-api", f"context: {ROOT}/examples/chat-api") \
    .replace("workdir: examples/chat-api", f"workdir: {ROOT}/examples/chat-api")
MEMORY_CAP = 1 << 30  # far more than validating any real deploy.yaml needs


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def validate(path: Path | str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "GITHUB_ACTIONS"}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    try:
        return subprocess.run([sys.executable, "-m", "deployctl", "validate", "-f", str(path)], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=timeout,
                              preexec_fn=_cap_memory)
    except subprocess.TimeoutExpired:
        pytest.fail(f"validate -f {path} did not finish within {timeout:g}s")


def assert_refused(proc: subprocess.CompletedProcess[str], words: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert words in proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_a_device_is_refused_without_reading_it(device: str) -> None:
    started = time.monotonic()
    proc = validate(device)
    assert_refused(proc, f"{device}: not a regular file (it is a character device)")
    assert time.monotonic() - started < 20


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "deploy.yaml"
    os.mkfifo(fifo)
    assert_refused(validate(fifo, timeout=20), "not a regular file (it is a named pipe)")


def test_a_directory_is_refused(tmp_path: Path) -> None:
    assert_refused(validate(tmp_path), "not a regular file (it is a directory)")


def test_a_socket_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "deploy.yaml"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        assert_refused(validate(path), "not a regular file (it is a socket)")


def test_a_symlink_to_a_regular_file_is_followed(tmp_path: Path) -> None:
    (tmp_path / "real.yaml").write_text(ANYWHERE, encoding="utf-8")
    (tmp_path / "deploy.yaml").symlink_to(tmp_path / "real.yaml")
    proc = validate(tmp_path / "deploy.yaml")
    assert proc.returncode == 0, proc.stderr


def test_a_file_over_the_size_limit_is_refused_quickly(tmp_path: Path) -> None:
    # 60 MB of valid YAML took 2 min 40 s and 4.4 GB before the limit.
    path = tmp_path / "deploy.yaml"
    line = "# " + "x" * 97 + "\n"
    with path.open("w", encoding="utf-8") as fh:
        fh.write(REFERENCE)
        fh.write(line * (60_000_000 // len(line)))
    started = time.monotonic()
    proc = validate(path)
    assert_refused(proc, "too large for a deploy.yaml (more than 1 MiB)")
    assert time.monotonic() - started < 20


def test_a_file_at_the_size_limit_is_still_read(tmp_path: Path) -> None:
    path = tmp_path / "deploy.yaml"
    body = ANYWHERE
    padding = MAX_FILE_BYTES - len(body.encode()) - 1
    path.write_text(body + "#" + "x" * (padding - 1) + "\n", encoding="utf-8")
    assert path.stat().st_size == MAX_FILE_BYTES
    assert set(validate_all(read(path))) == {"dev", "staging", "preview", "prod"}


def _seconds_to_validate(path: Path) -> float:
    """CPU seconds of this process (other work on the machine does not count)."""
    started = time.process_time()
    validate_all(read(path))
    return time.process_time() - started


def test_tab_indented_comment_lines_load_in_linear_time(tmp_path: Path) -> None:
    # 5,000 lines of "<TAB># comment" (24 KB) took 84 s: every such line meant a rewrite and a rescan.
    small, large = tmp_path / "small.yaml", tmp_path / "large.yaml"
    small.write_text(ANYWHERE + "\t# a comment\n" * 1_000, encoding="utf-8")
    large.write_text(ANYWHERE + "\t# a comment\n" * 5_000, encoding="utf-8")
    assert _seconds_to_validate(large) < 5
    # Five times the lines must not cost much more than five times the time (quadratic: 25 times).
    t_small = min(_seconds_to_validate(small) for _ in range(3))
    t_large = min(_seconds_to_validate(large) for _ in range(3))
    assert t_large < 12 * t_small + 0.05, (t_small, t_large)


def test_tabs_before_comments_between_keys_are_still_accepted(tmp_path: Path) -> None:
    path = tmp_path / "deploy.yaml"
    path.write_text("version: 1\n\t# top\napp: demo\nregion: us-east-1\nimage: {repository: demo}\n"
                    "services:\n  api:\n  \t# inside a mapping\n    port: 8000\n\t\n    health: {path: /h}\n"
                    "environments:\n  dev: {target: docker}\n", encoding="utf-8")
    assert validate_all(read(path, {}))["dev"].services["api"].port == 8000


def _seconds_to_report(texts: list[str], tmp_path: Path) -> list[float]:
    """The best of three validations of each text, in this process's CPU seconds (not wall
    time: other work on the machine, such as parallel test workers, does not count), measured
    in turns so that what remains of it weighs on every size alike."""
    paths = []
    for i, text in enumerate(texts):
        paths.append(tmp_path / f"deploy-{i}.yaml")
        paths[-1].write_text(text, encoding="utf-8")
    best = [float("inf")] * len(texts)
    for _ in range(3):
        for i, path in enumerate(paths):
            started = time.process_time()
            with pytest.raises(ConfigError):
                validate_all(read(path, {}))
            best[i] = min(best[i], time.process_time() - started)
    return best


def _unreadable_values(n: int) -> str:
    # n values that cannot be read (a tag) and n unknown keys beside them.
    return ("version: 1\napp: big\nregion: us-east-1\nimage: {repository: big}\nservices:\n  api:\n"
            "    port: 8000\n    health: {path: /h}\n    env:\n"
            + "".join(f"      K{i}: !Ref x{i}\n" for i in range(n))
            + "".join(f"    x{i}: 1\n" for i in range(n))
            + "environments:\n  dev: {target: docker}\n")


def _unknown_overrides(n: int) -> str:
    return ("version: 1\napp: big\nregion: us-east-1\nimage: {repository: big}\nservices:\n"
            + "".join(f"  s{i}: {{command: [x], health: {{command: x}}}}\n" for i in range(n))
            + "environments:\n  dev:\n    target: docker\n    services:\n"
            + "".join(f"      u{i}: {{count: 1}}\n" for i in range(n)))


@pytest.mark.parametrize(("make", "n"), [(_unreadable_values, 4_000), (_unknown_overrides, 3_000)],
                         ids=["unreadable-values", "unknown-service-overrides"])
def test_many_problems_are_reported_in_linear_time(tmp_path: Path, make: Any, n: int) -> None:
    # Every problem was checked against every unreadable value (16 s here for 4,000 of each), and
    # every unknown service compared with every known one for a "did you mean" (about 30 s).
    # Four times the problems must take about four times as long (quadratic: sixteen; the bound
    # is ten), a ratio that holds on a loaded machine where a fixed limit in seconds does not.
    small, big = _seconds_to_report([make(n // 4), make(n)], tmp_path)
    assert big / small < 10, (small, big)


def test_a_hint_lists_a_few_names_not_thousands(tmp_path: Path) -> None:
    path = tmp_path / "deploy.yaml"
    path.write_text(_unknown_overrides(300), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        validate_all(read(path, {}))
    hint = err.value.problems[0].hint or ""
    assert hint.startswith("services are: s0, s1, s2") and hint.endswith("… (300 in all)")
