"""Free 127.0.0.1 ports for tests that publish a stable port (local target, quickstart, corpus).

The suite runs in parallel (pytest-xdist, docs/testing.md). `bind(("127.0.0.1", 0))` and close
hands out a port from the kernel's ephemeral range, which every process on the machine draws
from at once: another worker's moto server, docker-proxy, an outgoing connection can take that
port between the close and the moment the test's deploy binds it. So each worker hands out
ports from its own block BELOW the ephemeral range (Linux default 32768-60999, which the kernel
never picks for port 0), and checks that a port is bindable before handing it out.
"""

from __future__ import annotations

import itertools
import os
import random
import socket

# Blocks of 400 ports from 20000: 30 workers fit below 32000, well under the ephemeral range.
BASE = 20000
BLOCK = 400


def worker_index() -> int:
    """0 for gw0 (and for a run without xdist), 1 for gw1, ..."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    digits = worker.removeprefix("gw")
    return int(digits) if digits.isdigit() else 0


# A random start inside the block: two suites run at the same time (two worktrees) seldom meet,
# and when they do the bind check below skips the taken port.
_next = itertools.count(random.randrange(BLOCK))


def _bindable(port: int) -> bool:
    for host in ("127.0.0.1", "0.0.0.0"):
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                return False
    return True


def free_port() -> int:
    """A port nothing listens on now, from this worker's own block (unique within the run)."""
    start = BASE + (worker_index() % 30) * BLOCK
    for _ in range(BLOCK):
        port = start + next(_next) % BLOCK
        if _bindable(port):
            return port
    raise RuntimeError(f"no free port in {start}-{start + BLOCK - 1}")
