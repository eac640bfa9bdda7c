"""The stages of `deployctl run`: lint and test (commands.py), build (build.py), push (push.py).

Each module offers a `job_fn(...)` returning the function the pipeline calls with a
StageContext. The outside world arrives as arguments: an `EngineHandle` (a lazily connected
Docker client, so runs that never build never need dockerd) and a `RegistryAccess` (registry
credentials and clients, see access.py). Build and push of one run share an `ImageState`,
which is how "the registry already has this image" found by build also skips push.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deployctl.config.model import ImageConfig


@dataclass(frozen=True)
class ImageSpec:
    """What to build and where it goes, fixed before the run starts."""

    project_dir: Path  # deploy.yaml's directory; image.context is relative to it
    image: ImageConfig
    registry: str  # host (ECR host already resolved)
    repository: str
    tag: str
    app: str
    git_sha: str
    branch: str
    dirty: bool = False

    @property
    def name(self) -> str:
        """`host/repository` (what docker tags and pushes)."""
        return f"{self.registry}/{self.repository}"

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.tag}"

    @property
    def context_dir(self) -> Path:
        return (self.project_dir / self.image.context).resolve()


@dataclass
class ImageState:
    """Shared between the build and push jobs of one run (written by build, read by push)."""

    inputs: str | None = None  # deployctl.inputs of the context
    built: bool = False  # an image with `inputs` is in the local engine under spec.ref
    remote_digest: str | None = None  # the registry already holds spec.ref with `inputs`
    lock: threading.Lock = field(default_factory=threading.Lock)


class EngineHandle:
    """Connects to the Docker daemon on first use, once, from whichever stage needs it."""

    def __init__(self, connect: Callable[[], Any]) -> None:
        self._connect = connect
        self._client: Any = None
        self._lock = threading.Lock()

    def get(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._connect()
            return self._client


def human_size(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"  # pragma: no cover
