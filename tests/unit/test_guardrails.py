"""Cost guardrails: the estimate, every limit, and the refusal in `plan` and `run` (exit 2)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from deployctl.adapters.git import GitFacts
from deployctl.config import load_env, read
from deployctl.plan import guardrail_violations, make_plan

BASE = textwrap.dedent("""
    version: 1
    app: chat
    region: us-east-1
    image: {repository: chat, registry: "127.0.0.1:5000"}
    stages: {lint: {run: ["true"]}}
    services:
      api: {port: 8000, cpu: 1024, memory: 8192, count: 2, autoscaling: {min: 2, max: 6}}
      worker: {cpu: 512, memory: 2048, spot: true, count: 1}
    environments:
      staging:
        target: ecs
        cluster: ai
        network: {subnets: [subnet-1]}
        roles: {execution: "arn:aws:iam::123456789012:role/exec"}
        guardrails: GUARDRAILS
""")


def plan_for(tmp_path: Path, guardrails: str):
    (tmp_path / "deploy.yaml").write_text(BASE.replace("GUARDRAILS", guardrails))
    cfg = load_env(read(tmp_path / "deploy.yaml", environ={}), "staging")
    return make_plan(cfg, GitFacts("a" * 40, "main"))


def test_estimate_uses_the_published_prices_spot_discount_and_autoscaling_max(tmp_path):
    plan = plan_for(tmp_path, "{}")
    # api: 1 vCPU + 8 GB at $0.04048 and $0.004445 per hour, 730 h; worker: Spot, 70 % off.
    api_one = (0.04048 + 8 * 0.004445) * 730
    worker_one = (0.5 * 0.04048 + 2 * 0.004445) * 730 * 0.3
    assert plan.cost.monthly_usd == pytest.approx(round(2 * api_one + worker_one, 2))
    assert plan.cost.monthly_usd_max == pytest.approx(round(6 * api_one + worker_one, 2))


def test_each_limit_is_checked_against_the_worst_case(tmp_path):
    assert guardrail_violations(plan_for(tmp_path, "{max_monthly_usd: 10000, max_tasks: 7, max_memory: 8192}")) == []
    over = guardrail_violations(plan_for(tmp_path, "{max_monthly_usd: 200, max_tasks: 6, max_memory: 4096}"))
    assert len(over) == 3
    assert over[0].startswith("estimated $") and "max_monthly_usd $200.00" in over[0]
    assert over[1] == "7 tasks is over the limit max_tasks 6"  # autoscaling max 6 + 1 worker
    assert over[2] == "service api memory 8192 MiB is over the limit max_memory 4096 MiB"


def _git(path: Path) -> None:
    subprocess.run(["git", "init", "-q"], cwd=path, check=True)
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "x"],
                   cwd=path, check=True)


@pytest.mark.parametrize("command", [["plan"], ["run", "--image", "127.0.0.1:5000/chat@sha256:" + "0" * 64]])
def test_plan_and_run_refuse_an_over_budget_plan_with_exit_2_before_touching_anything(tmp_path, command):
    plan_for(tmp_path, "{max_tasks: 3}")
    _git(tmp_path)
    out = subprocess.run([sys.executable, "-m", "deployctl", *command, "--env", "staging"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60,
                         # Nothing may be contacted: an unreachable AWS endpoint proves it.
                         env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
                              "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"})
    assert out.returncode == 2, out.stdout + out.stderr
    assert "7 tasks is over the limit max_tasks 3" in out.stderr
    assert "Traceback" not in out.stderr


def test_every_deploying_run_prints_the_monthly_estimate(tmp_path):
    plan_for(tmp_path, "{}")
    _git(tmp_path)
    # The deploy itself fails (no AWS here); the estimate is printed before it starts.
    out = subprocess.run([sys.executable, "-m", "deployctl", "run", "--env", "staging", "--only", "deploy"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
                              "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_MAX_ATTEMPTS": "1"})
    assert out.returncode == 1, out.stdout + out.stderr
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("estimated Fargate cost: $"))
    assert "for 3 task(s), up to $" in line and "(on-demand us-east-1 prices of 2026-03)" in line
    assert "Traceback" not in out.stdout + out.stderr
