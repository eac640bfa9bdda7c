from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import pytest

from app.model import FakeModel, Loader
from app.server import serve


@pytest.fixture
def server():
    loader = Loader(FakeModel("small-chat")).start()
    srv = serve(loader, host="127.0.0.1", port=0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    loader.ready.wait(5)
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def post(url: str, body: object) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def test_health(server: str) -> None:
    assert get(f"{server}/health/live") == (200, {"status": "alive"})
    assert get(f"{server}/health/ready") == (200, {"status": "ready", "model": "small-chat"})


def test_chat(server: str) -> None:
    status, body = post(f"{server}/v1/chat", {"messages": [{"role": "user", "content": "hello"}]})
    assert status == 200 and body["reply"] == "echo: hello"


def test_bad_request(server: str) -> None:
    assert post(f"{server}/v1/chat", {"messages": []})[0] == 400
    assert get(f"{server}/nope")[0] == 404


def test_not_ready_while_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_LOAD_SECONDS", "0.5")
    loader = Loader(FakeModel("m")).start()
    srv = serve(loader, host="127.0.0.1", port=0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}"
    try:
        assert get(f"{url}/health/ready")[0] == 503
        assert post(f"{url}/v1/chat", {"messages": [{"role": "user", "content": "x"}]})[0] == 503
        deadline = time.time() + 5
        while get(f"{url}/health/ready")[0] != 200:
            assert time.time() < deadline
            time.sleep(0.05)
    finally:
        srv.shutdown()
        srv.server_close()
