from __future__ import annotations

import queue
import threading
import time
from pathlib import Path

import pytest

import worker.__main__ as worker


def test_worker_completes_jobs_and_reports_alive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker, "HEARTBEAT", tmp_path / "hb")
    assert worker.check() == 1  # never ran
    jobs: queue.Queue[dict] = queue.Queue()
    jobs.put({"id": "j1", "messages": [{"role": "user", "content": "hi"}]})
    stop, results = threading.Event(), []
    t = threading.Thread(target=worker.run, args=(jobs, stop, results, 0.05))
    t.start()
    deadline = time.time() + 5
    while not results:
        assert time.time() < deadline
        time.sleep(0.02)
    stop.set()
    t.join(5)
    assert results == [{"id": "j1", "reply": "echo: hi", "tokens": 2}]
    assert worker.check() == 0
    assert worker.check(now=time.time() + worker.STALE_AFTER + 1) == 1
