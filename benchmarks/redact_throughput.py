"""Throughput of output redaction: every line a stage prints goes through `Redactor.stream()`.

Feeds deterministic corpora (short log lines, pytest output, docker build output, long lines of
1k–100k characters, lines with secrets) through one `LineRedactor` per repetition and reports
the median over repetitions of lines/s and µs/line, plus a digest of the redacted output so two
runs (e.g. before and after a change to deployctl/redact.py) can be checked to mask exactly the
same text. Results go to benchmarks/results/redact_throughput.md: each run is stored as a
section named by --label (re-running a label replaces only that section), and when a `before`
and an `after` section both exist a comparison table is written at the top.

    python benchmarks/redact_throughput.py                  # label "current", 5 reps
    python benchmarks/redact_throughput.py --label before --reps 3
    python benchmarks/redact_throughput.py --label after
    python benchmarks/redact_throughput.py --only long      # corpora whose name contains "long"
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deployctl.redact import Redactor  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "redact_throughput.md"
# A long-line corpus is repeated until a repetition holds about this many characters, so the
# short rows and the long rows each take a measurable time (a 100k line is one line per rep).
CHARS_PER_REP = 200_000

WORDS = ("the", "quick", "build", "step", "layer", "cache", "download", "install", "wheel",
         "package", "resolve", "collecting", "using", "requirements", "satisfied", "running",
         "setup", "metadata", "deploy", "service", "health", "target", "revision", "rollout",
         "image", "digest", "manifest")


def short_log(rng: random.Random, count: int) -> list[str]:
    levels = ("INFO", "DEBUG", "WARNING")
    out = []
    for i in range(count):
        svc = rng.choice(("api", "worker", "tokenizer", "batch"))
        out.append(rng.choice((
            f"2026-11-27 07:{i % 60:02d}:{i % 59:02d},{i % 1000:03d} {rng.choice(levels)} deploy: service {svc} "
            f"desired={rng.randint(1, 8)} running={rng.randint(0, 8)} pending=0",
            f"[{svc}] GET /health 200 {rng.random() * 30:.2f}ms",
            f"waiting for rollout of {svc}: 1/2 tasks healthy (target group tg-{svc}-{i % 7})",
            f"INFO:     127.0.0.1:{40000 + i} - \"POST /v1/generate HTTP/1.1\" 200 OK",
            f"loading model weights shard {i % 8 + 1}/8 from /models/llama-3-8b ({rng.randint(100, 999)} MB)",
        )))
    return out


def pytest_output(rng: random.Random, count: int) -> list[str]:
    out = []
    for i in range(count):
        mod = rng.choice(("test_config", "test_plan", "test_rollout", "test_api"))
        out.append(rng.choice((
            f"tests/unit/{mod}.py::test_case_{i} PASSED                                  [{i % 100:3d}%]",
            f"tests/unit/{mod}.py::test_case_{i}[param-{i % 9}] FAILED",
            f"    def test_case_{i}(tmp_path: Path) -> None:",
            ">       assert result.exit_code == 0, result.output",
            "E       AssertionError: assert 1 == 0",
            "E        +  where 1 = <Result SystemExit(1)>.exit_code",
            f"tests/unit/{mod}.py:{i % 400}: AssertionError",
            f"FAILED tests/unit/{mod}.py::test_case_{i} - KeyError: 'region'",
            "=================== 412 passed, 3 skipped, 1 warning in 12.34s ===================",
        )))
    return out


def docker_build(rng: random.Random, count: int) -> list[str]:
    out = []
    for i in range(count):
        digest = "".join(rng.choice("0123456789abcdef") for _ in range(64))
        out.append(rng.choice((
            f"Step {i % 12 + 1}/12 : RUN pip install --no-cache-dir -r requirements.txt",
            f" ---> Running in {digest[:12]}",
            f" ---> {digest[:12]}",
            f"Removing intermediate container {digest[:12]}",
            f"Collecting torch==2.3.1 (from -r requirements.txt (line {i % 30}))",
            "  Downloading torch-2.3.1-cp311-cp311-manylinux1_x86_64.whl (779.1 MB)",
            f"{i % 5 + 1}: Pushed {digest[:12]}  {rng.randint(1, 900)}MB/{rng.randint(900, 999)}MB",
            f"latest: digest: sha256:{digest} size: 2{i % 1000:03d}",
            f"Successfully built {digest[:12]}",
        )))
    return out


def minified_json(rng: random.Random, size: int) -> str:
    items = []
    length = 2
    while length < size:
        i = len(items)
        item = json.dumps({"id": i, "name": f"item-{i}", "sha": f"{rng.getrandbits(160):040x}",
                           "tags": ["a", "b"], "ok": True, "score": round(rng.random(), 4)},
                          separators=(",", ":"))
        items.append(item)
        length += len(item) + 1
    return ("[" + ",".join(items) + "]")[:size]


def base64_blob(rng: random.Random, size: int) -> str:
    return base64.b64encode(rng.randbytes(size))[:size].decode("ascii")


def word_joined(rng: random.Random, size: int) -> str:
    """One long 'word' with no secrets: words joined by - and . (a generated slug, a long
    dotted name), no spaces, as long docker step lines and minified identifiers look."""
    parts: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(WORDS)
        parts.append(word + rng.choice("-.-"))
        length += len(word) + 1
    return "".join(parts)[:size]


def with_secrets(rng: random.Random, count: int) -> list[str]:
    out = []
    for i in range(count):
        out.append(rng.choice((
            f"export DB_PASSWORD=s3cr3t-{i:05d}",
            f"AWS_ACCESS_KEY_ID=AKIA{rng.getrandbits(64):016X}"[:40],
            f"curl -H 'Authorization: Bearer eyJhbGciOi{i:06d}.payload.sig' https://api.internal/x",
            f"connecting to postgres://app:pw{i:05d}@db.internal:5432/app",
            f'{{"api_key": "sk-{rng.getrandbits(128):032x}", "model": "llama-3", "max_tokens": 512}}',
            f"docker login --password hunter{i:05d} registry.internal:5000",
            f"signing secret is {rng.getrandbits(160):040x}",
            f"token=hf_{rng.getrandbits(192):048x}&page={i % 9}",
        )))
    return out


def ansi_log(rng: random.Random, count: int) -> list[str]:
    """Coloured output (pytest --color=yes, docker buildx, rich progress): every few words wrapped
    in SGR escapes, an OSC 8 hyperlink now and then, and a secret inside colour codes on some lines."""
    colours = ("\033[31m", "\033[1;32m", "\033[33;1m", "\033[38;5;208m", "\033[2m")
    out = []
    for i in range(count):
        words = [rng.choice(WORDS) for _ in range(rng.randint(4, 12))]
        line = " ".join(f"{rng.choice(colours)}{w}\033[0m" if j % 2 else w for j, w in enumerate(words))
        kind = i % 10
        if kind == 0:
            line += f" \033[31mghp_{rng.getrandbits(180):036x}\033[0m"[:60]
        elif kind == 1:
            line = f"\033]8;;https://ci.example/run/{i}\033\\run {i}\033]8;;\033\\ {line}"
        elif kind == 2:
            line = f"\033[2K\r\033[1A{line} \033[36m{rng.randint(1, 99)}%\033[0m"
        out.append(line)
    return out


def ansi_long(rng: random.Random, size: int) -> str:
    """One long line that is mostly escape sequences (a progress bar redrawn without newlines)."""
    parts: list[str] = []
    length = 0
    while length < size:
        part = f"\033[38;5;{rng.randint(16, 231)}m{rng.choice('=#-.')}\033[0m"
        parts.append(part)
        length += len(part)
    return "".join(parts)[:size]


def provider_tokens(rng: random.Random, count: int) -> list[str]:
    """Lines holding provider-shaped tokens (as a misbehaving test or build step would print)."""
    def alnum(n: int) -> str:
        return "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") for _ in range(n))

    out = []
    for i in range(count):
        out.append(rng.choice((
            f"git push https://x-access-token:ghs_{alnum(36)}@github.com/o/r.git",
            f"using gitlab token glpat-{alnum(20)} for project {i}",
            f"stripe charge with sk_live_{alnum(24)} ok",
            f"//registry.npmjs.org/:_authToken=npm_{alnum(36)}",
            f"posting to https://hooks.slack.com/services/T{alnum(8)}/B{alnum(8)}/{alnum(24)}",
            f"jwt eyJ{alnum(20)}.eyJ{alnum(40)}.{alnum(43)}",
            f"HTTPS://deploy:{alnum(12)}@git.example.com/app.git",
            f"redis://:{alnum(16)}@cache:6379/0",
            f"step {i}: sha256:{rng.getrandbits(256):064x} uuid {rng.getrandbits(128):032x}",
        )))
    return out


def secrets_in_long_json(rng: random.Random, size: int) -> str:
    line = minified_json(rng, size)
    third = size // 3
    return (line[:third] + ',"password":"p4ss-in-json",' + line[third:2 * third]
            + ' Authorization: Bearer abcdefghijklmnopqrstuvwxyz ' + line[2 * third:])[:size + 80]


def corpora() -> dict[str, Callable[[], list[str]]]:
    def lines(make: Callable[[random.Random, int], list[str]], count: int) -> Callable[[], list[str]]:
        return lambda: make(random.Random(7), count)

    def long(make: Callable[[random.Random, int], str], size: int) -> Callable[[], list[str]]:
        def build() -> list[str]:
            rng = random.Random(size)
            reps = max(1, CHARS_PER_REP // size)
            return [make(rng, size) for _ in range(reps)]
        return build

    table: dict[str, Callable[[], list[str]]] = {
        "short log lines": lines(short_log, 2000),
        "pytest output": lines(pytest_output, 2000),
        "docker build output": lines(docker_build, 2000),
        "short lines with secrets": lines(with_secrets, 2000),
        "ANSI-coloured log lines": lines(ansi_log, 2000),
        "provider tokens and look-alikes": lines(provider_tokens, 2000),
    }
    for size in (1_000, 5_000, 20_000, 100_000):
        label = f"{size // 1000}k"
        table[f"long {label} minified JSON"] = long(minified_json, size)
        table[f"long {label} base64 blob"] = long(base64_blob, size)
        table[f"long {label} word-joined"] = long(word_joined, size)
    table["long 20k JSON with secrets"] = long(secrets_in_long_json, 20_000)
    for size in (5_000, 100_000):
        table[f"long {size // 1000}k ANSI escapes"] = long(ansi_long, size)
    return table


def run_once(redactor: Redactor, lines: list[str]) -> tuple[float, list[str]]:
    stream = redactor.stream()
    start = time.perf_counter()
    out = [stream(line) for line in lines]
    return time.perf_counter() - start, out


def measure(name: str, lines: list[str], reps: int) -> dict[str, object]:
    # Registered values as `deployctl run` has them (service secrets, a registry login).
    redactor = Redactor(["mdl-7Qx93kZpW2", "q-81hf62ndk"])
    redactor.add_credentials("ci", "regpass-55")
    run_once(redactor, lines[:50])  # warm-up: compiled patterns, caches
    times = []
    digest = ""
    for _ in range(reps):
        elapsed, out = run_once(redactor, lines)
        times.append(elapsed)
        digest = hashlib.sha256("\n".join(out).encode()).hexdigest()[:12]
    med = statistics.median(times)
    chars = sum(len(line) for line in lines)
    return {"name": name, "lines": len(lines), "avg_chars": round(chars / len(lines)),
            "us_per_line": med / len(lines) * 1e6, "lines_per_s": len(lines) / med,
            "mb_per_s": chars / med / 1e6, "digest": digest, "reps": reps}


def machine() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "deployctl/redact.py"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
        commit += " + uncommitted deployctl/redact.py" if dirty else ""
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "commit": commit,
            "cpu": f"{os.cpu_count()} × {cpu}", "python": f"{platform.python_version()} "
            f"({platform.python_implementation()})", "platform": platform.platform(),
            "load": " ".join(f"{x:.2f}" for x in os.getloadavg())}


def fmt_us(us: float) -> str:
    return f"{us:,.1f} µs" if us < 10_000 else f"{us / 1000:,.1f} ms"


def fmt_rate(per_s: float) -> str:
    return f"{per_s:,.0f}" if per_s >= 10 else f"{per_s:.2g}"


def section(label: str, info: dict[str, str], rows: list[dict[str, object]]) -> str:
    out = [f"<!-- run:{label} -->", f"## Run `{label}`", ""]
    out += [f"- {k}: {v}" for k, v in info.items()]
    out += ["", "| corpus | lines/rep | avg chars | µs/line (median) | lines/s | MB/s | reps | output digest |",
            "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        out.append(f"| {r['name']} | {r['lines']} | {r['avg_chars']:,} | {fmt_us(float(r['us_per_line']))} | "
                   f"{fmt_rate(float(r['lines_per_s']))} | {float(r['mb_per_s']):.2f} | {r['reps']} | "
                   f"`{r['digest']}` |")
    data = json.dumps({"info": info, "rows": rows})
    out += ["", f"<!-- data:{data} -->", f"<!-- /run:{label} -->"]
    return "\n".join(out)


NOTES = re.compile(r"<!-- notes -->.*?<!-- /notes -->", re.DOTALL)  # hand-written, kept on re-runs
SECTION = re.compile(r"<!-- run:(?P<label>[\w.-]+) -->.*?<!-- /run:(?P=label) -->", re.DOTALL)
DATA = re.compile(r"<!-- data:(\{.*?\}) -->")


def comparisons(sections: dict[str, str]) -> list[str]:
    """A before/after table for each pair of labels `before`/`after` and `X-before`/`X-after`."""
    out: list[str] = []
    for label in sorted(sections):
        if label.endswith("before"):
            prefix = label[:-len("before")]
            if prefix + "after" in sections:
                out += comparison(sections, label, prefix + "after")
    return out


def comparison(sections: dict[str, str], before: str = "before", after_label: str = "after") -> list[str]:
    if before not in sections or after_label not in sections:
        return []
    parsed = {}
    for label in (before, after_label):
        found = DATA.search(sections[label])
        if found is None:
            return []
        parsed[label] = json.loads(found.group(1))
    after = {r["name"]: r for r in parsed[after_label]["rows"]}
    title = "Before / after" if before == "before" else f"`{before}` / `{after_label}`"
    out = [f"## {title}", "",
           f"Before: commit {parsed[before]['info']['commit']}; after: commit "
           f"{parsed[after_label]['info']['commit']}. Median µs per line through `Redactor.stream()`; "
           "same output digest = exactly the same redacted text.", "",
           "| corpus | before µs/line | after µs/line | speed-up | same output |", "|---|---:|---:|---:|:---:|"]
    for r in parsed[before]["rows"]:
        a = after.get(r["name"])
        if a is None:
            continue
        speed = r["us_per_line"] / a["us_per_line"]
        out.append(f"| {r['name']} | {fmt_us(r['us_per_line'])} | {fmt_us(a['us_per_line'])} | "
                   f"{speed:,.1f}× | {'yes' if r['digest'] == a['digest'] else '**no**'} |")
    return out + [""]


def write(path: Path, label: str, text: str) -> None:
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    sections = {}
    for m in SECTION.finditer(old):
        # Older runs are re-rendered from their data, so every section has the current layout.
        found = DATA.search(m.group(0))
        if found is not None:
            data = json.loads(found.group(1))
            sections[m.group("label")] = section(m.group("label"), data["info"], data["rows"])
    sections[label] = text
    fixed = ("before", "after")
    order = [k for k in fixed if k in sections] + sorted(k for k in sections if k not in fixed)
    head = ["# Redaction throughput (`Redactor.stream()`)", "",
            "Produced by `python benchmarks/redact_throughput.py --label LABEL`. Each corpus is "
            "redacted line by line through one stream per repetition; figures are the median of the "
            "repetitions. Long-line rows repeat the line up to ~200k characters per repetition. "
            "The stream has three registered values (as `deployctl run` has service secrets and a "
            "registry login).", ""]
    notes = NOTES.search(old)
    body = head + comparisons(sections) + ([notes.group(0), ""] if notes else []) + [sections[k] + "\n" for k in order]
    path.write_text("\n".join(body), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--label", default="current")
    parser.add_argument("--only", default="", help="run only corpora whose name contains this")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    info = machine()
    rows = []
    for name, build in corpora().items():
        if args.only not in name:
            continue
        row = measure(name, build(), args.reps)
        rows.append(row)
        print(f"{name:28s} {row['lines']:5d} lines  {fmt_us(float(row['us_per_line'])):>12s}/line  "
              f"{float(row['lines_per_s']):>10,.0f} lines/s  digest {row['digest']}", flush=True)
    info["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    for k, v in info.items():
        print(f"{k}: {v}")
    if not args.no_write:
        write(args.out, args.label, section(args.label, info, rows))
        print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    main()
