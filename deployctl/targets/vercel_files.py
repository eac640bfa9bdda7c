"""The files of a frontend upload: what goes up, by SHA1, and the refusal of secret files.

Which files: everything under frontend.path except
- what Vercel CLI leaves out: its default ignores and the `.vercelignore` at the root of the
  deployed directory (`getVercelIgnore` in vercel/vercel packages/client reads only that one);
- what git leaves out: the `.gitignore` files as git reads them, from the repository's root
  down to each file's directory (the root's and those of the directories between it and
  frontend.path, then every nested one below), each with patterns relative to its own
  directory and a deeper file overriding a shallower one. The repository is the nearest
  directory above frontend.path holding `.git`; without one, the `.gitignore` files from
  frontend.path down are read.
Then the same secret
checks as for a Docker build context (deployctl.stages.context_check): a file that is a secret
by name or content is refused, naming each file and the ignore line that keeps it out, unless
frontend.allow_secret_files lists it. An upload is public to anyone who can open the
deployment's source view, so nothing secret may go up.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from deployctl.errors import UsageError
from deployctl.stages import context_check
from deployctl.stages.context import BuildContext, Entry

# Vercel CLI's defaults (packages/client/src/utils/index.ts, getVercelIgnore).
DEFAULT_IGNORES = (".hg", ".git", ".gitmodules", ".svn", ".cache", ".next", ".now", ".vercel", ".npmignore",
                   ".dockerignore", ".gitignore", ".*.swp", ".DS_Store", ".wafpicke-*", ".lock-wscript",
                   ".env.local", ".env.*.local", ".venv", "npm-debug.log", "config.gypi", "node_modules",
                   "__pycache__", "venv", "CVS", ".vercel_build_output")
DOCS = "docs/frontend-vercel.md"


class FrontendSecretsRefused(UsageError):
    """The upload would publish secret-looking files (exit 2: the fix is in the project)."""


@dataclass(frozen=True)
class UploadFile:
    path: str  # relative, "/"-separated: the `file` of the deployment's files list
    sha: str  # SHA1 of the content: the `sha` (and x-vercel-digest of the upload)
    size: int
    mode: int

    def as_json(self) -> dict[str, object]:
        return {"file": self.path, "sha": self.sha, "size": self.size}


@dataclass(frozen=True)
class _Rule:
    regex: re.Pattern[str]
    negated: bool
    dir_only: bool
    source: str


def _translate(glob: str) -> str:
    out, i = [], 0
    while i < len(glob):
        c = glob[i]
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if glob.startswith("/**", i) and i + 3 == len(glob):
            out.append("/.*")
            i += 3
            continue
        if glob.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = glob.find("]", i + 1)
            if end == -1:
                out.append(re.escape(c))
            else:
                body = glob[i + 1:end]
                out.append("[" + ("^" + body[1:] if body[:1] in "!^" else body).replace("\\", "\\\\") + "]")
                i = end
        elif c == "\\" and i + 1 < len(glob):
            i += 1
            out.append(re.escape(glob[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def parse_ignore(text: str, source: str) -> list[_Rule]:
    """gitignore syntax (https://git-scm.com/docs/gitignore#_pattern_format)."""
    rules = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if raw.endswith("\\ "):
            line += " "
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        body = line[1:] if negated else line
        dir_only = body.endswith("/")
        body = body.rstrip("/")
        if not body:
            continue
        anchored = "/" in body
        body = body.lstrip("/")
        pattern = _translate(body)
        regex = re.compile(pattern if anchored else f"(?:.*/)?{pattern}")
        rules.append(_Rule(regex, negated, dir_only, f"{source}:{number}"))
    return rules


def _verdict(rules: list[_Rule], path: str, is_dir: bool) -> bool | None:
    """The last matching rule's verdict (True: ignored), or None when none matches."""
    verdict = None
    for rule in rules:
        if rule.dir_only and not is_dir:
            continue
        if rule.regex.fullmatch(path):
            verdict = not rule.negated
    return verdict


@dataclass
class Ignore:
    """Vercel's rules (relative to the upload root) and git's layers: one per `.gitignore`,
    its patterns relative to its directory `base` ("/"-separated, relative to the repository)."""

    vercel: list[_Rule]
    git: list[tuple[str, list[_Rule]]]
    prefix: str = ""  # the upload root relative to the repository, "" or ending in "/"

    def ignored(self, path: str, is_dir: bool) -> bool:
        if _verdict(self.vercel, path, is_dir):
            return True
        return self.git_ignored(self.prefix + path, is_dir)

    def git_ignored(self, repo_path: str, is_dir: bool) -> bool:
        verdict = False
        for base, rules in self.git:  # shallow to deep: a deeper .gitignore has the last word
            if base and not repo_path.startswith(base + "/"):
                continue
            found = _verdict(rules, repo_path[len(base) + 1:] if base else repo_path, is_dir)
            if found is not None:
                verdict = found
        return verdict

    def add_gitignore(self, directory: Path, base: str) -> None:
        file = directory / ".gitignore"
        if file.is_file():
            label = f"{base}/.gitignore" if base else ".gitignore"
            self.git.append((base, parse_ignore(file.read_text(encoding="utf-8", errors="replace"), label)))


def repo_root(root: Path) -> Path | None:
    """The nearest directory at or above `root` that holds `.git` (a directory, or a worktree's file)."""
    for directory in (root, *root.parents):
        if (directory / ".git").exists():
            return directory
    return None


def ignore_for(root: Path) -> Ignore:
    """The rules for the upload root (nested .gitignore files are added while walking)."""
    rules = parse_ignore("\n".join(DEFAULT_IGNORES), "vercel default")
    vercelignore = root / ".vercelignore"
    if vercelignore.is_file():
        rules += parse_ignore(vercelignore.read_text(encoding="utf-8", errors="replace"), ".vercelignore")
    repo = repo_root(root)
    ignore = Ignore(rules, [])
    if repo is None or repo == root:
        return ignore
    rel = root.relative_to(repo).as_posix()
    ignore.prefix = rel + "/"
    parts = rel.split("/")
    for depth in range(len(parts)):  # the repository's root and the directories down to `root`
        base = "/".join(parts[:depth])
        ignore.add_gitignore(repo / base if base else repo, base)
    return ignore


def list_files(root: Path) -> list[tuple[str, int, int]]:
    """(path, size, mode) of every regular file that would go up, sorted. An ignored directory is
    skipped whole (as git does: a file below it cannot be re-included)."""
    ignore = ignore_for(root)
    parts = ignore.prefix.rstrip("/").split("/") if ignore.prefix else []
    if any(ignore.git_ignored("/".join(parts[:n]), True) for n in range(1, len(parts) + 1)):
        return []  # the frontend directory itself is git-ignored
    found: list[tuple[str, int, int]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir
        ignore.add_gitignore(Path(dirpath), (ignore.prefix + rel_dir).rstrip("/"))
        keep = []
        for name in sorted(dirnames):
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if not os.path.islink(os.path.join(dirpath, name)) and not ignore.ignored(rel, True):
                keep.append(name)
        dirnames[:] = keep
        for name in sorted(filenames):
            rel = f"{rel_dir}/{name}" if rel_dir else name
            st = os.lstat(os.path.join(dirpath, name))
            if stat.S_ISREG(st.st_mode) and not ignore.ignored(rel, False):
                found.append((rel, st.st_size, stat.S_IMODE(st.st_mode)))
    return sorted(found)


def check_secrets(root: Path, files: Iterable[tuple[str, int, int]], allowed: Iterable[str] = ()) -> None:
    """FrontendSecretsRefused naming every secret-looking file, with the ignore line for it."""
    entries = tuple(Entry(path, "f", mode, size) for path, size, mode in files)
    ctx = BuildContext(root=root, entries=entries, dockerfile=root, dockerfile_name="")
    found = context_check.findings(ctx, allowed)
    if not found:
        return
    shown = found[:20]
    lines = [f"{f.path} ({f.reason}; add `{context_check.ignore_line(f.path.rstrip('/'))}` to .vercelignore)"
             for f in shown]
    if len(found) > len(shown):
        lines.append(f"and {len(found) - len(shown)} more")
    raise FrontendSecretsRefused(
        f"refusing to upload the frontend: {root.name}/ holds {len(found)} secret-looking file(s) that would be "
        "sent to Vercel and readable in the deployment's source:\n  " + ",\n  ".join(lines),
        hint="add the lines shown to .vercelignore (or .gitignore) in the frontend directory, or move the files "
             "out; give build-time values through frontend.build_env or the Vercel project's environment "
             f"variables. A file that must go up goes into frontend.allow_secret_files (see {DOCS}).")


def collect(root: Path, allowed: Iterable[str] = ()) -> list[UploadFile]:
    """The files to upload with their SHA1s; secret files refused first (nothing is read twice
    more than needed: content checks read at most 1 MiB per file)."""
    if not root.is_dir():
        raise UsageError(f"the frontend directory {root} does not exist or is not a directory",
                         hint="frontend.path in deploy.yaml is relative to deploy.yaml's directory")
    files = list_files(root)
    if not files:
        raise UsageError(f"the frontend directory {root} has no files to upload (all ignored?)",
                         hint="check .vercelignore and .gitignore there")
    check_secrets(root, files, allowed)
    out = []
    for path, size, mode in files:
        digest = hashlib.sha1(usedforsecurity=False)
        with open(root / path, "rb") as fh:
            while chunk := fh.read(1024 * 1024):
                digest.update(chunk)
        out.append(UploadFile(path, digest.hexdigest(), size, mode))
    return out
