"""The reporter every implementation starts from (deployctl.pipeline.Reporter): each event
ignored. Its own module so the reporters (progress, github) and the package that picks one
(deployctl.ui) import it without importing each other."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from deployctl.pipeline import RunReport, StageRecord


class BaseReporter:
    """Every event ignored; subclass and override what you need."""

    def run_started(self, names: Sequence[str]) -> None:
        pass

    def stage_started(self, name: str) -> None:
        pass

    def stage_line(self, name: str, line: str) -> None:
        pass

    def stage_note(self, name: str, text: str) -> None:
        pass

    def stage_finished(self, record: StageRecord) -> None:
        pass

    def run_finished(self, report: RunReport) -> None:
        pass


class NullReporter(BaseReporter):
    """Shows nothing."""
