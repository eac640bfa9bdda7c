"""The lint and test tools a project really uses: named in its dependencies or configured in its
files. None found → no stage (a lint stage running a tool the project lacks only fails)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from deployctl.project.deps import Deps, load_toml
from deployctl.project.dockerfile import Dockerfile
from deployctl.project.files import read, walk


@dataclass(frozen=True)
class Tools:
    lint: tuple[str, ...]   # commands, e.g. ("python -m ruff check .",)
    test: tuple[str, ...]
    lint_packages: tuple[str, ...]
    test_packages: tuple[str, ...]
    tests_dir: str | None
    source: str = ""        # where the test tool was found, when not in the dependencies


def _configured(root: Path, tool: str) -> bool:
    pyproject = load_toml(root / "pyproject.toml") if (root / "pyproject.toml").is_file() else {}
    if tool in (pyproject.get("tool") or {}):
        return True
    files = {"ruff": ("ruff.toml", ".ruff.toml"), "flake8": (".flake8",), "pytest": ("pytest.ini",),
             "mypy": ("mypy.ini", ".mypy.ini")}.get(tool, ())
    if any((root / f).is_file() for f in files):
        return True
    section = {"flake8": "[flake8]", "pytest": "[tool:pytest]", "mypy": "[mypy]"}.get(tool)
    if section and (section in read(root / "setup.cfg") or section in read(root / "tox.ini")):
        return True
    return f"id: {tool}" in read(root / ".pre-commit-config.yaml")


def _in_test_stage(df: Dockerfile | None, tool: str) -> bool:
    """The Dockerfile's test stage installs `tool` (or is built on a stage that does)."""
    return bool(df and df.test_stage and df.installs(df.test_stage, tool))


def stage_test_command(df: Dockerfile) -> str | None:
    """The test stage's own command, as deploy.yaml's test stage runs it. `pytest` becomes
    `python -m pytest`, which also puts the working directory on sys.path (so `from main import
    app` in tests/ resolves, as it does when the project runs its tests from its root)."""
    argv = list(df.test_command)
    if not argv:
        return None
    if argv[0] in ("pytest", "py.test"):
        argv = ["python", "-m", "pytest", *argv[1:]]
    return shlex.join(argv)


def detect(root: Path, app_dir: str, deps: Deps, dockerfile: Dockerfile | None = None) -> Tools:
    """`dockerfile`: an adopted Dockerfile, whose test stage may be where the test tools are."""
    base = root / app_dir
    lint: list[str] = []
    lint_pkgs: list[str] = []
    if deps.has_any("ruff") or _configured(base, "ruff") or _in_test_stage(dockerfile, "ruff"):
        lint.append("python -m ruff check .")
        lint_pkgs.append("ruff")
    elif deps.has_any("flake8") or _configured(base, "flake8") or _in_test_stage(dockerfile, "flake8"):
        lint.append("python -m flake8")
        lint_pkgs.append("flake8")
    tests_dir = next((d for d in ("tests", "test") if (base / d).is_dir()
                      and any(p.name.startswith("test_") or p.name.endswith("_test.py") for p in walk(base / d))),
                     None)
    test: list[str] = []
    test_pkgs: list[str] = []
    source = ""
    own = stage_test_command(dockerfile) if dockerfile else None
    if tests_dir and own and dockerfile:
        # the Dockerfile's test stage says how the project runs its tests
        test.append(own)
        test_pkgs += ["pytest"] if "pytest" in own else []
        source = f"the `{dockerfile.test_stage}` stage of {dockerfile.path}"
    elif tests_dir and (deps.has_any("pytest") or _configured(base, "pytest") or _in_test_stage(dockerfile, "pytest")):
        test.append(f"python -m pytest -q {tests_dir}")
        if not (deps.has_any("pytest") or _configured(base, "pytest")) and dockerfile:
            source = f"the `{dockerfile.test_stage}` stage of {dockerfile.path}"
        test_pkgs.append("pytest")
        for extra in ("pytest-asyncio", "httpx", "pytest-django", "anyio"):
            if extra in deps.dev_packages:
                test_pkgs.append(extra)
    elif tests_dir and any("import unittest" in read(p) for p in walk(base / tests_dir)):
        test.append(f"python -m unittest discover -s {tests_dir}")
    return Tools(lint=tuple(lint), test=tuple(test), lint_packages=tuple(lint_pkgs),
                 test_packages=tuple(test_pkgs), tests_dir=tests_dir, source=source)
