"""The machine-readable run report: `--json` on stdout and `--report FILE`."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from deployctl.pipeline import RunReport


def report_json(report: RunReport) -> str:
    """The report as indented JSON text (keys documented in RunReport.to_json_dict), through the
    redactor like every other output (by key name and value shape, see Redactor.redact_data)."""
    from deployctl.redact import Redactor

    data = Redactor().redact_data(report.to_json_dict())
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def write_report(report: RunReport, path: str | Path) -> Path:
    """Write the JSON report to `path`, creating parent directories.

    Written to a temporary file and renamed, so a reader (a later CI step, a dashboard) sees
    either the previous report or the complete new one, never half a file.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(report_json(report))
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; a report is not a secret
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
