"""The reader `deployctl logs` uses for an environment: CloudWatch Logs for ECS
(deployctl.app.logs), the engine's container output for a local one (deployctl.app.local_logs).
Both give the same redacted Lines through `read(start_ms)` and `follow(start_ms)`."""

from __future__ import annotations

from typing import Any

from deployctl.adapters import aws, engine
from deployctl.app import local_logs
from deployctl.app import logs as ecs_logs
from deployctl.config.model import ResolvedConfig
from deployctl.redact import Redactor


def open_reader(cfg: ResolvedConfig, req: ecs_logs.Request, redactor: Redactor) -> tuple[Any, list[str]]:
    """(reader, the services it reads, in deploy.yaml order)."""
    names = ecs_logs.pick_services(cfg, req.service)
    if cfg.environment.target == "docker":
        reader = local_logs.LocalReader(engine.connect(), cfg.app, cfg.env_name, names, release=req.release,
                                        redactor=redactor)
        reader.check()
        return reader, names
    clients = aws.clients(cfg.region)
    found = ecs_logs.sources(cfg, clients, req)
    return ecs_logs.Reader(clients.logs, found, redactor), [s.service for s in found]
