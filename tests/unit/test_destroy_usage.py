"""`destroy` asked of the wrong thing says what to run instead, before touching anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.test_cli_basics import run_main

ROOT = Path(__file__).resolve().parents[2]


def test_destroy_on_a_local_environment_points_at_down(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["destroy", "-f", str(ROOT / "examples/quickstart/deploy.yaml"), "--env", "dev"],
                            capsys)
    assert code == 2
    assert "refusing to destroy in 'dev': it is not a preview environment" in err
    assert "deployctl down --env dev" in err
    assert "Missing option" not in err


def test_destroy_of_a_preview_without_a_name_asks_for_one(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["destroy", "-f", str(ROOT / "deploy.yaml"), "--env", "preview", "--yes"], capsys)
    assert code == 2
    assert "destroy removes one preview of 'preview': name it with --name" in err


def test_destroy_on_an_ecs_environment_without_previews_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["destroy", "-f", str(ROOT / "deploy.yaml"), "--env", "staging", "-n", "pr-1"], capsys)
    assert code == 2
    assert "not a preview environment" in err and "preview: true" in err and "deployctl down" not in err
