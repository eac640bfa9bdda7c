"""Start-up time of `deployctl --help` (target: under 0.3 s on a 2-core machine).

Runs each command N times in a fresh interpreter (after warm-up runs, so the OS file cache is
hot, as it is for someone typing commands), reports the median, and writes
benchmarks/results/startup.md. `python -c pass` is measured the same way as the floor no CLI
can beat on this machine.

    python benchmarks/startup.py            # 21 runs each
    python benchmarks/startup.py --runs 51
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "startup.md"
TARGET_S = 0.3
HEAVY = ("boto3", "botocore", "docker", "git", "pydantic", "yaml", "rich")


def env() -> dict[str, str]:
    out = dict(os.environ)
    out["PYTHONPATH"] = str(ROOT) + os.pathsep + out.get("PYTHONPATH", "")
    out.pop("PYTHONPROFILEIMPORTTIME", None)
    return out


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_once(argv: list[str]) -> tuple[float, float]:
    """Wall-clock and CPU (user+sys) seconds of one run. Start-up is single-threaded, so CPU time
    is close to what the wall clock shows on an idle machine, and much less disturbed by load."""
    cpu0, start = _children_cpu(), time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed, cpu = time.perf_counter() - start, _children_cpu() - cpu0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr.decode()}")
    return elapsed, cpu


def measure(cases: dict[str, list[str]], runs: int, warmup: int = 3) -> dict[str, list[tuple[float, float]]]:
    """Round-robin over the cases, so load from other work on the machine hits all of them alike."""
    for _ in range(warmup):
        for argv in cases.values():
            time_once(argv)
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, argv in cases.items():
            samples[name].append(time_once(argv))
    return samples


def top_imports(argv: list[str], count: int = 8) -> list[tuple[str, float]]:
    """Slowest top-level imports (cumulative ms) from `python -X importtime`."""
    proc = subprocess.run([argv[0], "-X", "importtime", *argv[1:]], cwd=ROOT, env=env(),
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    rows = []
    for line in proc.stderr.splitlines():
        parts = line.split("|")
        if line.startswith("import time:") and len(parts) == 3 and parts[1].strip().isdigit():
            name = parts[2].rstrip()
            if not name.startswith("  "):  # depth 0 in importtime's indentation: a top-level import
                rows.append((name.strip(), int(parts[1]) / 1000))
    return sorted(rows, key=lambda r: -r[1])[:count]


def heavy_loaded(argv: list[str]) -> list[str]:
    proc = subprocess.run([argv[0], "-X", "importtime", *argv[1:]], cwd=ROOT, env=env(),
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    names = {line.split("|")[-1].strip().split(".")[0] for line in proc.stderr.splitlines()
             if line.startswith("import time:")}
    return sorted(names & set(HEAVY))


def stats(samples: list[tuple[float, float]]) -> dict[str, float]:
    ordered = sorted(wall for wall, _ in samples)
    return {
        "median": statistics.median(ordered),
        "min": ordered[0],
        "p90": ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))],
        "cpu": statistics.median(cpu for _, cpu in samples),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    py = sys.executable
    cases = {
        "python -c pass (floor)": [py, "-c", "pass"],
        "deployctl --help": [py, "-m", "deployctl", "--help"],
        "deployctl --version": [py, "-m", "deployctl", "--version"],
        "deployctl plan --help": [py, "-m", "deployctl", "plan", "--help"],
    }
    load_before = os.getloadavg()
    samples = measure(cases, args.runs)
    results = {name: stats(values) for name, values in samples.items()}
    # Paired per round: robust to the machine getting busier or quieter during the run.
    overhead = statistics.median(h[0] - f[0] for h, f in zip(samples["deployctl --help"],
                                                             samples["python -c pass (floor)"], strict=True))
    load_after = os.getloadavg()
    help_argv = cases["deployctl --help"]
    heavy = heavy_loaded(help_argv)
    slowest = top_imports(help_argv)

    help_ = results["deployctl --help"]
    floor = results["python -c pass (floor)"]
    verdict = "meets" if help_["median"] < TARGET_S else "misses"
    cpu_verdict = "meets" if help_["cpu"] < TARGET_S else "misses"
    lines = [
        "# deployctl start-up time",
        "",
        f"`deployctl --help`: **{help_['median'] * 1000:.0f} ms** wall-clock median of {args.runs} runs "
        f"({verdict} the {TARGET_S * 1000:.0f} ms target); fastest run {help_['min'] * 1000:.0f} ms; "
        f"CPU time (user+sys) median **{help_['cpu'] * 1000:.0f} ms** ({cpu_verdict} the target).",
        "",
        f"A bare `python -c pass` takes {floor['median'] * 1000:.0f} ms wall / {floor['cpu'] * 1000:.0f} ms CPU "
        f"here; deployctl's own share is {(help_['cpu'] - floor['cpu']) * 1000:.0f} ms of CPU "
        f"({overhead * 1000:.0f} ms wall, median of per-round paired differences).",
        "",
        "| command | wall median | wall min | wall p90 | CPU median |",
        "|---|---:|---:|---:|---:|",
        *[f"| `{name}` | {r['median'] * 1000:.0f} ms | {r['min'] * 1000:.0f} ms | {r['p90'] * 1000:.0f} ms "
          f"| {r['cpu'] * 1000:.0f} ms |" for name, r in results.items()],
        "",
        f"Heavy packages loaded by `--help` ({', '.join(HEAVY)}): {', '.join(heavy) or 'none'}.",
        "",
        "Slowest top-level imports of `--help` (cumulative, one `-X importtime` run):",
        "",
        *[f"- `{name}`: {ms:.1f} ms" for name, ms in slowest],
        "",
        "## Machine",
        "",
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- nproc: {os.cpu_count()}",
        f"- python: {platform.python_version()} ({platform.python_implementation()})",
        f"- platform: {platform.platform()}",
        f"- load average (1 min) before/after: {load_before[0]:.2f} / {load_after[0]:.2f}"
        " — other work on the machine slows every row alike",
        "",
        f"Reproduce: `python benchmarks/startup.py --runs {args.runs}` (runs via `python -m deployctl`; "
        "the `deployctl` console script adds its own small entry-point cost).",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
