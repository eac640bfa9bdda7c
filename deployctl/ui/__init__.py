"""How a run is shown: reporters (deployctl.pipeline.Reporter) and the choice for this terminal.

Importing this package is cheap: rich is imported only when a rich reporter is built, so
`deployctl --help` and the pipeline module stay light.

Implementations:
- `progress.RichReporter`: live rows for an interactive terminal;
- `progress.PlainReporter`: `[stage] line` / `==> stage succeeded in 1.2s` for logs and pipes;
- `github.GithubReporter`: GitHub Actions groups, annotations, step summary and step outputs;
- `NullReporter`: shows nothing (tests, embedding).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, TextIO

from deployctl.ui.base import BaseReporter, NullReporter
from deployctl.ui.github import GithubReporter
from deployctl.ui.progress import PlainReporter, RichReporter

if TYPE_CHECKING:
    from deployctl.pipeline import Reporter

__all__ = ["BaseReporter", "GithubReporter", "NullReporter", "PlainReporter", "RichReporter", "make_reporter"]


def make_reporter(
    *,
    json_mode: bool,
    stream: TextIO | None = None,
    env: Mapping[str, str] = os.environ,
) -> Reporter:
    """Pick the reporter for where we are running.

    - `GITHUB_ACTIONS=true` → GithubReporter (groups/annotations on the stream, summary to
      $GITHUB_STEP_SUMMARY, outputs to $GITHUB_OUTPUT), whatever the other settings;
    - else a terminal stream (and TERM is not "dumb") → RichReporter;
    - else → PlainReporter.

    Human progress goes to `stream`, which defaults to stdout — or to stderr in `json_mode`,
    where stdout must carry nothing but the JSON document.
    """
    if stream is None:
        stream = sys.stderr if json_mode else sys.stdout
    if env.get("GITHUB_ACTIONS") == "true":
        return GithubReporter(
            stream,
            summary_path=env.get("GITHUB_STEP_SUMMARY") or None,
            output_path=env.get("GITHUB_OUTPUT") or None,
        )
    if _is_tty(stream) and env.get("TERM") != "dumb":
        return RichReporter(stream)
    return PlainReporter(stream)


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
