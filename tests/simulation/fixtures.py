"""pytest fixtures for tests that talk to a real moto server (loaded by tests/conftest.py).

- ``moto_server`` (session): ThreadedMotoServer on 127.0.0.1 and a free port, in this process.
- ``aws`` (function): the same handle after resetting all moto state.
- ``ecs_sim`` (function): a RolloutSimulation installed into that server for one test.
"""

from __future__ import annotations

import logging
import os
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from . import moto_patches
from .ecs_rollout import RolloutSimulation

REGION = "us-east-1"


@dataclass
class MotoServerHandle:
    endpoint: str
    env: dict[str, str] = field(default_factory=dict)
    region: str = REGION

    def client(self, name: str, **kwargs: Any) -> Any:
        """A boto3 client for the moto server (kwargs go to boto3.client, e.g. config=...)."""
        import boto3

        kwargs.setdefault("region_name", self.region)
        return boto3.client(
            name,
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            **kwargs,
        )

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServerHandle]:
    from moto import backends
    from moto.server import ThreadedMotoServer

    # moto creates ~600 public AMIs, each with a volume and a snapshot, whenever a test's first
    # EC2 call builds the region's EC2 backend (after every reset): about a fifth of the suite's
    # moto time, for images no test uses. ECS on Fargate never reads an AMI.
    os.environ["MOTO_EC2_LOAD_DEFAULT_AMIS"] = "false"
    # The server lists moto's package directory on every request to route it (moto 5.2); the
    # list never changes while it runs.
    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules
    moto_patches.add_registered_at()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    try:
        yield MotoServerHandle(endpoint=endpoint, env=env)
    finally:
        server.stop()


@pytest.fixture
def aws(moto_server: MotoServerHandle) -> MotoServerHandle:
    moto_server.reset()
    return moto_server


@pytest.fixture
def ecs_sim(aws: MotoServerHandle) -> Iterator[RolloutSimulation]:
    sim = RolloutSimulation()
    sim.install()
    try:
        yield sim
    finally:
        sim.uninstall()


@pytest.fixture
def one_off_tasks(ecs_sim: RolloutSimulation) -> Iterator[Any]:
    """The one-off task SIMULATION (RunTask; tests/simulation/one_off_tasks.py), installed on top
    of the rollout simulation."""
    from .one_off_tasks import OneOffTasks

    tasks = OneOffTasks()
    tasks.install()
    try:
        yield tasks
    finally:
        tasks.uninstall()
