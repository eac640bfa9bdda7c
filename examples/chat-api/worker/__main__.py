"""python -m worker [--check]

Runs the job loop; every loop iteration touches a heartbeat file. `--check` (the ECS container
health check) exits 0 when the heartbeat is recent, 1 otherwise.

Queue backends: `memory` (QUEUE_BACKEND=memory, for tests and dev) is built in; a real
deployment plugs in its queue client in `next_job`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import queue
import signal
import sys
import threading
import time
from pathlib import Path

from app.model import from_env

HEARTBEAT = Path(os.environ.get("WORKER_HEARTBEAT", "/tmp/worker-heartbeat"))
STALE_AFTER = float(os.environ.get("WORKER_STALE_SECONDS", "60"))
log = logging.getLogger("worker")


def check(now: float | None = None) -> int:
    try:
        age = (now or time.time()) - HEARTBEAT.stat().st_mtime
    except FileNotFoundError:
        return 1
    return 0 if age <= STALE_AFTER else 1


def run(jobs: queue.Queue[dict], stop: threading.Event, results: list[dict] | None = None,
        idle_wait: float = 1.0) -> None:
    model = from_env()
    model.load()
    while not stop.is_set():
        HEARTBEAT.touch()
        try:
            job = jobs.get(timeout=idle_wait)
        except queue.Empty:
            continue
        reply = model.complete(job["messages"])
        out = {"id": job.get("id"), "reply": reply.text, "tokens": reply.tokens}
        log.info("job %s done", out["id"])
        if results is not None:
            results.append(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker")
    parser.add_argument("--check", action="store_true", help="exit 0 if the worker loop is alive")
    args = parser.parse_args(argv)
    if args.check:
        return check()
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "info").upper(), stream=sys.stdout)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    jobs: queue.Queue[dict] = queue.Queue()
    for line in os.environ.get("WORKER_SEED_JOBS", "").splitlines():
        if line.strip():
            jobs.put(json.loads(line))
    log.info("worker on queue %s", os.environ.get("QUEUE_NAME", "chat-jobs"))
    run(jobs, stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
