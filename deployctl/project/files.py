"""Reading a project's files for detection: which files count, read safely, never follow them out."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

# Directories that never hold the app's own code or settings.
SKIP_DIRS = frozenset({
    ".git", ".hg", ".venv", "venv", "env", ".env", "node_modules", "__pycache__", ".mypy_cache",
    ".pytest_cache", ".ruff_cache", ".tox", ".nox", "dist", "build", "site-packages", ".idea", ".vscode",
})
MAX_BYTES = 512 * 1024  # a generated or vendored file this large is not the app's entry point
MAX_FILES = 2000


def read(path: Path) -> str:
    """The text of a file, '' when missing, unreadable, binary or very large."""
    try:
        if not path.is_file() or path.stat().st_size > MAX_BYTES:
            return ""
        return path.read_text("utf-8", errors="replace")
    except OSError:
        return ""


def walk(root: Path, suffix: str = ".py", *, max_depth: int = 6) -> Iterator[Path]:
    """Files under root with the suffix, skipping virtualenvs, caches and VCS; bounded."""
    count = 0
    stack = [(root, 0)]
    while stack:
        d, depth = stack.pop()
        try:
            entries = sorted(d.iterdir(), key=lambda p: p.name, reverse=True)
        except OSError:
            continue
        for p in entries:
            if p.is_symlink():
                continue
            if p.is_dir():
                if p.name not in SKIP_DIRS and depth < max_depth:
                    stack.append((p, depth + 1))
            elif p.name.endswith(suffix):
                count += 1
                if count > MAX_FILES:
                    return
                yield p


def rel(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def is_test_path(relpath: str) -> bool:
    parts = relpath.split("/")
    return any(p in ("tests", "test") for p in parts[:-1]) or parts[-1].startswith("test_") \
        or parts[-1].endswith("_test.py") or parts[-1] == "conftest.py"
