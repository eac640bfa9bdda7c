"""Benchmark: deployctl's unchanged-commit skip path vs plain `docker build` + `docker push`.

For each model-weights size, in one run on one machine:
1. make a throwaway git repo holding an "AI service": FROM scratch + static busybox, a
   multi-stage Dockerfile with a `runtime` target, and `model.bin` of random (incompressible)
   bytes of that size, COPYed into the image;
2. warm both paths once: `deployctl run --only build,push` (builds and pushes), and
   `docker build` + `docker push` of the same context/target/build args to another repository
   (so neither path sees the other's tag);
3. time N repetitions of each, interleaved: deployctl on the unchanged commit (which must
   report build *and* push `skipped`; the script fails otherwise), and the plain pair twice:
   - warm: the builder cache holds every step and the push finds every layer present (the
     most favourable case for plain docker: same machine, straight after a build);
   - no cache: `docker build --no-cache` + push, what a re-run on a fresh CI runner does;
4. write medians and ratios to benchmarks/results/skip_path.md.

Both paths use the classic builder: docker-py cannot drive BuildKit, and this machine's
docker CLI has no buildx, so `DOCKER_BUILDKIT=0` is what `docker build` does here anyway.

Needs `scripts/services up` (dockerd, registry on 127.0.0.1:5000). Usage:
    python benchmarks/skip_path.py [--reps 5] [--sizes 0,256,1024]   # sizes in MiB
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "benchmarks" / "results" / "skip_path.md"
REGISTRY = os.environ.get("DEPLOYCTL_TEST_REGISTRY", "127.0.0.1:5000")

DOCKERFILE = """\
FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]

FROM base AS build
ARG MODEL_NAME=small-chat
RUN mkdir -p /out && echo "$MODEL_NAME" > /out/model-name

FROM scratch AS runtime
COPY --from=base /bin/ /bin/
COPY --from=build /out/ /app/
COPY model.bin /models/model.bin
COPY serve.sh /app/serve.sh
USER 65534
CMD ["/bin/sh", "/app/serve.sh"]
"""

DEPLOY_YAML = """\
version: 1
app: bench
region: us-east-1
image:
  repository: {repository}
  registry: "{registry}"
  context: .
  target: runtime
  build_args: {{MODEL_NAME: small-chat}}
stages:
  test: {{run: ["true"]}}
services:
  api: {{port: 8000, local_port: 18999}}
environments:
  bench: {{target: docker}}
"""


def sh(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"`{' '.join(args)}` failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def make_app(root: Path, size_mib: int, repository: str) -> None:
    root.mkdir(parents=True)
    shutil.copy2("/bin/busybox", root / "busybox")
    (root / "Dockerfile").write_text(DOCKERFILE)
    (root / "serve.sh").write_text("exec httpd -f -p 8000 -h /app\n")
    (root / ".dockerignore").write_text(".git\n")
    (root / ".gitignore").write_text("model.bin\n")  # weights live outside git, as they usually do
    with open(root / "model.bin", "wb") as fh:
        for _ in range(size_mib):
            fh.write(os.urandom(1024 * 1024))
    (root / "deploy.yaml").write_text(DEPLOY_YAML.format(repository=repository, registry=REGISTRY))
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.invalid",
           "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@example.invalid"}
    sh("git", "init", "-q", "-b", "main", cwd=root)
    sh("git", "add", "-A", cwd=root)
    sh("git", "commit", "-q", "-m", "bench app", cwd=root, env=env)


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_size(size_mib: int, reps: int, work: Path, cold: bool) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:6]
    repo_dctl, repo_plain = f"bench/skip-{size_mib}m-{run_id}", f"bench/plain-{size_mib}m-{run_id}"
    app = work / f"app-{size_mib}"
    make_app(app, size_mib, repo_dctl)
    tag = sh("git", "rev-parse", "HEAD", cwd=app).strip()[:12]
    plain_ref = f"{REGISTRY}/{repo_plain}:{tag}"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TERM": "dumb", "DOCKER_BUILDKIT": "0",
           "XDG_CACHE_HOME": str(work / "cache")}
    dctl = [sys.executable, "-m", "deployctl", "run", "-f", str(app / "deploy.yaml"), "--env", "bench",
            "--only", "build,push", "--json"]

    def deployctl_run(fresh_runner: bool = False) -> dict[str, Any]:
        run_env = env
        if fresh_runner:
            # A fresh CI runner has no hash cache either: deployctl hashes the whole context.
            fresh = work / f"fresh-cache-{uuid.uuid4().hex[:8]}"
            run_env = {**env, "XDG_CACHE_HOME": str(fresh)}
        try:
            out = sh(*dctl, cwd=app, env=run_env)
        finally:
            if fresh_runner:
                shutil.rmtree(fresh, ignore_errors=True)
        report = dict(json.loads(out))
        statuses = [s["status"] for s in report["stages"]]  # type: ignore[union-attr]
        if statuses != ["skipped", "skipped"] and statuses != ["succeeded", "succeeded"]:
            raise SystemExit(f"deployctl run failed: {statuses}")
        return report

    def plain(*extra: str) -> None:
        sh("docker", "build", "-q", *extra, "--target", "runtime", "--build-arg", "MODEL_NAME=small-chat",
           "-t", plain_ref, str(app), env=env)
        sh("docker", "push", "-q", plain_ref, env=env)

    first = deployctl_run()
    assert [s["status"] for s in first["stages"]] == ["succeeded", "succeeded"], first  # type: ignore[index]
    plain()
    # deployctl's skip path needs no local image at all: prove it by removing it.
    subprocess.run(["docker", "rmi", "-f", f"{REGISTRY}/{repo_dctl}:{tag}"], capture_output=True)
    d_times, p_times, cold_times, in_process, d_fresh_times = [], [], [], [], []

    def skip_run(fresh_runner: bool) -> float:
        t0 = time.perf_counter()
        report = deployctl_run(fresh_runner)
        elapsed = time.perf_counter() - t0
        statuses = [s["status"] for s in report["stages"]]  # type: ignore[index, union-attr]
        if statuses != ["skipped", "skipped"]:
            raise SystemExit(f"deployctl did not take the skip path: {statuses}")
        if not fresh_runner:
            in_process.append(float(report["duration_s"]))  # type: ignore[arg-type]
        return elapsed

    for _ in range(reps):
        d_times.append(skip_run(fresh_runner=False))
        p_times.append(timed(plain))
        if cold:
            d_fresh_times.append(skip_run(fresh_runner=True))
            cold_times.append(timed(lambda: plain("--no-cache")))
    cleanup(repo_dctl, repo_plain)
    shutil.rmtree(app)
    d_med, p_med = statistics.median(d_times), statistics.median(p_times)
    c_med = statistics.median(cold_times) if cold_times else None
    f_med = statistics.median(d_fresh_times) if d_fresh_times else None
    return {"size_mib": size_mib, "deployctl_s": d_med, "plain_s": p_med, "ratio": p_med / d_med,
            "cold_s": c_med, "deployctl_fresh_s": f_med, "cold_ratio": c_med / f_med if c_med and f_med else None,
            "deployctl_in_process_s": statistics.median(in_process),
            "deployctl_all": d_times, "plain_all": p_times, "cold_all": cold_times,
            "deployctl_fresh_all": d_fresh_times,
            # Repetition i of each path ran back to back: their ratios show the spread a median hides.
            "ratio_pairs": [p / d for d, p in zip(d_times, p_times, strict=True)],
            "cold_pairs": [c / f for f, c in zip(d_fresh_times, cold_times, strict=True)]}


def cleanup(*repositories: str) -> None:
    """Remove this size's local images (untagged ones left by rebuilds included) and its
    manifests in the registry (their blobs wait for the registry's garbage collection)."""
    for repo in repositories:
        ids = subprocess.run(["docker", "images", "-q", f"{REGISTRY}/{repo}"], capture_output=True,
                             text=True).stdout.split()
        if ids:
            subprocess.run(["docker", "rmi", "-f", *sorted(set(ids))], capture_output=True)
        accept = "application/vnd.docker.distribution.manifest.v2+json"
        try:
            with urllib.request.urlopen(f"http://{REGISTRY}/v2/{repo}/tags/list", timeout=10) as resp:
                tags = json.load(resp).get("tags") or []
            for tag in tags:
                head = urllib.request.Request(f"http://{REGISTRY}/v2/{repo}/manifests/{tag}", method="HEAD",
                                              headers={"Accept": accept})
                with urllib.request.urlopen(head, timeout=10) as resp:
                    digest = resp.headers["Docker-Content-Digest"]
                delete = urllib.request.Request(f"http://{REGISTRY}/v2/{repo}/manifests/{digest}", method="DELETE")
                urllib.request.urlopen(delete, timeout=10).close()
        except (OSError, ValueError) as exc:
            print(f"cleanup of {repo} incomplete: {exc}", file=sys.stderr)


def machine() -> dict[str, str]:
    cpu = ""
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cpu": f"{os.cpu_count()} × {cpu}" if cpu else str(os.cpu_count()),
        "memory": mem,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "docker": sh("docker", "version", "--format", "server {{.Server.Version}}, client {{.Client.Version}}").strip(),
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def startup_floor(reps: int) -> dict[str, float]:
    """What any deployctl run pays before its own work: the interpreter, and the imports of the
    libraries every run command needs (typer parses through pydantic, the config is pydantic)."""
    probes = {
        "python": [sys.executable, "-c", "pass"],
        "imports": [sys.executable, "-c", "import typer, yaml, urllib.request; from pydantic import BaseModel"],
    }
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    out = {}
    for name, argv in probes.items():
        times = [timed(lambda argv=argv: sh(*argv, env=env)) for _ in range(max(reps, 5))]  # type: ignore[misc]
        out[name] = statistics.median(times)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--sizes", default="0,64,256,1024", help="model.bin sizes in MiB, comma-separated")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--no-cold", action="store_true", help="skip the `docker build --no-cache` series")
    args = parser.parse_args()
    info = machine()
    rows = []
    with tempfile.TemporaryDirectory(prefix="deployctl-bench-") as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            print(f"size {size} MiB ...", file=sys.stderr, flush=True)
            row = bench_size(size, args.reps, Path(tmp), cold=not args.no_cold)
            print(f"  deployctl {row['deployctl_s']:.2f}s  plain {row['plain_s']:.2f}s  "
                  f"ratio {row['ratio']:.1f}x  no-cache {row['cold_s']}", file=sys.stderr, flush=True)
            rows.append(row)
    floor = startup_floor(args.reps)
    info["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    write(args.output, info, rows, args.reps, floor)
    print(f"wrote {args.output}", file=sys.stderr)


def verdict(ratio: float | None, pairs: list[float]) -> str:
    """By the ratio of the medians; how many repetitions met it on their own shows the spread."""
    if ratio is None or not pairs:
        return "-"
    met = sum(1 for x in pairs if x >= 5)
    word = "met" if ratio >= 5 else "not met"
    return word if met in (0, len(pairs)) else f"{word} ({met} of {len(pairs)} repetitions ≥ 5×)"


def speedup_text(ratio: float, pairs: list[float]) -> str:
    return f"{ratio_text(ratio)} ({min(pairs):.1f}–{max(pairs):.1f})" if pairs else ratio_text(ratio)


def ratio_text(ratio: float) -> str:
    # Two decimals near the target, so a 4.96× row does not read "5.0×, not met".
    return f"{ratio:.2f}×" if 4 <= ratio < 6 else f"{ratio:.1f}×"


def first_size_meeting(rows: list[dict[str, Any]], key: str) -> str:
    met = [r["size_mib"] for r in rows if r[key] is not None and float(r[key]) >= 5]
    if met and len(met) == len(rows):
        return "at every size measured"
    return f"from {min(met)} MiB of model weights" if met else "at none of the sizes measured"


def write(path: Path, info: dict[str, str], rows: list[dict[str, Any]], reps: int,
          floor: dict[str, float]) -> None:
    lines = [
        "# Skip path: `deployctl run --only build,push` on an unchanged commit vs `docker build` + `docker push`",
        "",
        f"Produced by `python benchmarks/skip_path.py --reps {reps}` on {time.strftime('%Y-%m-%d')}.",
        "",
        "## Machine",
        "",
        *[f"- {k}: {v}" for k, v in info.items()],
        "",
        "## Results (median of each path, repetitions interleaved in the same run)",
        "",
        "| model.bin | deployctl skip path (in-process part) | docker build + push, warm cache | speed-up "
        "| 5× target | deployctl skip path, no hash cache | docker build --no-cache + push | speed-up "
        "| 5× target |",
        "| ---: | ---: | ---: | ---: | :--- | ---: | ---: | ---: | :--- |",
    ]
    for r in rows:
        cold = (f"{r['deployctl_fresh_s']:.2f} s | {r['cold_s']:.2f} s | "
                f"{speedup_text(r['cold_ratio'], r['cold_pairs'])} | {verdict(r['cold_ratio'], r['cold_pairs'])}"
                if r["cold_s"] else "- | - | - | -")
        lines.append(f"| {r['size_mib']} MiB | {r['deployctl_s']:.2f} s ({r['deployctl_in_process_s']:.2f} s) | "
                     f"{r['plain_s']:.2f} s | {speedup_text(r['ratio'], r['ratio_pairs'])} | "
                     f"{verdict(r['ratio'], r['ratio_pairs'])} | {cold} |")
    lines += [
        "",
        "Target: the skip path at least 5× faster than plain docker, judged per row above against "
        "both the warm cache (same machine, straight after a build: plain docker's best case) and "
        "`--no-cache` (what a re-run on a fresh CI runner does). In the fresh-runner comparison "
        "deployctl starts without its hash cache too (a new, empty XDG_CACHE_HOME per repetition), "
        "so it hashes every byte of the context, as it would on a new runner. A speed-up is the "
        "ratio of the medians, with the range over repetitions (repetition i of each path ran back "
        "to back) in brackets; a verdict goes by the medians and says how many repetitions met the target on "
        "their own when not all or none did.",
        "",
        f"In this run the target is met against the warm cache {first_size_meeting(rows, 'ratio')}, "
        f"and against a fresh runner {first_size_meeting(rows, 'cold_ratio')}. deployctl's time is "
        "flat in the image size; plain docker's grows with it.",
        "",
        f"Fixed start-up cost on this machine (median): the Python interpreter alone "
        f"{floor['python']:.2f} s; interpreter + importing typer, pydantic's BaseModel, PyYAML and urllib "
        f"{floor['imports']:.2f} s. Every deployctl command pays this before it reads deploy.yaml.",
        "",
        "## Reading the figures",
        "",
        "- deployctl's skip decision itself (the in-process part: list the context, hash it through "
        "the stat cache, two registry GETs and a HEAD) takes a few hundredths of a second; reading "
        "the git facts is one `git status`. The rest of its wall time is the start-up above plus "
        "building the config models, the same whatever the image size.",
        "- Plain `docker build` with a warm cache still sends the whole context to the daemon (the "
        "classic builder; there is no buildx here) and re-checks every COPY; that grows with the "
        "context. For a tiny context, docker's cached build + push is faster than Python can start: "
        "against the warm cache the skip path cannot pay off in time there; it pays off in not "
        "needing a daemon or a local image at all (the integration test runs it with DOCKER_HOST "
        "pointing nowhere), and against a fresh runner.",
        "- The no-cache columns are a re-run on a fresh CI runner: the plain pair rebuilds and pushes "
        "changed layers; deployctl hashes the context, asks the registry and stops.",
        "- The first deployctl repetition of a size can be slower: files changed less than two "
        "seconds before a run are hashed but not cached (\"racy git\" protection).",
        "- The machine is shared with other work; the load averages above are from the start and "
        "the end of the run, and the repetitions of the three paths are interleaved so that load "
        "hits them alike.",
    ]
    lines += ["", "All timings (s):", ""]
    for r in rows:
        d = ", ".join(f"{x:.2f}" for x in r["deployctl_all"])  # type: ignore[attr-defined]
        p = ", ".join(f"{x:.2f}" for x in r["plain_all"])  # type: ignore[attr-defined]
        c = ", ".join(f"{x:.2f}" for x in r["cold_all"])  # type: ignore[attr-defined]
        f = ", ".join(f"{x:.2f}" for x in r["deployctl_fresh_all"])  # type: ignore[attr-defined]
        lines.append(f"- {r['size_mib']} MiB: deployctl [{d}]; warm [{p}]; "
                     f"deployctl without hash cache [{f}]; no-cache [{c}]")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
