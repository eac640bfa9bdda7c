"""docs/bootstrap.md's "Zero to staging", as a new user runs it: `deployctl init` in a small
FastAPI project, `bootstrap --env staging --yes` against moto server's CloudFormation (over
HTTP), then `run --env staging` to a healthy deploy, with nothing edited in between. ECS rollouts
are the SIMULATION (tests/simulation), change-set execution too (cfn_changesets).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.conftest import git
from tests.simulation import cfn_changesets
from tests.support.aws_world import QUICK_PHASES, ecr_push
from tests.support.release_project import Cli, cli

SIM_PHASES = QUICK_PHASES
APP = "chat-api"  # ecr_push pushes to the chat-api repository
STACK = f"deployctl-{APP}-staging"

MAIN_PY = """from fastapi import FastAPI

app = FastAPI()


@app.get("/health")
def health() -> dict:
    return {"ok": True}
"""


@pytest.fixture
def fresh(env: Any, sim: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str],
          monkeypatch: pytest.MonkeyPatch) -> Any:
    """A FastAPI project that has never seen deployctl, in its own git repository (the cwd)."""
    path = tmp_path / APP
    path.mkdir()
    (path / "main.py").write_text(MAIN_PY)
    (path / "requirements.txt").write_text("fastapi==0.115.6\nuvicorn==0.32.1\n")
    git(path, "init", "-q", "-b", "main")
    monkeypatch.chdir(path)

    class P:
        root = path
        file = str(path / "deploy.yaml")

        def cli(self, *args: str) -> Cli:
            return cli(capsys, *args)

        def c(self, name: str) -> Any:
            return env.client(name)

    with cfn_changesets.installed():
        yield P()


def test_init_then_bootstrap_then_the_first_staging_deploy(fresh: Any) -> None:
    init = fresh.cli("init", "--yes", "--app", APP)
    assert init.code == 0, init.text
    assert "deployctl bootstrap --env staging" in init.out
    envs = yaml.safe_load(Path(fresh.file).read_text())["environments"]
    assert envs["staging"]["from_stack"] == STACK and "network" not in envs["staging"]
    git(fresh.root, "add", "-A")
    git(fresh.root, "commit", "-qm", "deployctl init")

    # Before bootstrap, plan still works: it shows the stack's outputs as placeholders and says so.
    early = fresh.cli("plan", "--env", "staging", "--json")
    assert early.code == 0, early.text
    assert f"stack {STACK} (environments.staging.from_stack) does not exist yet" in early.err
    assert early.json()["services"]["api"]["create_service"]["cluster"] == f"<Cluster of {STACK}>"

    boot = fresh.cli("bootstrap", "--env", "staging", "--yes")
    assert boot.code == 0, boot.text
    assert "+ AWS::EC2::VPC" in boot.out and "+ AWS::ElasticLoadBalancingV2::LoadBalancer" in boot.out
    assert "Next: deployctl run --env staging" in boot.out
    outputs = {o["OutputKey"]: o["OutputValue"] for o in
               fresh.c("cloudformation").describe_stacks(StackName=STACK)["Stacks"][0]["Outputs"]}

    run = fresh.cli("run", "--env", "staging", "--image", ecr_push(fresh.c("ecr"), "v1"))
    assert run.code == 0, run.text
    svc = fresh.c("ecs").describe_services(cluster=outputs["Cluster"],
                                          services=[f"{APP}-staging-api"])["services"][0]
    assert svc["runningCount"] == svc["desiredCount"] == 2
    assert svc["loadBalancers"][0]["targetGroupArn"] == outputs["TargetGroupApi"]
    net = svc["networkConfiguration"]["awsvpcConfiguration"]
    assert net["subnets"] == outputs["Subnets"].split(",") and net["assignPublicIp"] == "ENABLED"

    # A preview copy runs in staging's cluster and network, never in staging's target group.
    preview = fresh.cli("plan", "--env", "preview", "--name", "pr-1", "--json")
    assert preview.code == 0, preview.text
    request = preview.json()["services"]["api"]["create_service"]
    assert request["cluster"] == outputs["Cluster"] and not request.get("loadBalancers")
    assert request["networkConfiguration"]["awsvpcConfiguration"]["subnets"] == outputs["Subnets"].split(",")


def test_bootstrap_refuses_placeholder_ids_naming_the_key(fresh: Any) -> None:
    # A deploy.yaml as `init` used to write it: example ids with TODO comments.
    doc = {
        "version": 1, "app": APP, "region": "us-east-1",
        "image": {"repository": APP, "registry": "ecr"},
        "services": {"api": {"port": 8000, "health": {"path": "/health"}}},
        "environments": {"staging": {
            "target": "ecs", "cluster": f"{APP}-staging",
            "network": {"subnets": ["subnet-0123456789abcdef0"], "security_groups": ["sg-0123456789abcdef0"]},
            "roles": {"execution": f"arn:aws:iam::123456789012:role/{APP}-execution"}}},
    }
    Path(fresh.file).write_text(yaml.safe_dump(doc, sort_keys=False))

    for extra in ((), ("--plan",)):
        res = fresh.cli("bootstrap", "--env", "staging", "--yes", *extra)
        assert res.code == 2, res.text
        assert "environments.staging.network.subnets: subnet-0123456789abcdef0" in res.err
        assert "environments.staging.network.security_groups: sg-0123456789abcdef0" in res.err
        assert f"from_stack: {STACK}" in res.err
    assert fresh.c("cloudformation").list_stacks()["StackSummaries"] == []
