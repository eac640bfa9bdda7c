"""`deployctl run` when a service's deploy errors out, through the CLI (moto + rollout SIMULATION):
the release is recorded as failed, the run exits non-zero and the deploy lock is released.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from deployctl import diagnose, lock
from deployctl.adapters import aws as awsa
from tests.integration.conftest import git
from tests.integration.test_ecs_deploy import CLUSTER, WORKER
from tests.integration.test_releases import FAMILY_STAGING, RELEASE_PHASES, Project, td

SIM_PHASES = RELEASE_PHASES


def lock_item(p: Project) -> Any:
    db = p.world.c("dynamodb")
    return db.get_item(TableName=lock.DEFAULT_TABLE, Key={"pk": {"S": "chat-api/staging"}},
                       ConsistentRead=True).get("Item")


def test_update_service_throttled_past_retries_records_a_failed_release(project: Project, sim: Any) -> None:  # noqa: F811
    _, first = project.deployed("staging", "v1")
    # Every attempt botocore makes is throttled.
    sim.throttle("UpdateService", times=awsa.DEFAULT_ATTEMPTS)
    res = project.run("staging", project.world.push("v2"))

    assert res.code == 1, res.text
    assert len(sim.throttled_calls) == awsa.DEFAULT_ATTEMPTS
    assert "Traceback" not in res.text and "ThrottlingException" in res.text
    newest, older = project.history("staging")[:2]
    assert newest["outcome"] == "failed" and older["id"] == first
    _, tags = td(project.world, f"{FAMILY_STAGING}:2")
    assert tags["deployctl:outcome"] == "failed"
    assert lock_item(project) is None
    # The next deploy goes through and the environment is promotable again.
    again = project.run("staging", project.world.push("v3"))
    assert again.code == 0, again.text
    assert project.history("staging")[0]["outcome"] == "succeeded"


def test_an_unexpected_error_in_one_services_thread_exits_1_and_releases_the_lock(
        project: Project, sim: Any, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    doc = yaml.safe_load((project.path / "deploy.yaml").read_text())
    doc["services"]["worker"] = {"command": ["python", "-m", "worker"], "cpu": 512, "memory": 1024,
                                 "count": 1, "secrets": {"OPENAI_API_KEY": "chat-api/openai-key"}}
    (project.path / "deploy.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    git(project.path, "commit", "-qam", "worker")
    project.deployed("staging", "v1")
    sim.script(WORKER, "tasks_fail_to_start", cluster=CLUSTER)

    def boom(**facts: Any) -> list[Any]:
        raise RuntimeError("unexpected bug while diagnosing")

    monkeypatch.setattr(diagnose, "diagnose", boom)  # a bug in the failed service's diagnosis
    res = project.run("staging", project.world.push("v2"))

    assert res.code == 1, res.text
    assert "worker: unexpected error: RuntimeError: unexpected bug while diagnosing" in res.text
    assert lock_item(project) is None
    newest = project.history("staging")[0]
    assert newest["outcome"] == "failed"
