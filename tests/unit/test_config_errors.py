"""The malformed-config corpus: every file in tests/configs/bad/ run through the real CLI.

Each corpus file states what `deployctl validate` must report in its header comments:

    # expect: LINE:COL KEY.PATH | text the message contains
    # expect: LINE:COL - | text            (no key path: YAML syntax, tabs, whole-file problems)
    # env-unset: NAME                      (make sure NAME is not set for the run)

The test asserts exit code 2, exactly the expected problems (no more, no fewer) at exactly those
positions, the key path in each message, and no traceback anywhere in the output.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "configs" / "bad"
FILES = sorted(CORPUS.glob("*.yaml"))
PROBLEM_LINE = re.compile(r"^  (?P<file>[^\s:]+):(?P<line>\d+):(?P<col>\d+): (?P<rest>.*)$")


@dataclass(frozen=True)
class Expected:
    line: int
    col: int
    path: str | None
    text: str


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str


def expectations(path: Path) -> tuple[list[Expected], list[str]]:
    expected, unset = [], []
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():  # not-utf8.yaml
        if m := re.match(r"^# expect: (\d+):(\d+) (\S+) \| (.+)$", raw):
            key_path = None if m.group(3) == "-" else m.group(3)
            expected.append(Expected(int(m.group(1)), int(m.group(2)), key_path, m.group(4)))
        elif m := re.match(r"^# env-unset: (\S+)$", raw):
            unset.append(m.group(1))
    return expected, unset


def clean_env(unset: list[str] = (), **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in unset and k != "GITHUB_ACTIONS"}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def run_cli(*args: str, env: dict[str, str] | None = None) -> Result:
    """The real thing: a new interpreter running `python -m deployctl`."""
    proc = subprocess.run([sys.executable, "-m", "deployctl", *args], cwd=ROOT, env=env or clean_env(),
                          capture_output=True, text=True, timeout=60)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> Result:
    """The CLI's own entry point in this process (`deployctl.cli.main`): same code path, no start-up cost.

    An exception escaping main() fails the test here just as a traceback would in a shell.
    """
    from deployctl.cli import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    out = capsys.readouterr()
    return Result(int(exit_info.value.code or 0), out.out, out.err)


def validate_in_process(path: Path, capsys: pytest.CaptureFixture[str],
                        monkeypatch: pytest.MonkeyPatch) -> Result:
    _, unset = expectations(path)
    for name in unset:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    monkeypatch.chdir(ROOT)
    return run_main(["validate", "-f", str(path.relative_to(ROOT))], capsys)


def assert_reported(path: Path, result: Result) -> None:
    expected, _ = expectations(path)
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    assert "internal error" not in output
    assert result.code == 2, output
    assert result.stdout == ""
    rel = str(path.relative_to(ROOT))
    lines = [m for m in map(PROBLEM_LINE.match, result.stderr.splitlines()) if m]
    n = len(expected)
    header = f"error: {n} problem{'s' if n != 1 else ''} in deploy configuration:"
    assert result.stderr.startswith(header), output
    assert len(lines) == n, output
    for want in expected:
        here = [m for m in lines if (int(m["line"]), int(m["col"])) == (want.line, want.col)]
        assert here, f"nothing reported at {want.line}:{want.col}:\n{output}"
        assert all(m["file"] == rel for m in here)
        if want.path is None:
            matching = [m for m in here if want.text in m["rest"]]
        else:
            matching = [m for m in here if m["rest"].startswith(f"{want.path}: ") and want.text in m["rest"]]
        assert matching, f"expected {want} at {want.line}:{want.col}:\n{output}"


def test_corpus_is_big_enough() -> None:
    assert len(FILES) >= 30
    for path in FILES:
        expected, _ = expectations(path)
        assert expected, f"{path.name} states no `# expect:` line"


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_malformed_config_is_reported_precisely(path: Path, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    assert_reported(path, validate_in_process(path, capsys, monkeypatch))


# A sample through a fresh interpreter each: a parse error, an unset variable, an override's
# line, many problems at once. Run side by side to keep the suite quick.
SUBPROCESS_SAMPLE = ["yaml-unclosed-brace.yaml", "unset-variable.yaml", "fargate-override-memory.yaml",
                     "many-problems.yaml"]


def test_sample_in_a_real_process() -> None:
    def one(name: str) -> Result:
        path = CORPUS / name
        _, unset = expectations(path)
        return run_cli("validate", "-f", str(path.relative_to(ROOT)), env=clean_env(unset))

    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        results = list(pool.map(one, SUBPROCESS_SAMPLE))
    for name, result in zip(SUBPROCESS_SAMPLE, results, strict=True):
        assert_reported(CORPUS / name, result)


def test_problems_are_listed_in_file_order(capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    result = validate_in_process(CORPUS / "many-problems.yaml", capsys, monkeypatch)
    positions = [(int(m["line"]), int(m["col"]))
                 for m in map(PROBLEM_LINE.match, result.stderr.splitlines()) if m]
    assert len(positions) == 7
    assert positions == sorted(positions)


def test_github_actions_annotations() -> None:
    path = CORPUS / "many-problems.yaml"
    rel = str(path.relative_to(ROOT))
    result = run_cli("validate", "-f", rel, env=clean_env(GITHUB_ACTIONS="true"))
    assert result.code == 2
    annotations = [line for line in result.stdout.splitlines() if line.startswith("::error ")]
    expected, _ = expectations(path)
    assert len(annotations) == len(expected)
    for want in expected:
        prefix = f"::error file={rel},line={want.line},col={want.col}::{want.path}: "
        message = want.text.split(" (")[0]  # annotations carry the message; the hint stays on stderr
        assert any(a.startswith(prefix) and message in a for a in annotations), (want, annotations)
    # The human-readable list is still there, on stderr.
    assert f"{rel}:{expected[0].line}:{expected[0].col}: " in result.stderr


def test_set_variable_is_used_and_valid() -> None:
    # The same file as the unset-variable case passes once the variable exists.
    path = CORPUS / "unset-variable.yaml"
    result = run_cli("config", "-f", str(path), "--env", "dev", "--json",
                     env=clean_env(MODEL_BUCKET_FOR_TEST="s3://models/small-chat"))
    assert result.code == 0, result.stderr
    assert '"MODEL_BUCKET": "s3://models/small-chat"' in result.stdout
    assert '"LOG_LEVEL": "info"' in result.stdout


def test_missing_file_is_a_usage_error() -> None:
    result = run_cli("validate", "-f", "no/such/deploy.yaml")
    assert result.code == 2
    assert "no/such/deploy.yaml: no such file" in result.stderr
    assert "Traceback" not in result.stderr
