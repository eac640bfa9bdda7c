"""`before_deploy:` runs a one-off task with the NEW image before any service rolls; a failure
stops the deploy (exit 1) with nothing rolled. ECS rollouts are the rollout SIMULATION and the
one-off task is the one-off task SIMULATION (tests/simulation/one_off_tasks.py), both served by
moto over HTTP; the task's output goes through moto's CloudWatch Logs.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from deployctl.render import iam
from tests.integration.test_ecs_deploy import calls, deploy, first_deploy, load
from tests.integration.test_iam_coverage import denied, secret_arns, seen
from tests.simulation.one_off_tasks import Script
from tests.support.aws_world import API, CLUSTER, FAMILY_API, base_config
from tests.support.mid_rollout import when

MIGRATE = ["python", "manage.py", "migrate"]


def _doc(world: Any, **before: Any) -> dict[str, Any]:
    doc = base_config(world)
    doc["before_deploy"] = {"run": MIGRATE, "service": "api", "timeout": "30s", **before}
    return doc


def test_a_failing_before_deploy_stops_the_deploy_and_nothing_rolls(world: Any, sim: Any, one_off_tasks: Any,
                                                                    tmp_path: Path) -> None:
    one_off_tasks.script(Script(exit_code=0, lines=("no migrations to apply",)),
                         Script(exit_code=2, lines=("Applying 0042_add_index...", "psycopg.errors.LockNotAvailable",
                                                    "DATABASE_URL=postgres://app:s3cr3tpass@db/app")))
    cfg, ref1 = first_deploy(world, tmp_path, _doc(world))
    updates = calls(sim, "UpdateService")
    res = deploy(cfg, world.push("v2"))

    assert res.exit_code == 1, res.text
    assert "before_deploy failed" in res.message and "exited with code 2" in res.message
    assert "no service was updated" in res.message
    # Nothing rolled: no UpdateService (nor CreateService) after the first deploy's.
    assert calls(sim, "UpdateService") == updates == 0 and calls(sim, "CreateService") == 1
    assert world.service()["taskDefinition"].endswith(f"{FAMILY_API}:1")
    # The task ran the NEW revision (registered once, for this release), with the command override.
    req = one_off_tasks.requests[-1]
    assert req["taskDefinition"].endswith(f"{FAMILY_API}:2") and len(world.revisions()) == 2
    assert req["overrides"] == {"containerOverrides": [{"name": "api", "command": MIGRATE}]}
    td = world.c("ecs").describe_task_definition(taskDefinition=req["taskDefinition"])["taskDefinition"]
    assert td["containerDefinitions"][0]["image"] != ref1  # the new image
    # Same network and capacity as the service.
    assert req["networkConfiguration"]["awsvpcConfiguration"]["subnets"] == list(world.subnets)
    assert req["capacityProviderStrategy"] == [{"capacityProvider": "FARGATE", "weight": 1, "base": 0}]
    # Its output was streamed, redacted; the release it registered is recorded as failed.
    assert "before_deploy | psycopg.errors.LockNotAvailable" in res.text
    assert "s3cr3tpass" not in res.text
    tags = world.td_tags(req["taskDefinition"])
    assert tags["deployctl:outcome"] == "failed" and "exited with code 2" in tags["deployctl:outcome-detail"]
    assert "release" not in res.outputs


def test_a_passing_before_deploy_lets_the_same_revision_roll(world: Any, sim: Any, one_off_tasks: Any,
                                                             tmp_path: Path) -> None:
    one_off_tasks.script(Script(exit_code=0, lines=("Applying 0001_initial... OK",)))
    cfg = load(tmp_path, _doc(world))
    res = deploy(cfg, world.push("v1"))

    assert res.exit_code == 0, res.text
    (req,) = one_off_tasks.requests
    # One revision: before_deploy registered it and the service rolled out that same one.
    assert world.revisions() == [req["taskDefinition"]]
    assert world.service()["taskDefinition"] == req["taskDefinition"]
    assert world.td_tags(req["taskDefinition"])["deployctl:outcome"] == "succeeded"
    assert "before_deploy | Applying 0001_initial... OK" in res.text
    assert "recorded release" not in res.text  # its own revision is not an earlier deploy's to settle
    text = res.text
    assert text.index("before_deploy: succeeded") < text.index("creating service")


def test_an_unchanged_release_runs_before_deploy_on_the_live_revision(world: Any, sim: Any, one_off_tasks: Any,
                                                                      tmp_path: Path) -> None:
    one_off_tasks.script(Script(exit_code=0))
    cfg, ref = first_deploy(world, tmp_path, _doc(world))
    res = deploy(cfg, ref)
    assert res.exit_code == 0, res.text
    assert one_off_tasks.requests[-1]["taskDefinition"].endswith(f"{FAMILY_API}:1")
    assert len(world.revisions()) == 1 and "no change" in res.text


def test_a_before_deploy_that_never_starts_fails_with_the_reason(world: Any, sim: Any, one_off_tasks: Any,
                                                                 tmp_path: Path) -> None:
    one_off_tasks.script(Script(fail_to_start="ResourceInitializationError: unable to pull secrets or registry "
                                              "auth: AccessDeniedException"))
    cfg = load(tmp_path, _doc(world))
    res = deploy(cfg, world.push("v1"))
    assert res.exit_code == 1
    assert "stopped before api ran (TaskFailedToStart: ResourceInitializationError" in res.message
    assert calls(sim, "CreateService") == 0 and world.services() == {}


def test_a_before_deploy_over_its_time_limit_is_stopped(world: Any, sim: Any, one_off_tasks: Any,
                                                       tmp_path: Path) -> None:
    one_off_tasks.script(Script(exit_code=0, run_s=60))
    cfg = load(tmp_path, _doc(world, timeout="1s"))
    res = deploy(cfg, world.push("v1"))
    assert res.exit_code == 1
    assert "ran out of time and was stopped" in res.message
    assert calls(sim, "StopTask") == 1 and calls(sim, "CreateService") == 0
    (task,) = one_off_tasks.tasks.values()
    assert task.stop_code == "UserInitiated"


def test_the_task_of_a_before_deploy_is_the_one_service(world: Any, sim: Any, one_off_tasks: Any,
                                                        tmp_path: Path) -> None:
    """`service:` may be left out when there is one service."""
    one_off_tasks.script(Script(exit_code=0))
    doc = _doc(world)
    del doc["before_deploy"]["service"]
    res = deploy(load(tmp_path, doc), world.push("v1"))
    assert res.exit_code == 0, res.text
    assert one_off_tasks.requests[-1]["cluster"] == CLUSTER and API in world.services()


def test_the_ci_policy_allows_every_call_of_before_deploy(world: Any, sim: Any, one_off_tasks: Any,
                                                         tmp_path: Path) -> None:
    """Every API call of a deploy whose before_deploy fails once, over its time limit (StopTask),
    is allowed by `deployctl iam-policy`'s policy; without the one-off task statements it is not."""
    one_off_tasks.script(Script(exit_code=0, run_s=60))
    cfg = load(tmp_path, _doc(world, timeout="1s"))
    sim.calls.clear()
    res = deploy(cfg, world.push("v1"))
    assert res.exit_code == 1
    assert {"ecs:RunTask", "ecs:StopTask", "ecs:DescribeTasks", "logs:GetLogEvents"} <= seen(sim.calls)
    policy = iam.ci_policy(cfg, "123456789012")
    assert denied(policy, sim.calls, cfg, secret_arns(world.c("secretsmanager"))) == []
    without = {**policy, "Statement": [s for s in policy["Statement"]
                                       if s["Sid"] not in ("EcsOneOffTasks", "EcsStopOneOffTasks")]}
    assert any("ecs:RunTask" in d for d in denied(without, sim.calls, cfg, secret_arns(world.c("secretsmanager"))))


def test_an_update_with_before_deploy_records_only_its_own_outcome(world: Any, sim: Any, one_off_tasks: Any,
                                                                   tmp_path: Path) -> None:
    """The revision before_deploy registered is this release's, still in progress while the
    service rolls: it must not be settled as an earlier deploy's that ended unrecorded."""
    one_off_tasks.script(Script(exit_code=0))
    cfg, _ = first_deploy(world, tmp_path, _doc(world))
    res = deploy(cfg, world.push("v2"))
    assert res.exit_code == 0, res.text
    assert "recorded release" not in res.text and "rolled-back" not in res.text
    assert world.td_tags(f"{FAMILY_API}:2")["deployctl:outcome"] == "succeeded"
    assert world.service()["taskDefinition"].endswith(f"{FAMILY_API}:2") and len(world.revisions()) == 2


def test_ctrl_c_during_before_deploy_stops_the_task_and_rolls_nothing(world: Any, sim: Any, one_off_tasks: Any,
                                                                     tmp_path: Path) -> None:
    one_off_tasks.script(Script(exit_code=0, run_s=120, lines=("migrating...",)))
    cfg = load(tmp_path, _doc(world, timeout="5m"))
    # SIGINT once the task has been described as running (its output is in the log by then).
    t = when(lambda: calls(sim, "GetLogEvents") >= 1, lambda: os.kill(os.getpid(), signal.SIGINT))
    res = deploy(cfg, world.push("v1"), handle_signals=True)
    t.join()

    assert res.exit_code == 130 and res.status == "interrupted", res.text
    assert "its task was stopped; no service was updated" in res.message
    assert calls(sim, "StopTask") == 1 and calls(sim, "CreateService") == 0
    (task,) = one_off_tasks.tasks.values()
    assert task.stop_code == "UserInitiated"
    assert world.td_tags(world.revisions()[-1])["deployctl:outcome"] == "failed"
