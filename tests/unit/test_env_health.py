"""environments.<env>.health: one environment's health timings for every service."""

from __future__ import annotations

from pathlib import Path

from deployctl.config import load_env, read
from deployctl.render import ecs

DOC = """\
version: 1
app: a
region: us-east-1
image: {repository: a}
services:
  api: {port: 8000, health: {path: /health, start_period: 60s, interval: 10s, retries: 3}}
  worker: {health: {command: "pgrep worker", start_period: 30s}}
  cron: {}
environments:
  dev:
    target: docker
    health: {start_period: 5s, retries: 2}
  staging:
    target: docker
    health: {start_period: 5s}
    services: {worker: {health: {start_period: 20s}}}
  prod: {target: docker}
"""


def test_the_environment_sets_every_services_timings_and_a_service_overlay_wins(tmp_path: Path) -> None:
    (tmp_path / "deploy.yaml").write_text(DOC)
    loaded = read(tmp_path / "deploy.yaml")
    dev, staging, prod = (load_env(loaded, e) for e in ("dev", "staging", "prod"))
    api, worker = dev.services["api"].health, dev.services["worker"].health
    assert api is not None and worker is not None
    assert (api.start_period, api.retries, api.interval, api.path) == (5.0, 2, 10.0, "/health")
    assert (worker.start_period, worker.retries, worker.command) == (5.0, 2, "pgrep worker")
    assert dev.services["cron"].health is None  # no check is not given one
    staged = staging.services["worker"].health
    assert staged is not None and staged.start_period == 20.0  # the service's own overlay is more specific
    assert staging.services["api"].health.start_period == 5.0  # type: ignore[union-attr]
    assert prod.services["api"].health.start_period == 60.0  # type: ignore[union-attr]
    # The ECS task definition takes the same resolved timings.
    check = ecs.health_check(dev.services["api"])
    assert check is not None and check["startPeriod"] == 5 and check["retries"] == 2
