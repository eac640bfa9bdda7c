"""Load during a local deploy: does a client hammering the stable port see any failed request?

What it does, on the real Docker engine (start it with `scripts/services up`):
  1. builds the quickstart image twice (VERSION 1.0.0 and 2.0.0) from a temporary copy;
  2. deploys 1.0.0 with the local target, under a unique app name and a free 127.0.0.1 port;
  3. starts a bounded load (REQUESTS requests of GET /version to 127.0.0.1 only, CONCURRENCY
     at a time; it stops by itself once they are all sent) and, while it runs, deploys 2.0.0;
  4. records requests, failures, p50/p95/max latency, which versions answered and the deploy
     duration in benchmarks/results/local_deploy_load.md, then removes everything it made.

    python benchmarks/local_deploy_load.py [--requests 2000] [--concurrency 8] [--out FILE]

Exit status 1 when any request failed. tests/integration/test_local_target.py imports
`run_load` from here so the test and the benchmark measure the same way.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "examples" / "quickstart"
RESULTS = REPO / "benchmarks" / "results" / "local_deploy_load.md"


@dataclass
class LoadResult:
    requests: int = 0
    failures: int = 0
    latencies: list[float] = field(default_factory=list)
    bodies: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    started: float = 0.0
    ended: float = 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def run_load(port: int, total: int, concurrency: int, path: str = "/version",
             started: threading.Event | None = None, timeout: float = 10.0,
             until: threading.Event | None = None) -> LoadResult:
    """Send `total` GETs to 127.0.0.1:`port`, `concurrency` at a time; return when all are answered.

    With `until`, keep sending past `total` until that event is set: a test that must see the
    load span a switch sets it once the switch is done, however long a loaded machine takes.

    A request fails on any connection error, timeout or non-200 status. Each request opens its
    own connection, as the quickstart app closes after every response: that makes every request
    go through the proxy's backend choice, the hard case during a switch.
    """
    result = LoadResult(started=time.monotonic())
    lock = threading.Lock()
    sent = [0]

    def worker() -> None:
        while True:
            with lock:
                if sent[0] >= total and (until is None or until.is_set()):
                    return
                sent[0] += 1
            t0 = time.perf_counter()
            error = ""
            body = ""
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
                try:
                    conn.request("GET", path)
                    response = conn.getresponse()
                    body = response.read().decode("utf-8", "replace")
                    if response.status != 200:
                        error = f"HTTP {response.status}"
                finally:
                    conn.close()
            except (OSError, http.client.HTTPException) as exc:
                error = type(exc).__name__
            elapsed = time.perf_counter() - t0
            with lock:
                result.requests += 1
                result.latencies.append(elapsed)
                if error:
                    result.failures += 1
                    result.errors[error] += 1
                else:
                    result.bodies[_version_of(body)] += 1

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    if started is not None:
        started.set()
    for t in threads:
        t.join()
    result.ended = time.monotonic()
    return result


def _version_of(body: str) -> str:
    try:
        return str(json.loads(body).get("version", "?"))
    except ValueError:
        return body[:40]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def quickstart_copy(dest: Path, *, app: str, port: int, load_seconds: int = 1) -> Path:
    """A copy of examples/quickstart with a unique app name and stable port; returns deploy.yaml."""
    shutil.copytree(QUICKSTART, dest, ignore=shutil.ignore_patterns(".deployctl"))
    if not (dest / "busybox").exists():
        raise SystemExit(f"{QUICKSTART}/busybox is missing: run `scripts/services up` first")
    config = (dest / "deploy.yaml").read_text()
    config = config.replace("app: quickstart", f"app: {app}", 1)
    config = config.replace("repository: quickstart", f"repository: {app}", 1)
    config = config.replace("local_port: 8080", f"local_port: {port}", 1)
    config = config.replace('MODEL_LOAD_SECONDS: "3"', f'MODEL_LOAD_SECONDS: "{load_seconds}"', 1)
    (dest / "deploy.yaml").write_text(config)
    return dest / "deploy.yaml"


def build_version(client: object, context: Path, version: str, tag: str) -> str:
    (context / "VERSION").write_text(version + "\n")
    return build_image(client, context, tag, target="runtime")


def build_image(client: object, context: Path, tag: str, *, target: str | None = None) -> str:
    """`docker build` through the SDK, built again (as deployctl's own builds are) when the
    classic builder lost a cache candidate that another client on the engine removed."""
    import docker.errors

    from deployctl.adapters.engine import LOST_CACHE_RETRIES, is_lost_cache_race

    for attempt in range(LOST_CACHE_RETRIES + 1):
        try:
            client.images.build(path=str(context), target=target, tag=tag, rm=True)  # type: ignore[attr-defined]
            return tag
        except docker.errors.BuildError as exc:
            if attempt == LOST_CACHE_RETRIES or not is_lost_cache_race(str(exc.msg)):
                raise
    raise AssertionError("unreachable")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--baseline", type=int, default=500, help="requests without a deploy first")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if not 1 <= args.requests <= 20000 or not 0 <= args.baseline <= 20000 or not 1 <= args.concurrency <= 64:
        parser.error("keep the load bounded: 1-20000 requests, 1-64 at a time")

    sys.path.insert(0, str(REPO))
    import docker

    from deployctl.adapters.git import GitFacts
    from deployctl.config import load_env, read
    from deployctl.pipeline import Job, run_jobs
    from deployctl.plan import make_plan
    from deployctl.targets import docker as target
    from deployctl.ui import NullReporter

    app = f"bench-{uuid.uuid4().hex[:8]}"
    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="dctl-bench-"))
    os.environ["DEPLOYCTL_STATE_DIR"] = str(work / "state")
    os.environ.setdefault("DEPLOYCTL_DRAIN", "5")
    client = docker.from_env()
    deploy_yaml = quickstart_copy(work / "app", app=app, port=port)
    cfg = load_env(read(deploy_yaml), "dev")
    tags = [build_version(client, work / "app", v, f"{app}:{v}") for v in ("1.0.0", "2.0.0")]

    def deploy(tag: str, sha: str) -> tuple[int, float, str]:
        plan = make_plan(cfg, GitFacts(sha=sha * 40, branch="main"))
        t0 = time.monotonic()
        job = Job("deploy", (), lambda ctx: target.deploy(plan, tag, ctx, None))
        report = run_jobs([job], NullReporter(), handle_signals=False)
        record = report.stage("deploy")
        return report.exit_code, time.monotonic() - t0, record.message

    try:
        code, _, message = deploy(tags[0], "a")
        if code:
            raise SystemExit(f"first deploy failed: {message}")
        # The same client against the same proxy with no deploy going on: what "normal" is here.
        baseline = run_load(port, args.baseline, args.concurrency) if args.baseline else None
        holder: dict[str, LoadResult] = {}
        started = threading.Event()
        load = threading.Thread(target=lambda: holder.setdefault(
            "r", run_load(port, args.requests, args.concurrency, started=started)))
        load.start()
        started.wait()
        time.sleep(0.3)  # the load is flowing before the deploy starts
        code, deploy_s, message = deploy(tags[1], "b")
        load.join()
        result = holder["r"]
    finally:
        target.remove(cfg, client=client)
        for tag in tags:
            client.images.remove(tag)
        shutil.rmtree(work, ignore_errors=True)

    if code:
        print(f"the deploy under load failed: {message}", file=sys.stderr)
    seconds = result.ended - result.started
    lines = [
        "# Load during a local deploy",
        "",
        f"`python benchmarks/local_deploy_load.py --requests {args.requests} "
        f"--concurrency {args.concurrency}` — {time.strftime('%Y-%m-%d')}, "
        f"{platform.system()} {platform.machine()}, Python "
        f"{platform.python_version()}, dockerd {client.version().get('Version', '?')}.",
        "",
        "The quickstart app (busybox, FROM scratch; a new `nc` + shell process per request) runs "
        "release 1.0.0 behind deployctl's stable-port proxy; while a client sends the requests "
        "below to 127.0.0.1, release 2.0.0 is deployed (start, health-gated wait, switch, drain, "
        "stop). Every request is a new connection.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| requests | {result.requests} ({args.concurrency} at a time) |",
        f"| failed requests | **{result.failures}**"
        + (f" ({', '.join(f'{k}: {v}' for k, v in result.errors.items())})" if result.errors else "") + " |",
        f"| answered by version | {', '.join(f'{k}: {v}' for k, v in sorted(result.bodies.items()))} |",
        f"| latency p50 / p95 / max | {result.percentile(50) * 1000:.1f} ms / "
        f"{result.percentile(95) * 1000:.1f} ms / {max(result.latencies) * 1000:.1f} ms |",
        f"| mean latency | {statistics.fmean(result.latencies) * 1000:.1f} ms |",
        f"| throughput | {result.requests / seconds:.0f} requests/s over {seconds:.1f} s |",
        f"| deploy duration (under load) | {deploy_s:.1f} s, exit {code} |",
    ]
    if baseline is not None:
        lines.append(
            f"| baseline, no deploy: {baseline.requests} requests | {baseline.failures} failed; "
            "p50 / p95 / max "
            f"{baseline.percentile(50) * 1000:.1f} / {baseline.percentile(95) * 1000:.1f} / "
            f"{max(baseline.latencies) * 1000:.1f} ms |")
    lines += [
        "",
        "Both versions answering with zero failures is the point: new connections moved to 2.0.0 "
        "at the switch while the ones already open to 1.0.0 finished during the drain. Most of the "
        "deploy is the app's simulated model load (MODEL_LOAD_SECONDS=1) and the 1 s local "
        "health-check interval. Compare the latency rows with the baseline: the slow tail (max) is "
        "there without any deploy too, so it comes from the app and its one-process-per-connection "
        "server, not from the switch.",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 1 if result.failures or code else 0


if __name__ == "__main__":
    sys.exit(main())
