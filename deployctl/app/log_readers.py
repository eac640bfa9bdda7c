"""The reader `deployctl logs` uses for an environment: its target's (base.WithLogs), e.g.
CloudWatch Logs for ECS, the engine's container output for the local engine. Every reader gives
the same redacted Lines (deployctl.targets.log_lines) through `read(start_ms)` and
`follow(start_ms)`."""

from __future__ import annotations

from typing import Any

from deployctl import targets
from deployctl.config.model import ResolvedConfig
from deployctl.errors import UsageError
from deployctl.redact import Redactor
from deployctl.targets.base import WithLogs
from deployctl.targets.log_lines import Request


def open_reader(cfg: ResolvedConfig, req: Request, redactor: Redactor) -> tuple[Any, list[str]]:
    """(reader, the services it reads, in deploy.yaml order)."""
    # The environment's own target: a companion (the frontend) has no container logs here.
    target: object = targets.target_class(cfg.environment.target)(cfg)  # type: ignore[call-arg]
    if not isinstance(target, WithLogs):
        raise UsageError(f"environment '{cfg.env_name}' deploys to {cfg.environment.target}, which has no "
                         "logs deployctl can read", hint="read them where that platform shows them")
    return target.open_logs(req, redactor)
