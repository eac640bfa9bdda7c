"""Git facts for tagging and labelling (GitPython is imported only here, and only for a dirty tree)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from deployctl.adapters import shell
from deployctl.errors import UsageError


@dataclass(frozen=True)
class GitFacts:
    sha: str
    branch: str
    dirty: bool = False
    dirty_hash: str | None = None  # content hash of uncommitted changes

    @property
    def short(self) -> str:
        return self.sha[:12]

    @property
    def tag(self) -> str:
        """Image tag part: two different dirty trees never share a tag."""
        if self.dirty and self.dirty_hash:
            return f"{self.short}-dirty-{self.dirty_hash[:12]}"
        return self.short


def _ci_branch(env: dict[str, str] | os._Environ[str]) -> str | None:
    # Actions checks out a detached HEAD; the branch is in the environment.
    if env.get("GITHUB_HEAD_REF"):
        return env["GITHUB_HEAD_REF"]
    if env.get("GITHUB_REF_NAME"):
        return env["GITHUB_REF_NAME"]
    return None


_OID = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")  # SHA-1 or SHA-256 repositories


def _git_env() -> dict[str, str]:
    # English messages (we match "not a git repository"), and no index refresh written behind
    # another git command's back (the variable is ignored by gits older than 2.15, not refused).
    return {**os.environ, "LC_ALL": "C", "LANGUAGE": "C", "GIT_OPTIONAL_LOCKS": "0"}


def read_facts(path: str | Path = ".") -> GitFacts:
    """Commit, branch and dirtiness from one `git status` (every run reads these, so they are
    read without importing GitPython, ~0.1 s); a dirty tree's content hash uses GitPython."""
    if not Path(path).is_dir():
        raise UsageError(f"{Path(path).resolve()} is not a directory")
    try:
        code, out, err = shell.run_capture(
            ["git", "status", "--porcelain=v2", "--branch", "-z", "--untracked-files=all"],
            timeout=120, cwd=path, env=_git_env())  # a huge untracked tree is slow, not stuck
    except TimeoutError as exc:
        raise UsageError(f"git status in {Path(path).resolve()}: {exc}") from None
    except FileNotFoundError:
        raise UsageError("git is not installed or not on PATH",
                         hint="deployctl tags images from the commit: install git") from None
    if code != 0:
        if "not a git repository" in err:
            raise UsageError(f"{Path(path).resolve()} is not inside a git repository",
                             hint="deployctl tags images from the commit: run `git init` and commit first")
        raise UsageError(f"git status failed in {Path(path).resolve()}: {err.strip() or code}")
    headers: dict[str, str] = {}
    entries = [e for e in out.split("\0") if e]
    while entries and entries[0].startswith("# "):  # headers come first; a path may start with "# "
        key, _, value = entries.pop(0)[2:].partition(" ")
        headers[key] = value
    dirty = bool(entries)  # changed, staged, unmerged or untracked (not ignored) paths
    sha = headers.get("branch.oid", "(initial)")
    if not _OID.match(sha):  # "(initial)": an unborn branch
        raise UsageError("the git repository has no commits yet", hint="commit once, then run again")
    branch = _ci_branch(os.environ)
    if branch is None:
        head = headers.get("branch.head", "(detached)")
        branch = "detached" if head == "(detached)" else head
    return GitFacts(sha=sha, branch=branch, dirty=dirty, dirty_hash=_dirty_hash(path) if dirty else None)


def _dirty_hash(path: str | Path) -> str:
    """A content hash of everything uncommitted: the diff against HEAD (submodules' changed
    files included) plus untracked files, all as bytes so no file name or encoding breaks it.
    Untracked files inside a submodule are not seen (git diff does not show them)."""
    import git  # lazy: GitPython stays off --help and the build/push skip path

    repo = git.Repo(path, search_parent_directories=True)
    digest = hashlib.sha256()
    digest.update(repo.git.diff("HEAD", "--binary", "--submodule=diff", stdout_as_string=False))
    root = Path(repo.working_tree_dir or ".")
    listed = repo.git.ls_files("-z", "--others", "--exclude-standard", stdout_as_string=False)
    for name in sorted(n for n in listed.split(b"\0") if n):
        digest.update(name + b"\0")
        with contextlib.suppress(OSError):  # vanished or unreadable: the name still counts
            digest.update((root / os.fsdecode(name)).read_bytes())
    return digest.hexdigest()
