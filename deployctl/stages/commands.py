"""lint and test: the configured shell commands, in order, under one stage-wide timeout.

The timeout in deploy.yaml is for the stage, not for each command: "tests take at most 10m"
is what people mean, so each command gets what is left of it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deployctl.config.model import CommandStage
from deployctl.errors import StageFailed


def job_fn(stage: CommandStage, project_dir: Path) -> Callable[[Any], None]:
    cwd = (project_dir / stage.workdir).resolve()

    def run(ctx: Any) -> None:
        if not cwd.is_dir():
            raise StageFailed(f"the {ctx.name} workdir {cwd} does not exist",
                              hint=f"stages.{ctx.name}.workdir in deploy.yaml is relative to deploy.yaml")
        deadline = time.monotonic() + stage.timeout
        for command in stage.run:
            left = deadline - time.monotonic()
            if left <= 0:
                raise StageFailed(f"{ctx.name} timed out after {stage.timeout:g}s before `{command}` ran",
                                  hint=f"raise stages.{ctx.name}.timeout in deploy.yaml")
            ctx.sh(command, timeout=left, env=dict(stage.env), cwd=cwd)
        ctx.note(f"{len(stage.run)} command{'s' if len(stage.run) != 1 else ''} ok")

    return run
