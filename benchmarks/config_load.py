"""Config loading time and memory: deploy.yaml → validated environments, on ordinary and hostile files.

Every case runs in a fresh interpreter (so peak RSS is the case's own), loads the text with the
same calls `deployctl validate` makes, and reports the median wall time of its runs. The file
is generated before the clock starts. Multi-MB cases call the loader directly: the CLI refuses
files over 1 MiB, but loading must still scale linearly with size. The `-f` cases run the real
CLI on a 60 MB file, /dev/zero and a FIFO, under a memory cap and a timeout.

    python benchmarks/config_load.py                       # this checkout
    python benchmarks/config_load.py --before /tmp/old     # also a tree of older code (git archive)

Writes benchmarks/results/config_load.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "config_load.md"
MEMORY_CAP = 2 << 30  # a case that needs more fails instead of taking the machine down

# Runs inside the child: build the text, then time loading it as validate does.
DRIVER = r"""
import json, os, resource, statistics, sys, time
spec = json.loads(sys.argv[1])
root = spec["root"]
reference = open(os.path.join(root, "deploy.yaml"), encoding="utf-8").read()
# Absolute directories, so the file validates wherever it is loaded from.
reference = reference.replace("context: examples/chat-api", f"context: {root}/examples/chat-api") \
    .replace("workdir: examples/chat-api", f"workdir: {root}/examples/chat-api")
kind, n = spec["kind"], spec["n"]
if kind == "reference":
    text = reference
elif kind == "tab-comments":
    text = reference + "\t# a comment indented with a tab\n" * n
elif kind == "comments":
    line = "# " + "x" * 97 + "\n"
    text = reference + line * (n // len(line))
elif kind == "services":
    head = ("version: 1\napp: big\nregion: us-east-1\nimage: {repository: big}\nservices:\n")
    one = ("  svc-{i}:\n    port: 8000\n    health: {{path: /health}}\n"
           "    env: {{A: a{i}, B: b{i}, C: c{i}, D: d{i}}}\n    secrets: {{K: big/key-{i}}}\n")
    body, size, i = [], len(head), 0
    while size < n:
        chunk = one.format(i=i)
        body.append(chunk)
        size += len(chunk)
        i += 1
    text = head + "".join(body) + "environments:\n  dev: {target: docker}\n"
elif kind == "unreadable":  # n tagged values and n unknown keys: many problems at once
    text = ("version: 1\napp: big\nregion: us-east-1\nimage: {repository: big}\nservices:\n  api:\n"
            "    port: 8000\n    health: {path: /h}\n    env:\n"
            + "".join(f"      K{i}: !Ref x{i}\n" for i in range(n))
            + "".join(f"    x{i}: 1\n" for i in range(n)) + "environments:\n  dev: {target: docker}\n")
elif kind == "unknown-services":  # n services and n overrides of services that do not exist
    text = ("version: 1\napp: big\nregion: us-east-1\nimage: {repository: big}\nservices:\n"
            + "".join(f"  s{i}: {{command: [x], health: {{command: x}}}}\n" for i in range(n))
            + "environments:\n  dev:\n    target: docker\n    services:\n"
            + "".join(f"      u{i}: {{count: 1}}\n" for i in range(n)))
elif kind == "ecs-envs":  # n services in three ECS environments, one a preview: the isolation check
    ecs = ("{target: ecs, cluster: shared, network: {subnets: [subnet-1]}, "
           "roles: {execution: 'arn:aws:iam::123456789012:role/exec'}")
    text = ("version: 1\napp: big\nregion: us-east-1\nimage: {repository: big}\nservices:\n"
            + "".join(f"  svc{i}: {{command: [w]}}\n" for i in range(n))
            + "environments:\n"
            + f"  p: {ecs}, preview: true}}\n  staging: {ecs}}}\n  prod: {ecs}}}\n")
else:
    raise SystemExit(f"unknown case {kind}")
from deployctl.config.source import parse
from deployctl.config.resolve import Loaded, validate_all
from deployctl.errors import ConfigError
name = os.path.join(root, "deploy.yaml")
times = []
for _ in range(spec["runs"]):
    start = time.perf_counter()
    try:
        envs = validate_all(Loaded(parse(text, name), {}))
    except ConfigError as exc:  # the problem cases: reporting them is what is timed
        envs = exc.problems
    times.append(time.perf_counter() - start)
import deployctl
assert deployctl.__file__.startswith(spec["code"]), deployctl.__file__
print(json.dumps({"bytes": len(text.encode()), "lines": text.count("\n"), "seconds": statistics.median(times),
                  "results": len(envs), "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _cap() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def _env(code: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GITHUB_ACTIONS", "PYTHONPATH")}
    env["PYTHONPATH"] = str(code)
    return env


def load_case(code: Path, kind: str, n: int, runs: int, timeout: float) -> dict[str, object]:
    spec = json.dumps({"root": str(ROOT), "code": str(code), "kind": kind, "n": n, "runs": runs})
    try:
        # -P: the working directory must not shadow the tree under test on sys.path.
        proc = subprocess.run([sys.executable, "-P", "-c", DRIVER, spec], env=_env(code), capture_output=True,
                              text=True, timeout=timeout, preexec_fn=_cap)
    except subprocess.TimeoutExpired:
        return {"error": f"> {timeout:g} s (stopped)"}
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return {"error": f"failed: {last[:80]}"}
    return dict(json.loads(proc.stdout))


def cli_case(code: Path, target: str, timeout: float) -> dict[str, object]:
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-P", "-m", "deployctl", "validate", "-f", target], env=_env(code),
                              capture_output=True, text=True, timeout=timeout, preexec_fn=_cap)
    except subprocess.TimeoutExpired:
        return {"error": f"> {timeout:g} s (stopped)"}
    first = (proc.stderr.strip().splitlines() or [""])[0]
    return {"seconds": time.perf_counter() - start, "code": proc.returncode, "says": first[:90]}


LOAD_CASES = [  # (label, kind, size, runs)
    ("reference deploy.yaml", "reference", 0, 20),
    ("+ 1,000 lines `<TAB># comment`", "tab-comments", 1_000, 1),
    ("+ 5,000 lines `<TAB># comment`", "tab-comments", 5_000, 1),
    ("+ 20,000 lines `<TAB># comment`", "tab-comments", 20_000, 1),
    ("services, 0.25 MB", "services", 250_000, 1),
    ("services, 1 MB", "services", 1_000_000, 1),
    ("services, 4 MB", "services", 4_000_000, 1),
    ("comments, 1 MB", "comments", 1_000_000, 1),
    ("comments, 4 MB", "comments", 4_000_000, 1),
    ("comments, 16 MB", "comments", 16_000_000, 1),
    ("1,000 unreadable values + 1,000 unknown keys", "unreadable", 1_000, 1),
    ("4,000 unreadable values + 4,000 unknown keys", "unreadable", 4_000, 1),
    ("1,000 overrides of unknown services", "unknown-services", 1_000, 1),
    ("3,000 overrides of unknown services", "unknown-services", 3_000, 1),
    ("300 services × 3 ECS environments (isolation check)", "ecs-envs", 300, 3),
    ("1,500 services × 3 ECS environments (isolation check)", "ecs-envs", 1_500, 1),
]


def fmt_load(r: dict[str, object]) -> str:
    if "error" in r:
        return str(r["error"])
    seconds = float(r["seconds"])  # type: ignore[arg-type]
    shown = f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"
    return f"{shown}, {float(r['rss_mb']):.0f} MB RSS"  # type: ignore[arg-type]


def fmt_cli(r: dict[str, object]) -> str:
    if "error" in r:
        return str(r["error"])
    return f"exit {r['code']} in {float(r['seconds']):.2f} s: `{r['says']}`"  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="a tree with older deployctl code to compare against")
    parser.add_argument("--timeout", type=float, default=120, help="seconds per case")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    trees = [("after", ROOT)] + ([("before", args.before.resolve())] if args.before else [])
    load_before = os.getloadavg()

    rows: dict[str, dict[str, dict[str, object]]] = {}
    for label, kind, n, runs in LOAD_CASES:
        rows[label] = {name: load_case(code, kind, n, runs, args.timeout) for name, code in trees}
        print(label, {k: fmt_load(v) for k, v in rows[label].items()}, flush=True)

    cli_rows: dict[str, dict[str, dict[str, object]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "big.yaml"
        with big.open("w", encoding="utf-8") as fh:
            fh.write((ROOT / "deploy.yaml").read_text(encoding="utf-8"))
            line = "# " + "x" * 97 + "\n"
            fh.write(line * (60_000_000 // len(line)))
        fifo = Path(tmp) / "fifo.yaml"
        os.mkfifo(fifo)
        for label, target, timeout in (("`-f` a 60 MB file", str(big), args.timeout),
                                       ("`-f /dev/zero`", "/dev/zero", args.timeout),
                                       ("`-f` a FIFO, no writer", str(fifo), 15.0)):
            cli_rows[label] = {name: cli_case(code, target, timeout) for name, code in trees}
            print(label, {k: fmt_cli(v) for k, v in cli_rows[label].items()}, flush=True)

    names = [name for name, _ in trees]
    lines = [
        "# Config loading",
        "",
        "Time for the calls `deployctl validate` makes (parse, interpolate, resolve every environment,",
        "check) on generated files, median of the runs, each case in a fresh interpreter; RSS is the",
        "child's peak (the interpreter and imports alone take about 35 MB). Files over 1 MiB are",
        "refused by the CLI (docs/config-limits.md); the multi-MB rows call the loader directly to",
        "show that loading itself grows linearly with size.",
        "",
        "| file | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for label, by_tree in rows.items():
        size = next((r for r in by_tree.values() if "bytes" in r), None)
        shown = f"{label} ({int(size['bytes']) / 1000:,.0f} KB)" if size else label  # type: ignore[call-overload]
        lines.append(f"| {shown} | " + " | ".join(fmt_load(by_tree[n]) for n in names) + " |")
    lines += [
        "",
        f"`deployctl validate -f …` through the CLI (memory capped at {MEMORY_CAP >> 30} GB):",
        "",
        "| input | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
        *[f"| {label} | " + " | ".join(fmt_cli(by_tree[n]) for n in names) + " |"
          for label, by_tree in cli_rows.items()],
        "",
        "## Machine",
        "",
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- nproc: {os.cpu_count()}",
        f"- python: {platform.python_version()} ({platform.python_implementation()})",
        f"- load average (1 min) before/after: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f}"
        " (other sessions share this machine)",
        "",
        "Reproduce: `python benchmarks/config_load.py [--before TREE]`, where TREE holds older code, e.g.",
        "`mkdir /tmp/old && git archive <commit> deployctl | tar -x -C /tmp/old`.",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
