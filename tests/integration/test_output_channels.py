"""Every output channel against the redaction corpus, through the real code paths.

A lint stage prints a corpus entry (and quotes its first line in the failing command, so that the
failure message, the annotation and the summary table carry it too); the run is made once as in
GitHub Actions with `--json` and `--report` (JSON document, report file, GitHub log, `::error`
annotations, step summary) and once plain on a terminal-less stdout. `config`, `config --json`,
`plan` and `plan --json` get the entry as a service's environment value. No secret of an entry
may appear on any channel; each look-alike must come through unchanged.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deployctl.cli import main
from tests.unit.redaction_corpus import (
    LookAlike,
    Secret,
    assert_masked,
    assert_readable,
    lookalike_params,
    secret_params,
)

CONFIG = """\
version: 1
app: corpus
region: us-east-1
image: {{repository: corpus, registry: "127.0.0.1:5000"}}
stages:
  lint: {{run: [{command}]}}
services:
  api:
    port: 8000
    env: {{NOTE: {value}}}
environments:
  dev:
    target: docker
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("corpus")
    (path / "deploy.yaml").write_text(CONFIG.format(command='"true"', value="x"))
    (path / "Dockerfile").write_text("FROM scratch\n")
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.email=ci@example.com", "-c", "user.name=ci",
                                                    "commit", "-qm", "init"]):
        subprocess.run(["git", *args], cwd=path, check=True, capture_output=True)
    return path


def _write(project: Path, text: str) -> None:
    text_in_yaml = text.replace("${", "$${")  # deploy.yaml interpolates `${…}`; `$${` is literal
    first = text_in_yaml.split("\n")[0]
    # JSON strings are YAML double-quoted scalars: escapes (\u001b, \n) survive the round trip.
    command = json.dumps(f"cat entry.txt; exit 1 # {first}")
    (project / "deploy.yaml").write_text(CONFIG.format(command=command, value=json.dumps(text_in_yaml)))
    (project / "entry.txt").write_text(text + "\n")


def _cli(project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
         *args: str, github: bool = False) -> tuple[int, str, str]:
    monkeypatch.chdir(project)
    for name in ("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", "4000")  # no folding in the plan's tables: leaks stay findable
    monkeypatch.setenv("TERM", "dumb")
    if github:
        monkeypatch.setenv("GITHUB_ACTIONS", "true")
        monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(project / "summary.md"))
        monkeypatch.setenv("GITHUB_OUTPUT", str(project / "outputs.txt"))
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


def _strings(data: Any) -> Iterator[str]:
    if isinstance(data, dict):
        for k, v in data.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(data, list):
        for v in data:
            yield from _strings(v)
    elif isinstance(data, str):
        yield data


def _unescape(annotation: str) -> str:
    return annotation.replace("%0A", "\n").replace("%0D", "\r").replace("%25", "%")


def _norm(text: str) -> str:
    return " ".join(text.split())


def run_channels(project: Path, monkeypatch: pytest.MonkeyPatch,
                 capsys: pytest.CaptureFixture[str], text: str) -> dict[str, str]:
    """The text of each channel after a failing run that printed `text`."""
    _write(project, text)
    for name in ("summary.md", "outputs.txt", "report.json"):
        (project / name).unlink(missing_ok=True)
    code, out, err = _cli(project, monkeypatch, capsys, "run", "--env", "dev", "--only", "lint", "--json",
                          "--report", "report.json", github=True)
    assert code == 1, err
    doc = json.loads(out)
    report = json.loads((project / "report.json").read_text())
    annotations = [_unescape(line) for line in err.splitlines() if line.startswith("::error")]
    assert annotations, err
    code, plain, plain_err = _cli(project, monkeypatch, capsys, "run", "--env", "dev", "--only", "lint")
    assert code == 1, plain_err
    return {
        "--json": "\n".join(_strings(doc)),
        "--report": "\n".join(_strings(report)),
        "GitHub log": err,
        "annotations": "\n".join(annotations),
        "step summary": (project / "summary.md").read_text(),
        "terminal": plain + plain_err,
    }


def config_channels(project: Path, monkeypatch: pytest.MonkeyPatch,
                    capsys: pytest.CaptureFixture[str], text: str) -> dict[str, str]:
    _write(project, text)
    found = {}
    for args in (("config",), ("config", "--json"), ("plan",), ("plan", "--json")):
        code, out, err = _cli(project, monkeypatch, capsys, *args, "--env", "dev")
        assert code == 0, err
        found[" ".join(args)] = "\n".join(_strings(json.loads(out))) if "--json" in args else out
    return found


@pytest.mark.parametrize("entry", secret_params())
def test_run_channels_mask_every_secret_shape(project: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str], entry: Secret) -> None:
    channels = run_channels(project, monkeypatch, capsys, entry.text)
    for channel, text in channels.items():
        leaked = [s for s in entry.secrets if s in text or s in _norm(text)]
        assert not leaked, f"{channel} leaked {entry.id}: {leaked}"
    assert_masked(entry, channels["--json"], "--json")
    assert_masked(entry, channels["--report"], "--report")


@pytest.mark.parametrize("entry", lookalike_params())
def test_run_channels_keep_look_alikes_readable(project: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str], entry: LookAlike) -> None:
    channels = run_channels(project, monkeypatch, capsys, entry.text)
    for channel in ("--json", "--report", "GitHub log", "step summary", "terminal"):
        assert_readable(entry, channels[channel], channel)
    first = entry.text.split("\n")[0]
    assert _norm(first) in _norm(channels["annotations"]), "annotations changed the look-alike"


@pytest.mark.parametrize("entry", secret_params())
def test_config_and_plan_mask_every_secret_shape(project: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str], entry: Secret) -> None:
    for channel, text in config_channels(project, monkeypatch, capsys, entry.text).items():
        leaked = [s for s in entry.secrets if s in text]
        assert not leaked, f"{channel} leaked {entry.id}: {leaked}"


@pytest.mark.parametrize("entry", lookalike_params())
def test_config_and_plan_keep_look_alikes_readable(project: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str], entry: LookAlike) -> None:
    channels = config_channels(project, monkeypatch, capsys, entry.text)
    assert_readable(entry, channels["config --json"], "config --json")
    assert_readable(entry, channels["plan --json"], "plan --json")
