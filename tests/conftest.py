"""Fixtures for the whole suite. The suite runs in parallel (pytest-xdist, docs/testing.md
"Running in parallel"): each worker is its own process with its own moto server; dockerd, the
registries, ports and files outside tmp_path are shared by every worker."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

pytest_plugins = ["tests.simulation.fixtures"]


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """`unique_name("web")` → "web-1a2b3c4d": a name no other test or xdist worker uses, for anything
    the whole machine shares (docker containers, images, networks, registry repositories, app names
    on the local target). Lowercase letters, digits and dashes: valid in all of those."""
    return lambda prefix: f"{prefix}-{uuid.uuid4().hex[:8]}"
