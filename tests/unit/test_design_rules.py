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


# --- one lifecycle, many targets: commands never ask which target it is ----------------------------

TARGET_NAMES = {"ecs", "docker"}


def target_name_comparisons(source: str) -> list[int]:
    """Lines comparing something with a target name ("ecs" == x, x != "docker", x in ("ecs",) …)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Compare):
            continue
        for side in (node.left, *node.comparators):
            consts = [side] if isinstance(side, ast.Constant) else \
                list(side.elts) if isinstance(side, (ast.Tuple, ast.List, ast.Set)) else []
            if any(isinstance(c, ast.Constant) and c.value in TARGET_NAMES for c in consts):
                found.append(node.lineno)
    return found


def test_the_rule_finds_a_comparison_with_a_target_name() -> None:
    assert target_name_comparisons('if cfg.environment.target == "docker":\n    pass\n') == [1]
    assert target_name_comparisons('ok = "ecs" != plan.target\n') == [1]
    assert target_name_comparisons('if t in ("ecs", "fargate"):\n    pass\n') == [1]
    assert target_name_comparisons('print("ecs")\nx = {"docker": 1}\n') == []


@pytest.mark.parametrize("layer", ["commands", "app"])
def test_commands_and_use_cases_never_compare_with_a_target_name(layer: str) -> None:
    # A use case that only some targets can serve asks deployctl.targets.supports(cfg, FEATURE_…)
    # or isinstance(target, <optional protocol>), so a new target is one module and one entry.
    offenders = {str(p.relative_to(PACKAGE)): lines for p in sorted((PACKAGE / layer).rglob("*.py"))
                 if (lines := target_name_comparisons(p.read_text(encoding="utf-8")))}
    assert offenders == {}, "call the Target protocol (deployctl.targets.base) instead"


def test_use_cases_import_no_typer() -> None:
    importers = sorted(str(p.relative_to(PACKAGE)) for p in (PACKAGE / "app").rglob("*.py")
                       if "typer" in imported_roots(p) or "click" in imported_roots(p))
    assert importers == []


# --- dependencies in sight: an import inside a function says why it is there ---------------------


def unexplained_function_imports(source: str) -> list[int]:
    """Lines of imports inside a function with no `# lazy: why` comment on that line or on the
    import/comment lines just above it (one comment may cover a group of imports)."""
    lines = source.splitlines()
    found = []
    for fn in ast.walk(ast.parse(source)):
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(fn):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            k = node.lineno - 1
            explained = "# lazy" in lines[k]
            k -= 1
            while not explained and k >= 0 and lines[k].strip().startswith(("from ", "import ", "#")):
                explained = "# lazy" in lines[k]
                k -= 1
            if not explained:
                found.append(node.lineno)
    return found


def test_the_rule_finds_an_unexplained_function_import() -> None:
    assert unexplained_function_imports("def f():\n    import json\n    return json\n") == [2]
    assert unexplained_function_imports("def f():\n    import json  # lazy: rarely needed\n") == []
    assert unexplained_function_imports(
        "def f():\n    # lazy: rich stays off --help\n    import rich\n    import rich.table\n") == []
    assert unexplained_function_imports("import json\n") == []


def test_every_function_level_import_says_why_it_is_lazy() -> None:
    offenders = {str(p.relative_to(PACKAGE)): lines for p in sorted(PACKAGE.rglob("*.py"))
                 if (lines := unexplained_function_imports(p.read_text(encoding="utf-8")))}
    assert offenders == {}, "move the import to the top, or say `# lazy: why` beside it"


# --- small named modules: a long one says at its top why it stays one module -----------------------

LONG_MODULE_LINES = 500
REASON_MARKERS = ("why over 500 lines", "why one long module", "one module although it is long")


def unexplained_long_module(source: str, limit: int = LONG_MODULE_LINES) -> bool:
    """True when the module is over `limit` lines and its docstring gives no reason."""
    if len(source.splitlines()) <= limit:
        return False
    doc = (ast.get_docstring(ast.parse(source)) or "").lower()
    return not any(marker in doc for marker in REASON_MARKERS)


def test_the_rule_finds_a_long_module_without_a_reason() -> None:
    body = "x = 1\n" * 10
    assert unexplained_long_module('"""Small."""\n' + body, limit=5)
    assert not unexplained_long_module('"""Big.\n\nWhy over 500 lines: one state machine."""\n' + body, limit=5)
    assert not unexplained_long_module('"""Small."""\n' + body, limit=50)


def test_every_module_over_500_lines_says_why_at_its_top() -> None:
    offenders = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                       if unexplained_long_module(p.read_text(encoding="utf-8")))
    assert offenders == [], "split it into named modules, or say 'Why over 500 lines: ...' at its top"


def test_the_typed_views_load_no_sdk() -> None:
    """The rollout verdict, diagnosis and plan read the gateways' typed views on paths that
    never call AWS or Docker (plan, the build/push skip path): importing them loads no SDK."""
    import subprocess
    import sys

    probe = ("import sys, deployctl.plan, deployctl.rollout, deployctl.diagnose, deployctl.adapters.ecs_gateway, "
             "deployctl.adapters.elb_gateway, deployctl.adapters.alarm_gateway, deployctl.adapters.logs, "
             "deployctl.adapters.engine_view; "
             "print(sorted(m for m in ('boto3', 'botocore', 'docker', 'git', 'requests') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                         cwd=PACKAGE.parent, check=True).stdout.strip()
    assert out == "[]"
