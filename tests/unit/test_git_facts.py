"""Git facts from a real repository: commit, branch, and dirty-tree tags that never collide."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from deployctl.adapters.git import read_facts
from deployctl.errors import UsageError


def git(path: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=path, check=True,
                          capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("GITHUB_REF_NAME", raising=False)
    monkeypatch.delenv("GITHUB_HEAD_REF", raising=False)
    git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "app.py").write_text("print('v1')\n")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "v1")
    return tmp_path


def test_clean_tree_is_tagged_by_its_commit(repo: Path) -> None:
    facts = read_facts(repo)
    assert facts.sha == git(repo, "rev-parse", "HEAD")
    assert facts.branch == "main" and not facts.dirty
    assert facts.tag == facts.sha[:12]


def test_two_different_dirty_trees_never_share_a_tag_and_the_same_one_does(repo: Path) -> None:
    (repo / "app.py").write_text("print('v2')\n")
    first = read_facts(repo)
    assert first.dirty and first.tag.startswith(f"{first.sha[:12]}-dirty-")
    assert read_facts(repo).tag == first.tag  # same content, same tag: a rebuild can be skipped
    (repo / "app.py").write_text("print('v3')\n")
    assert read_facts(repo).tag != first.tag
    (repo / "app.py").write_text("print('v2')\n")
    (repo / "model.cfg").write_text("layers: 12\n")  # untracked files count, by content
    with_untracked = read_facts(repo)
    assert with_untracked.tag != first.tag
    (repo / "model.cfg").write_text("layers: 24\n")
    assert read_facts(repo).tag != with_untracked.tag


def test_ci_branch_comes_from_the_environment_on_a_detached_head(repo: Path, monkeypatch) -> None:
    git(repo, "checkout", "-q", "--detach")
    assert read_facts(repo).branch == "detached"
    monkeypatch.setenv("GITHUB_REF_NAME", "main")
    assert read_facts(repo).branch == "main"


def test_outside_a_repository_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not inside a git repository"):
        read_facts(tmp_path)


def test_a_repository_without_commits_says_so(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q", "-b", "main")
    with pytest.raises(UsageError, match="no commits yet"):
        read_facts(tmp_path)


def test_ignored_files_do_not_dirty_the_tree_but_staged_changes_do(repo: Path) -> None:
    (repo / ".gitignore").write_text("model.bin\n")
    git(repo, "add", ".gitignore")
    git(repo, "commit", "-qm", "ignore weights")
    (repo / "model.bin").write_bytes(b"\0" * 64)  # weights outside git, as they usually are
    assert not read_facts(repo).dirty
    (repo / "app.py").write_text("print('v2')\n")
    git(repo, "add", "app.py")
    staged = read_facts(repo)
    assert staged.dirty and staged.tag != staged.short


def test_facts_are_the_repository_s_from_a_subdirectory(repo: Path) -> None:
    (repo / "svc").mkdir()
    (repo / "svc" / "deploy.yaml").write_text("version: 1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "svc")
    facts = read_facts(repo / "svc")
    assert facts.sha == git(repo, "rev-parse", "HEAD") and not facts.dirty
    (repo / "app.py").write_text("print('v9')\n")  # a change outside the subdirectory still counts
    assert read_facts(repo / "svc").dirty


def test_sha256_repositories_are_tagged_by_their_commit(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("GITHUB_REF_NAME", raising=False)
    monkeypatch.delenv("GITHUB_HEAD_REF", raising=False)
    git(tmp_path, "init", "-q", "-b", "main", "--object-format=sha256")
    (tmp_path / "app.py").write_text("print('v1')\n")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "v1")
    facts = read_facts(tmp_path)
    assert facts.sha == git(tmp_path, "rev-parse", "HEAD") and len(facts.sha) == 64
    assert facts.tag == facts.sha[:12]


def test_file_names_and_contents_that_are_not_utf8_still_get_a_dirty_tag(repo: Path) -> None:
    (repo / "app.py").write_bytes("print('café')\n".encode("latin-1"))  # tracked, changed, latin-1
    first = read_facts(repo)
    assert first.dirty and "-dirty-" in first.tag
    (repo.joinpath(os.fsdecode(b"weights-\xff.bin"))).write_bytes(b"\x00\x01")  # untracked, odd name
    second = read_facts(repo)
    assert second.dirty and second.tag != first.tag


def test_a_change_inside_a_submodule_changes_the_dirty_tag(repo: Path, tmp_path_factory) -> None:
    lib = tmp_path_factory.mktemp("lib")
    git(lib, "init", "-q", "-b", "main")
    (lib / "tok.py").write_text("VOCAB = 1\n")
    git(lib, "add", "-A")
    git(lib, "commit", "-qm", "lib")
    git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(lib), "lib")
    git(repo, "commit", "-qm", "add lib")
    assert not read_facts(repo).dirty
    (repo / "lib" / "tok.py").write_text("VOCAB = 2\n")
    first = read_facts(repo)
    assert first.dirty
    (repo / "lib" / "tok.py").write_text("VOCAB = 3\n")
    assert read_facts(repo).tag != first.tag  # same superproject state, different submodule bytes
