"""The machine-readable run report: `--json` on stdout and `--report FILE`."""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from deployctl.redact import Redactor

if TYPE_CHECKING:
    from deployctl.pipeline import RunReport


def report_json(report: RunReport) -> str:
    """The report as indented JSON text (keys documented in RunReport.to_json_dict), through the
    redactor like every other output (by key name and value shape, see Redactor.redact_data)."""
    data = Redactor().redact_data(report.to_json_dict())
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


class ReportPathError(OSError):
    """The --report path cannot hold a report file (the message says why, for people)."""


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a directory"),
                       (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def _existing_problem(target: Path) -> str | None:
    """Why whatever is at `target` must not be replaced by a report, or None (nothing there, or
    a regular file: a previous report). Never follows a symlink: replacing a link's target, or
    the link itself, is writing somewhere the person did not name."""
    try:
        mode = os.lstat(target).st_mode
    except FileNotFoundError:
        return None
    if stat.S_ISREG(mode):
        return None
    return f"{target} is {_kind(mode)}; a report is only written as a regular file"


def check_report_path(path: str | Path) -> Path:
    """Check, before anything runs, that a report can be written to `path`: whatever is there is
    a regular file (or nothing), the directory exists and a file can be created in it (a real
    probe: permissions, a read-only filesystem, a full inode table all show here).
    Raises ReportPathError with a one-line reason."""
    target = Path(path)
    if not str(path) or target.name in ("", ".", ".."):
        raise ReportPathError(f"{str(path)!r} names no file")
    problem = _existing_problem(target)
    if problem:
        raise ReportPathError(problem)
    parent = target.parent
    if not parent.is_dir():
        raise ReportPathError(f"the directory {parent} does not exist" if not parent.exists()
                              else f"{parent} is not a directory")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".probe", dir=parent)
    except OSError as exc:
        raise ReportPathError(f"cannot create a file in {parent}: {exc.strerror or exc}") from None
    os.close(fd)
    os.unlink(probe)
    return target


def write_report(report: RunReport, path: str | Path) -> Path:
    """Write the JSON report to `path` (its directory must exist: check_report_path).

    Written to a temporary file in the same directory and renamed, so a reader (a later CI step,
    a dashboard) sees either the previous report or the complete new one, never half a file.
    Only a regular file (or nothing) is ever replaced: a device node, FIFO, directory or
    symlink that appeared since the check is left alone (ReportPathError).
    """
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(report_json(report))
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; a report is not a secret
        problem = _existing_problem(target)
        if problem:
            raise ReportPathError(problem)
        os.replace(tmp, target)  # rename(2) replaces a name; it never follows a symlink
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
