"""A cancelled run does not wait for the ECR API: the push stage's login
(ecr:GetAuthorizationToken) and ensure-repository (describe/create) calls are given up on at
once, the way registry calls are, instead of holding the run for boto3's retries and socket
timeouts (5 attempts × 30 s read timeout against an endpoint that accepts and never answers).

The ECR endpoint (`AWS_ENDPOINT_URL_ECR`) is a small proxy in front of the moto server that
forwards every request except the operations a test stalls: those are held unanswered until
the test releases them (then forwarded, so an abandoned call gets moto's real answer) or closes
the proxy. STS and the rest still go straight to moto (`AWS_ENDPOINT_URL`).
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import signal
import socketserver
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

from deployctl.errors import StageFailed
from deployctl.pipeline import Job, run_jobs
from deployctl.ui import BaseReporter
from tests.integration.conftest import FixtureApp
from tests.simulation.fixtures import MotoServerHandle

pytestmark = pytest.mark.docker

ECR_HOST = "123456789012.dkr.ecr.us-east-1.amazonaws.com"  # moto's account and our region
PROMPT_S = 5.0  # generous: unfixed, the pipeline waits 12 s and then abandons the stage


class StallingECR:
    """An ECR endpoint that forwards to moto, except the operations in `stall`."""

    def __init__(self, upstream: str, stall: set[str]) -> None:
        target = urllib.parse.urlsplit(upstream)
        self.seen: list[str] = []  # operation names, in arrival order
        self.arrived: dict[str, threading.Event] = {}
        self._released, self._closed = threading.Event(), threading.Event()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                op = str(self.headers.get("X-Amz-Target", "")).rpartition(".")[2]
                proxy.seen.append(op)
                proxy.arrived.setdefault(op, threading.Event()).set()
                if op in stall:
                    while not (proxy._released.is_set() or proxy._closed.is_set()):
                        proxy._released.wait(0.1)
                    if proxy._closed.is_set():
                        self.close_connection = True
                        return
                conn = http.client.HTTPConnection(str(target.hostname), target.port, timeout=30)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                    conn.request("POST", self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                finally:
                    conn.close()
                with contextlib.suppress(OSError):  # the caller may have gone away meanwhile
                    self.send_response(resp.status)
                    for key, value in resp.getheaders():
                        if key.lower() not in ("content-length", "connection", "transfer-encoding",
                                               "server", "date"):
                            self.send_header(key, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, op: str, timeout: float = 90) -> bool:
        return self.arrived.setdefault(op, threading.Event()).wait(timeout)

    def release(self) -> None:
        """Let the stalled calls through to moto (what a slow endpoint finally does)."""
        self._released.set()

    def close(self) -> None:
        self._closed.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stalling_ecr(aws: MotoServerHandle) -> Iterator[Any]:
    made: list[StallingECR] = []

    def make(*stall: str) -> StallingECR:
        made.append(StallingECR(aws.endpoint, set(stall)))
        return made[-1]

    yield make
    for proxy in made:
        proxy.close()


def _abandoned_calls_end(timeout: float = 20) -> None:
    """Wait for the helper threads of calls the run gave up on (they end on their own)."""
    deadline = time.monotonic() + timeout
    for thread in [t for t in threading.enumerate() if t.name == "registry-call"]:
        thread.join(max(0.0, deadline - time.monotonic()))
        assert not thread.is_alive(), "an abandoned ECR call did not end after its answer came"


# --- `deployctl run`: SIGTERM while the push stage waits for ECR -----------------------------


@pytest.mark.parametrize("stalled", ["DescribeRepositories", "GetAuthorizationToken"],
                         ids=["ensure-repository", "login"])
def test_sigterm_while_an_ecr_call_hangs_stops_the_push_promptly(
        fixture_app: FixtureApp, aws: MotoServerHandle, stalling_ecr: Any, stalled: str) -> None:
    ecr = stalling_ecr(stalled)
    fixture_app.set_registry("ecr")
    fixture_app.commit("push to ECR")
    fixture_app.env.update(aws.env)
    fixture_app.env["AWS_ENDPOINT_URL_ECR"] = ecr.url
    built = fixture_app.run("--only", "build")  # a local build: no ECR call at all
    assert built.code == 0, built.output
    assert ecr.seen == [], built.output

    proc = subprocess.Popen(fixture_app.command("--only", "push"), cwd=fixture_app.path,
                            env=fixture_app.base_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        arrived = ecr.wait_for(stalled)
        assert arrived and proc.poll() is None, f"push never called {stalled}: {ecr.seen}"
        time.sleep(0.5)  # well inside the call (boto3's read timeout is 30 s)
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        output, _ = proc.communicate(timeout=60)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert took < PROMPT_S, f"the run took {took:.1f} s to stop after SIGTERM:\n{output}"
    assert proc.returncode == 130, output
    assert "Traceback" not in output and "abandoned" not in output, output
    assert output.strip().splitlines()[-1] == "interrupted: nothing done; push cancelled", output
    if stalled == "DescribeRepositories":
        assert "CreateRepository" not in ecr.seen
        with pytest.raises(aws.client("ecr").exceptions.RepositoryNotFoundException):
            aws.client("ecr").describe_repositories(repositoryNames=[fixture_app.repository])
    else:  # the repository was ensured before the login hung
        assert ecr.seen.index("CreateRepository") < ecr.seen.index("GetAuthorizationToken")
        assert f"created ECR repository {fixture_app.repository}" in output


# --- the stage calls in a fail-fast pipeline: nothing happens after the cancel ----------------


def _ecr_client(aws: MotoServerHandle, endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """deployctl's own ECR client (its retry and timeout configuration), aimed at `endpoint`."""
    from deployctl.adapters import aws as aws_adapter

    for key, value in aws.env.items():
        monkeypatch.setenv(key, value)
    return aws_adapter.clients(aws.region, endpoint_url=endpoint).ecr


def _fail_fast_run(stage: Any, ecr: StallingECR, op: str) -> Any:
    """`stage` next to a test stage that fails once `op` is in flight: fail fast cancels it."""

    def failing_test(ctx: Any) -> None:
        assert ecr.wait_for(op, 30), ecr.seen
        time.sleep(0.3)
        raise StageFailed("tests failed")

    report = run_jobs([Job("test", (), failing_test), Job("push", (), stage)], BaseReporter(),
                      handle_signals=False)
    push = report.stage("push")
    assert push.status == "cancelled", push
    assert report.stage("test").status == "failed"
    assert "abandoned" not in push.message, push
    assert push.duration_s is not None and push.duration_s < PROMPT_S, push
    return report


def test_a_cancelled_ensure_repository_never_creates_it_afterwards(
        aws: MotoServerHandle, stalling_ecr: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The describe given up on gets its answer later ("not found"): creating the repository
    then, for a run that is over, would be a write nobody asked for any more."""
    from deployctl.stages.access import ensure_ecr_repository

    proxy = stalling_ecr("DescribeRepositories")
    ecr = _ecr_client(aws, proxy.url, monkeypatch)
    _fail_fast_run(lambda ctx: ensure_ecr_repository(ecr, "itest/cancelled", app="fixture", ctx=ctx),
                   proxy, "DescribeRepositories")
    proxy.release()
    _abandoned_calls_end()
    assert proxy.seen == ["DescribeRepositories"]
    with pytest.raises(aws.client("ecr").exceptions.RepositoryNotFoundException):
        aws.client("ecr").describe_repositories(repositoryNames=["itest/cancelled"])


def test_a_cancelled_ecr_login_is_not_cached(aws: MotoServerHandle, stalling_ecr: Any,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The login given up on answers later: its token is not kept as this access's
    credentials, so the next caller asks ECR again (and gets a token that works now)."""
    from deployctl.stages.access import RegistryAccess

    proxy = stalling_ecr("GetAuthorizationToken")
    ecr = _ecr_client(aws, proxy.url, monkeypatch)
    handed: list[tuple[str, str]] = []
    access = RegistryAccess(ECR_HOST, ecr=ecr, on_credentials=lambda u, p: handed.append((u, p)))
    _fail_fast_run(lambda ctx: access.explicit(ctx), proxy, "GetAuthorizationToken")
    proxy.release()
    _abandoned_calls_end()
    creds = access.explicit()  # a new login, answered now that the endpoint is back
    assert creds is not None and creds[0] == "AWS"
    assert proxy.seen == ["GetAuthorizationToken", "GetAuthorizationToken"]
    assert creds in handed  # masked in the run's output, as every credential found
