"""The CLI shell: fast --help without heavy imports, --version, help with examples, schema file."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import deployctl

ROOT = Path(__file__).resolve().parents[2]
# The one-door modules: only the commands that talk to Docker/AWS/git may load them, lazily.
HEAVY = ("boto3", "botocore", "docker", "git", "pydantic", "pydantic_core", "yaml", "rich")


def cli(*args: str, python_flags: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "GITHUB_ACTIONS"}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, *python_flags, "-m", "deployctl", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def imported_packages(stderr: str) -> set[str]:
    """Top-level package names from `python -X importtime` output."""
    names = set()
    for line in stderr.splitlines():
        parts = line.split("|")
        if line.startswith("import time:") and len(parts) == 3 and parts[2].strip() != "imported package":
            names.add(parts[2].strip().split(".")[0])
    return names


@pytest.mark.parametrize("args", [("--help",), ("--version",)])
def test_help_and_version_import_nothing_heavy(args: tuple[str, ...]) -> None:
    proc = cli(*args, python_flags=("-X", "importtime"))
    assert proc.returncode == 0, proc.stderr
    loaded = imported_packages(proc.stderr)
    assert "deployctl" in loaded and "typer" in loaded  # the parse really saw the imports
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_command_help_imports_no_outside_system_sdk() -> None:
    # A command's --help goes through typer's parameter adapters, which import pydantic
    # themselves (typer >= 0.2x); the SDKs of outside systems must still stay unloaded.
    proc = cli("plan", "--help", python_flags=("-X", "importtime"))
    assert proc.returncode == 0, proc.stderr
    loaded = imported_packages(proc.stderr)
    assert "deployctl" in loaded
    assert not loaded & {"boto3", "botocore", "docker", "git"}, sorted(loaded)


def test_version() -> None:
    proc = cli("--version")
    assert proc.returncode == 0
    assert proc.stdout == f"deployctl {deployctl.__version__}\n"
    assert re.fullmatch(r"\d+\.\d+\.\d+", deployctl.__version__)


def test_root_help_lists_the_commands() -> None:
    proc = cli("--help")
    assert proc.returncode == 0
    for command in ("validate", "config", "plan", "schema"):
        assert re.search(rf"^\s+{command}\s", proc.stdout, re.MULTILINE), command
    assert "deployctl plan --env staging" in proc.stdout


def command_paths() -> list[list[str]]:
    """Every runnable command, sub-commands of groups included (`monitor apply`)."""
    import typer.main

    from deployctl.cli import app

    def walk(group: object, prefix: list[str]) -> list[list[str]]:
        out = []
        for name, cmd in sorted(getattr(group, "commands", {}).items()):
            out += walk(cmd, [*prefix, name]) if getattr(cmd, "commands", None) else [[*prefix, name]]
        return out

    return walk(typer.main.get_command(app), [])


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from deployctl.cli import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    out = capsys.readouterr()
    return int(exit_info.value.code or 0), out.out, out.err


def test_every_command_help_works_and_shows_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    paths = command_paths()
    assert {("validate",), ("config",), ("plan",), ("schema",)} <= {tuple(p) for p in paths}
    missing = []
    for path in paths:
        code, out, err = run_main([*path, "--help"], capsys)
        assert code == 0, (path, err)
        assert "Usage: " in out and path[-1] in out
        if not re.search(r"^\s*Examples?:\s+deployctl ", out, re.MULTILINE):
            missing.append(" ".join(path))
    assert not missing, f"--help without an `Example:  deployctl …` line: {missing}"


@pytest.mark.parametrize(("args", "expected"), [
    (["plan"], "Missing option '--env'"),
    (["no-such-command"], "No such command 'no-such-command'"),
    (["validate", "--no-such-flag"], "No such option: --no-such-flag"),
])
def test_usage_errors_exit_2(args: list[str], expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(args, capsys)
    assert code == 2
    assert expected in err
    assert "Traceback" not in out + err


# -- deploy.schema.json -----------------------------------------------------------------------

def test_committed_schema_equals_generated(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(["schema"], capsys)
    assert code == 0
    committed = (ROOT / "deploy.schema.json").read_text(encoding="utf-8")
    assert committed == out, "deploy.schema.json is stale: run `deployctl schema > deploy.schema.json`"
    first = (ROOT / "deploy.yaml").read_text(encoding="utf-8").splitlines()[0]
    assert first == "# yaml-language-server: $schema=./deploy.schema.json"


@pytest.mark.parametrize("example", ["deploy.yaml", "examples/quickstart/deploy.yaml"])
def test_schema_accepts_the_examples(example: str) -> None:
    import jsonschema

    schema = json.loads((ROOT / "deploy.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    data = yaml.safe_load((ROOT / example).read_text(encoding="utf-8"))
    errors = [f"{list(e.path)}: {e.message}" for e in jsonschema.Draft202012Validator(schema).iter_errors(data)]
    assert errors == []


def test_schema_rejects_what_validate_rejects() -> None:
    import jsonschema

    schema = json.loads((ROOT / "deploy.schema.json").read_text(encoding="utf-8"))
    data = yaml.safe_load((ROOT / "deploy.yaml").read_text(encoding="utf-8"))
    data["services"]["api"]["memroy"] = 4096
    data["environments"]["prod"]["services"]["api"]["cout"] = 3
    data["environments"]["dev"]["target"] = "kubernetes"
    bad = sorted(tuple(e.absolute_path) for e in jsonschema.Draft202012Validator(schema).iter_errors(data))
    assert len(bad) == 3, bad


# -- plan's human output ------------------------------------------------------------------------

def test_plan_table_is_not_squeezed_when_piped(capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.chdir(ROOT)
    code, out, _ = run_main(["plan", "--env", "prod"], capsys)
    assert code == 0
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.startswith("│ ")}
    # Whole names and units on one row each, nothing cut to "chat-a…".
    assert "chat-api-prod-worker" in rows["worker"] and "2048 MiB" in rows["worker"]
    assert "8192 MiB" in rows["api"] and "/health/ready" in rows["api"]
    assert "…" not in out
    # prod runs the digest staging runs (it is promoted, never built): the whole reference, one line
    assert re.search(r"^image  <account-id>\.dkr\.ecr\.us-east-1\.amazonaws\.com/chat-api@<digest staging runs>$",
                     out, re.M)
    assert "$179.29/month (up to $567.85/month at autoscaling max)" in out
