"""The dependency manager and the files it reads: requirements*.txt, or pyproject.toml with pip,
poetry, uv, pdm or hatch, and their lock files."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from deployctl.project.files import read

# Where requirements files usually are, relative to the app's directory.
REQUIREMENT_DIRS = (".", "src", "requirements", "app", "backend", "server", "api")
LOCKS = {"poetry": "poetry.lock", "uv": "uv.lock", "pdm": "pdm.lock"}

# Packages published without a Linux x86_64/arm64 wheel for CPython 3.11 (sdist only), so pip
# compiles them and the image needs build-essential. A known list, checked offline; anything
# else is assumed to come as a wheel, and the generated builder falls back to compilers when an
# install without them fails (see the Dockerfile template).
SDIST_ONLY = frozenset({
    "psycopg2", "mysqlclient", "uwsgi", "pycrypto", "python-levenshtein", "pyyaml-include",
    "mod-wsgi", "pygraphviz", "python-ldap", "pylibmc", "cchardet", "pyodbc", "fasttext",
    "annoy", "hnswlib", "pycurl", "dbus-python", "pycairo", "gevent-websocket",
})
DEV_REQUIREMENT_NAMES = ("requirements-dev.txt", "requirements_dev.txt", "dev-requirements.txt",
                         "requirements-test.txt", "requirements_test.txt", "test-requirements.txt",
                         "requirements/dev.txt", "requirements/test.txt")


@dataclass(frozen=True)
class Deps:
    manager: str                      # pip | poetry | uv | pdm | hatch | none
    directory: str                    # where the files are, relative to the project root ("." or "src")
    files: tuple[str, ...]            # the runtime dependency files, relative to the project root
    lock: str | None                  # the lock file, relative to the project root
    packages: tuple[str, ...]         # runtime dependency names, normalized
    dev_packages: tuple[str, ...]     # development/test dependency names, normalized
    dev_files: tuple[str, ...] = ()   # requirements-dev.txt and the like
    needs_compiler: tuple[str, ...] = field(default=())  # dependencies that build from source

    def has(self, *names: str) -> bool:
        return any(n in self.packages for n in names)

    def has_any(self, *names: str) -> bool:
        return any(n in self.packages or n in self.dev_packages for n in names)


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


_REQ_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def requirement_names(text: str, base: Path | None = None, seen: set[Path] | None = None) -> list[str]:
    """Names in a requirements file, following `-r other.txt` includes next to it."""
    out: list[str] = []
    seen = set() if seen is None else seen
    for raw in text.splitlines():
        line = raw.split(" #")[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("-r ", "--requirement ", "-c ", "--constraint ")):
            if base is not None and line.startswith(("-r", "--requirement")):
                inc = (base / line.split(None, 1)[1].strip()).resolve()
                if inc not in seen:
                    seen.add(inc)
                    out += requirement_names(read(inc), inc.parent, seen)
            continue
        if line.startswith("-") or "://" in line or line.startswith((".", "/")):
            if "--no-binary" in line or "://" in line or line.startswith((".", "/")):
                out.append("<source>")  # VCS, URL, path or --no-binary: built from source
            continue
        m = _REQ_NAME.match(line)
        if m:
            out.append(normalize(m.group(1)))
    return out


def requirement_files(root: Path, relfile: str) -> tuple[str, ...]:
    """`relfile` and every requirements/constraints file it includes (`-r`, `-c`), transitively,
    relative to the root; pip reads an include relative to the including file. Includes outside
    the root or missing are left out (the install then names them)."""
    out: list[str] = []
    todo = [(root / relfile).resolve()]
    root = root.resolve()
    while todo:
        path = todo.pop(0)
        if not path.is_relative_to(root) or not path.is_file():
            continue
        relp = path.relative_to(root).as_posix()
        if relp in out:
            continue
        out.append(relp)
        for raw in read(path).splitlines():
            words = raw.split(" #")[0].split()
            if len(words) >= 2 and words[0] in ("-r", "--requirement", "-c", "--constraint"):
                todo.append((path.parent / words[1]).resolve())
            elif words and words[0].startswith(("--requirement=", "--constraint=")):
                todo.append((path.parent / words[0].split("=", 1)[1]).resolve())
    return tuple(out)


def _pep508_names(items: object) -> list[str]:
    if not isinstance(items, list):
        return []
    return [normalize(m.group(1)) for item in items if isinstance(item, str)
            for m in [_REQ_NAME.match(item)] if m]


def _pyproject_names(data: dict) -> tuple[list[str], list[str]]:
    project = data.get("project") or {}
    runtime = _pep508_names(project.get("dependencies"))
    dev: list[str] = []
    for group in (project.get("optional-dependencies") or {}).values():
        dev += _pep508_names(group)
    for group in (data.get("dependency-groups") or {}).values():
        dev += _pep508_names(group)
    tool = data.get("tool") or {}
    poetry = tool.get("poetry") or {}
    runtime += [normalize(n) for n in (poetry.get("dependencies") or {}) if n.lower() != "python"]
    dev += [normalize(n) for n in (poetry.get("dev-dependencies") or {})]
    for group in (poetry.get("group") or {}).values():
        dev += [normalize(n) for n in (group.get("dependencies") or {})]
    for group in ((tool.get("pdm") or {}).get("dev-dependencies") or {}).values():
        dev += _pep508_names(group)
    for group in ((tool.get("uv") or {}).get("dev-dependencies"),):
        dev += _pep508_names(group)
    return runtime, dev


def load_toml(path: Path) -> dict:
    try:
        return tomllib.loads(read(path))
    except tomllib.TOMLDecodeError:
        return {}


def _manager(data: dict, directory: Path) -> str:
    for name, lock in LOCKS.items():
        if (directory / lock).is_file():
            return name
    tool = data.get("tool") or {}
    backend = str((data.get("build-system") or {}).get("build-backend", ""))
    if "poetry" in tool or backend.startswith("poetry"):
        return "poetry"
    if "uv" in tool:
        return "uv"
    if "pdm" in tool or backend.startswith("pdm"):
        return "pdm"
    if "hatch" in tool or backend.startswith("hatchling"):
        return "hatch"
    return "pip"


def detect(root: Path, app_dir: str = ".") -> Deps:
    """The dependency files of the app in `app_dir` (relative to root). A pyproject.toml with
    dependencies wins over requirements files next to it only when it has a lock file or no
    requirements file exists (requirements files are what such projects deploy with)."""
    base = root / app_dir
    reqs: list[Path] = []
    for d in REQUIREMENT_DIRS:
        for name in ("requirements.txt", "requirements/base.txt", "requirements/prod.txt", "requirements/main.txt"):
            p = (base / d / name)
            if p.is_file():
                reqs.append(p)
        if reqs:
            break
    pyproject = base / "pyproject.toml"
    data = load_toml(pyproject) if pyproject.is_file() else {}
    runtime_py, dev_py = _pyproject_names(data)
    manager = _manager(data, base) if data else "none"
    lock = LOCKS.get(manager)
    has_lock = bool(lock and (base / lock).is_file())

    def relp(p: Path) -> str:
        return p.relative_to(root).as_posix()

    dev_files = [base / n for n in DEV_REQUIREMENT_NAMES if (base / n).is_file()]
    if reqs:
        dev_files += [p for p in sorted(reqs[0].parent.glob("requirements*dev*.txt")) if p not in dev_files]
    dev_names = dev_py + [n for p in dev_files for n in requirement_names(read(p), p.parent)]

    if data and (runtime_py or has_lock) and (has_lock or not reqs):
        names = runtime_py
        return Deps(manager=manager, directory=relp(base) if base != root else ".",
                    files=(relp(pyproject),), lock=relp(base / lock) if has_lock and lock else None,
                    packages=tuple(dict.fromkeys(names)), dev_packages=tuple(dict.fromkeys(dev_names)),
                    dev_files=tuple(relp(p) for p in dev_files), needs_compiler=_compiled(names))
    if reqs:
        names = requirement_names(read(reqs[0]), reqs[0].parent)
        directory = reqs[0].parent
        return Deps(manager="pip", directory=relp(directory) if directory != root else ".",
                    files=(relp(reqs[0]),), lock=None, packages=tuple(dict.fromkeys(names)),
                    dev_packages=tuple(dict.fromkeys(dev_names)), dev_files=tuple(relp(p) for p in dev_files),
                    needs_compiler=_compiled(names))
    return Deps(manager="none", directory=app_dir, files=(), lock=None, packages=(),
                dev_packages=tuple(dict.fromkeys(dev_names)), dev_files=tuple(relp(p) for p in dev_files))


def _compiled(names: list[str]) -> tuple[str, ...]:
    return tuple(n for n in dict.fromkeys(names) if n in SDIST_ONLY or n == "<source>")
