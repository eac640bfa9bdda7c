"""`run --report PATH` (issue 12 §6): the path is checked before any stage runs (exit 2, nothing
done), only a regular file is ever written (a device node, FIFO, symlink or directory at the path
is left as it was), and a report that cannot be written once the run is over is a warning that
keeps the run's own exit code, never an internal error (exit 3).

Read-only and full filesystems are real ones: tmpfs mounts (the tests run as root here).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import FixtureApp

pytestmark = pytest.mark.docker

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs or making a device node needs root")


def _mark_stages(app: FixtureApp) -> Path:
    """Lint leaves a marker file: proof of whether any stage ran."""
    app.edit("deploy.yaml", lambda t: t.replace('["sh checks/lint.sh"]', '["sh checks/lint.sh", "touch ran-lint"]'))
    app.commit("lint marks that it ran")
    return app.path / "ran-lint"


@contextlib.contextmanager
def _tmpfs(where: Path, options: str) -> Iterator[Path]:
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _refused(app: FixtureApp, path: str, *words: str) -> None:
    marker = _mark_stages(app)
    result = app.run("--only", "lint,test", "--report", path)
    assert result.code == 2, result.output
    assert "internal error" not in result.output and "Traceback" not in result.output
    assert f"--report {path}" in result.stderr, result.output
    for word in words:
        assert word in result.stderr, result.output
    assert not marker.exists(), "a stage ran although the report path was refused"


@needs_root
def test_a_device_node_is_refused_and_left_alone(fixture_app: FixtureApp, tmp_path: Path) -> None:
    # A private copy of /dev/full (char 1,7): a failing run must not damage the machine's own.
    node = tmp_path / "full"
    os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 7))
    _refused(fixture_app, str(node), "a character device", "regular file")
    assert stat.S_ISCHR(os.lstat(node).st_mode)


def test_a_symlink_is_refused_and_neither_it_nor_its_target_changes(fixture_app: FixtureApp, tmp_path: Path) -> None:
    target = tmp_path / "precious.txt"
    target.write_text("keep me\n")
    link = tmp_path / "report.json"
    link.symlink_to(target)
    _refused(fixture_app, str(link), "a symbolic link")
    assert link.is_symlink() and target.read_text() == "keep me\n"


def test_a_fifo_is_refused_without_blocking(fixture_app: FixtureApp, tmp_path: Path) -> None:
    fifo = tmp_path / "report.fifo"
    os.mkfifo(fifo)
    _refused(fixture_app, str(fifo), "a FIFO")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_directory_is_refused(fixture_app: FixtureApp, tmp_path: Path) -> None:
    (tmp_path / "reports").mkdir()
    _refused(fixture_app, str(tmp_path / "reports"), "a directory")
    assert (tmp_path / "reports").is_dir()


def test_a_missing_directory_is_refused(fixture_app: FixtureApp, tmp_path: Path) -> None:
    _refused(fixture_app, str(tmp_path / "nowhere" / "report.json"), "does not exist")
    assert not (tmp_path / "nowhere").exists()


@needs_root
def test_a_read_only_filesystem_is_refused_before_any_stage(fixture_app: FixtureApp, tmp_path: Path) -> None:
    with _tmpfs(tmp_path / "ro", "ro,size=1m") as ro:
        _refused(fixture_app, str(ro / "report.json"), "cannot create a file", "Read-only file system")


@needs_root
@pytest.mark.parametrize("lint_fails", [False, True], ids=["run-succeeds", "run-fails"])
def test_a_report_that_cannot_be_written_after_the_run_keeps_the_runs_exit_code(
        fixture_app: FixtureApp, tmp_path: Path, lint_fails: bool) -> None:
    if lint_fails:
        fixture_app.edit("deploy.yaml", lambda t: t.replace('["sh checks/lint.sh"]', '["false"]'))
        fixture_app.commit("lint fails")
    # One page of tmpfs, already full: the path check can create (and remove) an empty file,
    # writing the report afterwards fails with ENOSPC, as on a disk that filled during the run.
    with _tmpfs(tmp_path / "full", "size=4k") as full:
        with contextlib.suppress(OSError), open(full / "filler", "wb") as fh:
            fh.write(b"x" * 65536)
        report = full / "report.json"
        result = fixture_app.run("--only", "lint,test", "--report", str(report))
        assert result.code == (1 if lint_fails else 0), result.output
        assert "internal error" not in result.output and "Traceback" not in result.output
        assert f"warning: the run report was not written to {report}" in result.stderr, result.output
        assert "No space left on device" in result.stderr
        assert not report.exists()
        assert [p.name for p in full.iterdir()] == ["filler"]  # no temporary file left behind


def test_an_existing_report_is_replaced_by_a_regular_file(fixture_app: FixtureApp, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    report.write_text("old report\n")
    result = fixture_app.run("--only", "lint,test", "--report", str(report))
    assert result.code == 0, result.output
    assert stat.S_ISREG(os.lstat(report).st_mode)
    assert json.loads(report.read_text())["status"] == "succeeded"
