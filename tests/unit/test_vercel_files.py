"""Which frontend files go up to Vercel: .gitignore, .vercelignore, Vercel's defaults, and the
secret-file refusal shared with Docker build contexts."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from deployctl.targets import vercel_files
from deployctl.targets.vercel_files import FrontendSecretsRefused


def tree(root: Path, files: dict[str, str]) -> Path:
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return root


def paths(root: Path) -> list[str]:
    return [p for p, _, _ in vercel_files.list_files(root)]


def test_defaults_gitignore_and_vercelignore(tmp_path: Path) -> None:
    tree(tmp_path, {
        "package.json": "{}", "app/page.tsx": "x", "node_modules/react/index.js": "x", ".next/cache/a": "x",
        ".git/HEAD": "ref", ".vercel/project.json": "{}", ".env.local": "A=1",
        ".gitignore": "coverage/\n*.log\n!keep.log\n/build\n", "coverage/lcov.info": "x", "debug.log": "x",
        "keep.log": "x", "build/out.js": "x", "src/build/ok.js": "x",
        ".vercelignore": "# drafts\ndocs/**/*.md\n", "docs/a/b.md": "x", "docs/a/b.txt": "x",
    })
    assert paths(tmp_path) == [".vercelignore", "app/page.tsx", "docs/a/b.txt", "keep.log", "package.json",
                               "src/build/ok.js"]


def test_gitignore_files_count_as_git_reads_them_from_the_repository_root(tmp_path: Path) -> None:
    tree(tmp_path, {
        ".git/HEAD": "ref: refs/heads/main",
        ".gitignore": "web/private/\n*.bak\n/top-only.txt\n",  # paths relative to the repository root
        "web/.gitignore": "local/\n",
        "web/package.json": "{}", "web/private/notes.txt": "x", "web/app/old.bak": "x", "web/top-only.txt": "x",
        "web/local/x.js": "x",
        "web/sub/.gitignore": "*.tmp\n!keep.tmp\n/only-here.js\n", "web/sub/a.tmp": "x", "web/sub/keep.tmp": "x",
        "web/sub/only-here.js": "x", "web/sub/deeper/only-here.js": "x", "web/sub/page.tsx": "x",
        "web/other/a.tmp": "x",
        # Vercel reads the .vercelignore at the root of the deployed directory only.
        "web/.vercelignore": "drafts/\n", "web/drafts/a.md": "x", "web/sub/.vercelignore": "page.tsx\n",
    })
    assert paths(tmp_path / "web") == [".vercelignore", "other/a.tmp", "package.json", "sub/.vercelignore",
                                       "sub/deeper/only-here.js", "sub/keep.tmp", "sub/page.tsx", "top-only.txt"]


def test_a_git_ignored_frontend_directory_uploads_nothing(tmp_path: Path) -> None:
    tree(tmp_path, {".git/HEAD": "ref", ".gitignore": "web/\n", "web/package.json": "{}"})
    with pytest.raises(vercel_files.UsageError, match="no files to upload"):
        vercel_files.collect(tmp_path / "web")


def test_a_secret_file_is_refused_naming_the_ignore_line(tmp_path: Path) -> None:
    tree(tmp_path, {"package.json": "{}", ".env": "SECRET=1", "certs/server.key": "x"})
    with pytest.raises(FrontendSecretsRefused) as err:
        vercel_files.collect(tmp_path)
    assert err.value.exit_code == 2
    assert ".env (" in err.value.message and "add `.env` to .vercelignore" in err.value.message
    assert "certs/server.key" in err.value.message and "SECRET=1" not in str(err.value)


def test_a_credential_inside_an_ordinary_file_is_refused(tmp_path: Path) -> None:
    tree(tmp_path, {"package.json": "{}", "lib/config.ts": "const k = 'ghp_" + "a" * 36 + "'\n"})
    with pytest.raises(FrontendSecretsRefused, match="lib/config.ts"):
        vercel_files.collect(tmp_path)


def test_allow_secret_files_lets_one_through(tmp_path: Path) -> None:
    tree(tmp_path, {"package.json": "{}", "fixtures/test.key": "x"})
    files = vercel_files.collect(tmp_path, ["fixtures/test.key"])
    by_path = {f.path: f for f in files}
    assert by_path["fixtures/test.key"].sha == hashlib.sha1(b"x").hexdigest()
    assert by_path["package.json"].as_json() == {"file": "package.json", "sha": hashlib.sha1(b"{}").hexdigest(),
                                                 "size": 2}


def test_a_missing_or_empty_directory_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(vercel_files.UsageError, match="does not exist"):
        vercel_files.collect(tmp_path / "nope")
    tree(tmp_path, {".vercelignore": "*\n"})
    with pytest.raises(vercel_files.UsageError, match="no files to upload"):
        vercel_files.collect(tmp_path)


def test_the_example_frontend_uploads_its_sources_only() -> None:
    root = Path(__file__).resolve().parents[2] / "examples" / "chat-web"
    files = vercel_files.collect(root)
    # .gitignore is one of Vercel's default ignores; README.md is in .vercelignore.
    assert [f.path for f in files] == [".env.example", ".vercelignore", "app/healthz/route.js",
                                       "app/layout.js", "app/page.js", "next.config.mjs", "package.json"]
