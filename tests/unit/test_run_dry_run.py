"""`run --dry-run` is `plan` plus the stage list (issue 12 §10): it refuses a bad `--image` the way
`plan` does (exit 2) and needs no AWS credentials, showing `<account-id>` where `plan` does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def no_aws_env() -> dict[str, str]:
    """This environment, with every AWS credential source removed. Any AWS call would fail
    (no credentials), and an endpoint on a closed port makes sure none gets far if it tried."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "GITHUB_ACTIONS"}
    env.update({"PYTHONPATH": str(ROOT), "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE":
                "/nonexistent", "AWS_EC2_METADATA_DISABLED": "true", "AWS_ENDPOINT_URL": "http://127.0.0.1:9"})
    return env


def deployctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "deployctl", *args, "-f", str(ROOT / "deploy.yaml")], cwd=ROOT,
                          env=no_aws_env(), capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("image", ["", "not a ref", "   "])
def test_dry_run_refuses_a_bad_image_like_plan(image: str) -> None:
    plan = deployctl("plan", "--env", "staging", "--image", image)
    dry = deployctl("run", "--env", "staging", "--dry-run", "--image", image)
    assert plan.returncode == 2, plan.stderr
    assert dry.returncode == 2, dry.stdout + dry.stderr
    assert dry.stderr == plan.stderr
    assert "would run" not in dry.stdout


def test_dry_run_of_an_ecr_environment_needs_no_aws_credentials() -> None:
    plan = deployctl("plan", "--env", "staging", "--json")
    dry = deployctl("run", "--env", "staging", "--dry-run", "--json")
    assert plan.returncode == 0, plan.stderr
    assert dry.returncode == 0, dry.stdout + dry.stderr
    planned, dried = json.loads(plan.stdout), json.loads(dry.stdout)
    assert "<account-id>.dkr.ecr." in planned["image"]["ref"]
    assert dried["image"] == planned["image"]
    assert dried["services"] == planned["services"]
    assert dried["run"] == {"stages": ["lint", "test", "build", "push", "deploy"], "dry_run": True}
