"""Git facts for tagging and labelling (GitPython is imported only here)."""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

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


def read_facts(path: str | Path = ".") -> GitFacts:
    try:
        import git
    except ImportError as exc:  # pragma: no cover - git binary missing
        raise UsageError(f"git is not usable here: {exc}") from None
    try:
        repo = git.Repo(path, search_parent_directories=True)
        sha = repo.head.commit.hexsha
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise UsageError(f"{Path(path).resolve()} is not inside a git repository",
                         hint="deployctl tags images from the commit: run `git init` and commit first") from None
    except ValueError:
        raise UsageError("the git repository has no commits yet", hint="commit once, then run again") from None
    branch = _ci_branch(os.environ)
    if branch is None:
        branch = "detached" if repo.head.is_detached else repo.active_branch.name
    dirty = repo.is_dirty(untracked_files=True)
    dirty_hash = None
    if dirty:
        digest = hashlib.sha256()
        digest.update(repo.git.diff("HEAD", "--binary").encode())
        root = Path(repo.working_tree_dir or ".")
        for name in sorted(repo.untracked_files):
            digest.update(name.encode())
            with contextlib.suppress(OSError):  # vanished or unreadable: the name still counts
                digest.update((root / name).read_bytes())
        dirty_hash = digest.hexdigest()
    return GitFacts(sha=sha, branch=branch, dirty=dirty, dirty_hash=dirty_hash)
