"""Typed views of Docker Engine inspect answers: the one place that reads their dict shape.

Pure (no docker SDK import), so the local target can use the types without loading the SDK;
`deployctl.adapters.engine` re-exports them. Tests build views from plain dicts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class HealthCheck:
    """One entry of a container's health-check log."""

    exit_code: int | None
    output: str


@dataclass(frozen=True)
class ContainerView:
    """What the engine says about one container, read from its inspect attrs in one place.
    Shape: https://docs.docker.com/reference/api/engine/version/v1.41/#tag/Container/operation/ContainerInspect
    """

    name: str
    image: str = ""  # the image id the container runs
    status: str = ""  # State.Status: created | running | restarting | exited | dead | …; "" unknown
    exit_code: int | None = None
    oom_killed: bool = False
    restarts: int = 0
    health: str | None = None  # starting | healthy | unhealthy; None: no health check
    failing_streak: int | None = None
    health_log: tuple[HealthCheck, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    # "8000/tcp" → (host ip, host port) bindings
    ports: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> ContainerView:
        state = attrs.get("State") or {}
        health = state.get("Health")
        streak = health.get("FailingStreak") if health is not None else None
        ports = (attrs.get("NetworkSettings") or {}).get("Ports") or {}
        code = state.get("ExitCode")
        return cls(
            name=str(attrs.get("Name") or "").lstrip("/"),
            image=str(attrs.get("Image") or ""),
            status=str(state.get("Status") or ""),
            exit_code=int(code) if code is not None else None,
            oom_killed=bool(state.get("OOMKilled")),
            restarts=int(attrs.get("RestartCount") or 0),
            health=str(health.get("Status", "")) if health is not None else None,
            failing_streak=int(streak) if streak is not None else None,
            health_log=tuple(HealthCheck(c.get("ExitCode"), str(c.get("Output", "")))
                             for c in (health or {}).get("Log") or []),
            labels={str(k): str(v) for k, v in ((attrs.get("Config") or {}).get("Labels") or {}).items()},
            ports={str(k): tuple((str(b.get("HostIp") or ""), str(b.get("HostPort") or "")) for b in v or [])
                   for k, v in ports.items()},
        )

    def host_address(self, port: int) -> str:
        """`ip:port` the engine published container port `port`/tcp on, or ""."""
        for host_ip, host_port in self.ports.get(f"{port}/tcp", ()):
            if host_port:
                return f"{host_ip or '127.0.0.1'}:{host_port}"
        return ""


_NS = 1_000_000_000


@dataclass(frozen=True)
class ImageHealthcheck:
    """An image's own HEALTHCHECK (Config.Healthcheck), with Docker's defaults for the timings it
    leaves out: https://docs.docker.com/reference/dockerfile/#healthcheck"""

    test: tuple[str, ...]  # ("CMD", …) or ("CMD-SHELL", "…")
    interval: float = 30.0
    timeout: float = 30.0
    start_period: float = 0.0
    retries: int = 3

    @classmethod
    def from_config(cls, check: Mapping[str, Any] | None) -> ImageHealthcheck | None:
        """None for no HEALTHCHECK, or `HEALTHCHECK NONE` (a test of ["NONE"])."""
        test = tuple(str(x) for x in (check or {}).get("Test") or ())
        if check is None or not test or test[0] == "NONE":
            return None

        def seconds(key: str, default: float) -> float:
            raw = check.get(key) or 0  # nanoseconds; 0 or absent: the default
            return raw / _NS if raw else default

        return cls(test, seconds("Interval", 30.0), seconds("Timeout", 30.0), seconds("StartPeriod", 0.0),
                   int(check.get("Retries") or 3))


@dataclass(frozen=True)
class ImageView:
    """What the engine says about one local image (`docker image inspect`).
    Shape: https://docs.docker.com/reference/api/engine/version/v1.41/#tag/Image/operation/ImageInspect
    """

    id: str
    size: int = 0
    labels: Mapping[str, str] = field(default_factory=dict)
    working_dir: str = ""
    repo_digests: tuple[str, ...] = ()  # "repo@sha256:…", one per registry it was pushed to or pulled from
    healthcheck: ImageHealthcheck | None = None

    @classmethod
    def from_inspect(cls, info: Mapping[str, Any]) -> ImageView:
        config = info.get("Config") or {}
        check = config.get("Healthcheck")
        return cls(
            id=str(info.get("Id") or ""),
            size=int(info.get("Size") or 0),
            labels={str(k): str(v) for k, v in (config.get("Labels") or {}).items()},
            working_dir=str(config.get("WorkingDir") or ""),
            repo_digests=tuple(str(d) for d in info.get("RepoDigests") or ()),
            healthcheck=ImageHealthcheck.from_config(check if isinstance(check, Mapping) else None),
        )

    def digest_in(self, repository: str) -> str:
        """The digest `repository` knows this image by, or ""."""
        for repo_digest in self.repo_digests:
            repo, _, digest = repo_digest.partition("@")
            if repo == repository and digest:
                return digest
        return ""


class _Inspected(Protocol):
    attrs: Mapping[str, Any]


def container_view(container: _Inspected) -> ContainerView:
    """The typed view of a docker SDK container object (as of its last reload)."""
    return ContainerView.from_attrs(container.attrs)
