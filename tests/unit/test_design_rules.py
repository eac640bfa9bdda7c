"""Design rules that keep deployctl testable: one door per outside system."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "deployctl"

DOORS = {
    "boto3": "adapters/aws.py",
    "botocore": "adapters/aws.py",
    "docker": "adapters/engine.py",
    "git": "adapters/git.py",
    "subprocess": "adapters/shell.py",
}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("module", sorted(DOORS))
def test_each_outside_system_is_imported_by_exactly_its_adapter(module: str) -> None:
    importers = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if module in imported_roots(p))
    assert importers == [DOORS[module]]
