"""deployctl as a GitHub Action: the composite action.yml at the repository root, and the
workflows `init` writes, which use it pinned by commit SHA.

The install test runs the action's own shell steps, as the runner would, in a fresh virtualenv:
`github.action_path` is this checkout.
"""

from __future__ import annotations

import os
import re
import subprocess
import venv
from pathlib import Path

import yaml

from deployctl.render import workflows
from tests.unit.test_init import deployctl, git

ROOT = Path(__file__).resolve().parents[2]


def action() -> dict:
    return yaml.safe_load((ROOT / "action.yml").read_text())


def test_action_is_a_composite_that_installs_from_its_own_checkout() -> None:
    spec = action()
    assert spec["runs"]["using"] == "composite"
    install = spec["runs"]["steps"][0]
    assert install["env"]["ACTION_PATH"] == "${{ github.action_path }}"
    assert '"$ACTION_PATH"' in install["run"] and "deployctl==" not in install["run"]


def test_the_action_install_step_runs(tmp_path: Path) -> None:
    # System site-packages: the dependencies are there already, so this measures our step (the
    # build and install of this checkout, then `deployctl --version`), not a download.
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True, system_site_packages=True)
    bindir = env_dir / "bin"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{bindir}{os.pathsep}{env['PATH']}"
    for step in action()["runs"]["steps"]:
        assert step["shell"] == "bash"
        step_env = {**env, **{k: v.replace("${{ github.action_path }}", str(ROOT))
                              for k, v in (step.get("env") or {}).items()}}
        r = subprocess.run(["bash", "-e", "-c", step["run"]], env=step_env, cwd=tmp_path, capture_output=True,
                           text=True, timeout=600)
        assert r.returncode == 0, f"{step['name']}: {r.stdout[-2000:]}{r.stderr[-2000:]}"
    where = subprocess.run([str(bindir / "python"), "-c", "import deployctl; print(deployctl.__file__)"],
                           env=env, cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(env_dir)), where  # the venv's copy, not this checkout on a path
    assert re.match(r"deployctl \d", r.stdout)


def test_init_pins_the_action_to_this_checkouts_commit(tmp_path: Path) -> None:
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()
    assert workflows.own_commit() == head
    d = tmp_path / "svc"
    d.mkdir()
    (d / "main.py").write_text("from fastapi import FastAPI\napp = FastAPI()\n")
    (d / "requirements.txt").write_text("fastapi\nuvicorn\n")
    git(d, "init", "-q", "-b", "main")
    assert deployctl(d, "init", "--yes").returncode == 0
    for wf in (d / ".github" / "workflows").glob("*.yml"):
        uses = re.findall(r"uses: (\S+)", wf.read_text())
        assert f"{workflows.ACTION_REPO}@{head}" in uses, wf.name
        assert "pip install deployctl" not in wf.read_text()


def test_action_ref_flag(tmp_path: Path) -> None:
    d = tmp_path / "svc"
    d.mkdir()
    (d / "main.py").write_text("from fastapi import FastAPI\napp = FastAPI()\n")
    git(d, "init", "-q", "-b", "main")
    sha = "b" * 40
    assert deployctl(d, "init", "--yes", "--action-ref", f"me/deployctl-fork@{sha}").returncode == 0
    assert f"uses: me/deployctl-fork@{sha}" in (d / ".github/workflows/promote.yml").read_text()
    bad = deployctl(d, "init", "--yes", "--force", "--action-ref", "v1")
    assert bad.returncode == 2 and "not a 40-character commit SHA" in bad.stderr


def test_own_commit_reads_git_files_and_none_without(tmp_path: Path) -> None:
    pkg = tmp_path / "site" / "deployctl" / "render" / "workflows.py"
    pkg.parent.mkdir(parents=True)
    assert workflows.own_commit(start=pkg) is None  # a wheel install: init then writes the placeholder
    gitdir = tmp_path / "site" / ".git"
    gitdir.mkdir()
    (gitdir / "HEAD").write_text("ref: refs/heads/main\n")
    (gitdir / "packed-refs").write_text(f"# pack-refs\n{'c' * 40} refs/heads/main\n")
    assert workflows.own_commit(start=pkg) == "c" * 40
