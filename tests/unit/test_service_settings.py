"""Service settings (pure): the circuit breaker's two forms, adopted service names, the diff of
an UpdateService request against a live service, adoption records and scale records."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from deployctl import adoption, releases, scale_record
from deployctl.adapters.ecs_gateway import TaskDefinition
from deployctl.app.history import merge
from deployctl.config import ResolvedConfig, load_env, read
from deployctl.releases import Release
from deployctl.render import ecs
from deployctl.render.ecs import Facts
from deployctl.service_diff import compare, lines, service_diff

CONFIG = """\
version: 1
app: shop
region: us-east-1
image: {repository: shop}
services:
  web: {port: 8000, load_balancer: {target_group: web-tg}}
deploy: {circuit_breaker: %s, alarms: [shop-5xx]}
environments:
  prod:
    target: ecs
    cluster: main
    network: {subnets: [subnet-2, subnet-1], security_groups: [sg-1]}
    roles: {execution: arn:aws:iam::123456789012:role/exec}
    services:
      web: {ecs_service: legacy-web, family: legacy-web-td, container: app}
"""


def _cfg(tmp_path: Path, breaker: str = "true") -> ResolvedConfig:
    path = tmp_path / "deploy.yaml"
    path.write_text(CONFIG % breaker, encoding="utf-8")
    return load_env(read(path, environ={}), "prod")


def test_circuit_breaker_forms(tmp_path: Path) -> None:
    def breaker(text: str) -> Any:
        cfg = _cfg(tmp_path, text)
        return ecs.update_service(cfg, "web", "f", Facts())["deploymentConfiguration"]["deploymentCircuitBreaker"]

    assert breaker("true") == {"enable": True, "rollback": True}
    assert breaker("false") == {"enable": False, "rollback": False}
    assert breaker("{enable: true, rollback: false}") == {"enable": True, "rollback": False}
    assert breaker("{rollback: false}") == {"enable": True, "rollback": False}


def test_adopted_names_go_into_every_request(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    facts = Facts(target_group_arns={"web-tg": "arn:tg/web"})
    td = ecs.task_definition(cfg, "web", "img", facts)
    assert td["family"] == "legacy-web-td"
    assert [c["name"] for c in td["containerDefinitions"]] == ["app"]  # type: ignore[attr-defined]
    update = ecs.update_service(cfg, "web", "legacy-web-td", facts)
    assert update["service"] == "legacy-web"
    assert update["loadBalancers"] == [{"targetGroupArn": "arn:tg/web", "containerName": "app", "containerPort": 8000}]
    assert ecs.create_service(cfg, "web", "legacy-web-td", facts)["serviceName"] == "legacy-web"
    # A preview copy never takes the fixed name (validate refuses it in preview environments).
    assert ecs.service_name(cfg, "web", "pr-1") != "legacy-web"
    assert ecs.family(cfg, "web", "pr-1") == "shop-prod-pr-1-web"


def _live(**kw: Any) -> dict[str, Any]:
    live: dict[str, Any] = {
        "status": "ACTIVE", "desiredCount": 1, "launchType": "FARGATE",
        "deploymentConfiguration": {"deploymentCircuitBreaker": {"enable": True, "rollback": False},
                                    "maximumPercent": 200, "minimumHealthyPercent": 100,
                                    "alarms": {"alarmNames": ["shop-5xx", "team-p99"], "enable": True,
                                               "rollback": True}},
        "networkConfiguration": {"awsvpcConfiguration": {"subnets": ["subnet-1", "subnet-2"],
                                                         "securityGroups": ["sg-1"], "assignPublicIp": "DISABLED"}},
        "loadBalancers": [{"targetGroupArn": "arn:tg/web", "containerName": "app", "containerPort": 8000}],
        "healthCheckGracePeriodSeconds": 0,
    }
    live.update(kw)
    return live


def test_diff_names_each_setting_and_warns_where_it_takes_something_away(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    request = ecs.update_service(cfg, "web", "f", Facts(target_group_arns={"web-tg": "arn:tg/web"}))
    changes = compare(request, _live())
    assert [c.text() for c in changes] == [
        "circuit breaker rollback: false → true",
        "deployment alarms: [shop-5xx, team-p99] → [shop-5xx]",
        "capacity providers: launch type FARGATE → [FARGATE weight 1 base 0]",
    ]
    assert changes[1].warning.startswith("deployment alarm team-p99 guards the live service and is not in "
                                         "deploy.yaml")
    # Subnet order is not a change; a different security group is.
    moved = _live(networkConfiguration={"awsvpcConfiguration": {"subnets": ["subnet-2", "subnet-1"],
                                                                "securityGroups": ["sg-9"]}})
    assert [c.key for c in compare(request, moved) if c.key.startswith("network")] == [
        "networkConfiguration.awsvpcConfiguration.securityGroups"]


def test_turning_breaker_rollback_off_is_said(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, "{enable: true, rollback: false}")
    request = ecs.update_service(cfg, "web", "f", Facts(target_group_arns={"web-tg": "arn:tg/web"}))
    live = _live(deploymentConfiguration={"deploymentCircuitBreaker": {"enable": True, "rollback": True},
                                          "alarms": {"alarmNames": ["shop-5xx"], "enable": True, "rollback": True}})
    (change,) = [c for c in compare(request, live) if "Breaker" in c.key]
    assert change.text() == "circuit breaker rollback: true → false"
    assert change.warning == "ECS will no longer roll a failed deployment back on its own"


def test_a_key_the_request_does_not_send_is_no_change() -> None:
    # Auto-scaled services: UpdateService carries no desiredCount, so ECS keeps the live one.
    assert compare({"taskDefinition": "f"}, _live(desiredCount=7)) == ()


def test_missing_service_and_text_lines() -> None:
    diff = service_diff("web", "legacy-web", {"desiredCount": 2}, None)
    assert diff.changed and lines(diff) == ["legacy-web: does not exist yet; the deploy creates it"]
    same = service_diff("web", "legacy-web", {"desiredCount": 1}, _live())
    assert not same.changed and lines(same) == ["legacy-web: no service setting changes"]


def _described(tags: dict[str, str] | None = None, family: str = "legacy-web") -> dict[str, Any]:
    return {"taskDefinition": {"taskDefinitionArn": f"arn:aws:ecs:us-east-1:1:task-definition/{family}:7",
                               "family": family, "revision": 7, "status": "ACTIVE",
                               "registeredAt": datetime(2026, 3, 1, 9, 30, tzinfo=UTC),
                               "registeredBy": "arn:aws:iam::1:user/ops",
                               "containerDefinitions": [{"name": "app", "image": "repo@sha256:abc"}]},
            "tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]}


def test_adoption_record_is_an_ordinary_succeeded_release() -> None:
    raw = _described()
    described = TaskDefinition.from_api(raw)
    assert adoption.needs_record(described)
    rid = adoption.release_id("20261207T115000Z-0123456789ab-9f3c", datetime(2026, 12, 7, 11, 50, tzinfo=UTC))
    assert rid == "20261207T115000Z-nosha-9f3c"
    tags = adoption.release_tags(described, release=rid, app="shop", env="prod", service="web",
                                 now=datetime(2026, 12, 7, tzinfo=UTC))
    rev = releases.revision_from(TaskDefinition.from_api(
        {**raw, "tags": [{"key": k, "value": v} for k, v in tags.items()]}))
    assert rev is not None
    (rel,) = releases.build([rev], app="shop", env="prod")
    assert (rel.id, rel.outcome, rel.kind, rel.started_at) == (rid, "succeeded", "deploy", "2026-03-01T09:30:00Z")
    assert rel.image_digest == "sha256:abc" and rel.services == ("web",) and rel.who == "arn:aws:iam::1:user/ops"
    assert not adoption.needs_record(TaskDefinition.from_api(
        {**raw, "tags": [{"key": "deployctl:release", "value": rid}]}))
    copy = adoption.copy_request(described, family="shop-prod-web", tags=tags)
    assert copy["family"] == "shop-prod-web" and "revision" not in copy and "registeredAt" not in copy
    assert copy["containerDefinitions"] == raw["taskDefinition"]["containerDefinitions"]


def test_scale_records_fill_a_ring_of_tags() -> None:
    tags: dict[str, str] = {"deployctl:app": "shop"}
    for i in range(scale_record.SLOTS + 2):
        new = scale_record.record_tags(app="shop", env="prod", service="web", tags=tags,
                                       at=f"2026120{i // 10}T1{i % 10}0000Z", before=i, after=i + 1, who="me@host")
        tags.update(new)
    found = scale_record.events("web", tags)
    assert len(found) == scale_record.SLOTS  # the two oldest were overwritten
    assert (found[0].before, found[-1].after) == (2, 12)
    assert found[-1].iso == "2026-12-01T11:00:00Z" and found[-1].who == "me@host"


def _rel(rid: str, started: str, kind: str = "deploy") -> Release:
    return Release(id=rid, app="a", env="e", outcome="succeeded", git_sha="", image_digest="", image="", who="",
                   started_at=started, finished_at=started, duration_s=None, kind=kind)


def test_history_puts_scales_between_the_releases_they_came_between() -> None:
    rels = [_rel("r2", "2026-03-02T00:00:00Z"), _rel("r1", "2026-03-01T00:00:00Z")]
    scales = [_rel("s0", "2026-02-01T00:00:00Z", "scale"), _rel("s3", "2026-03-03T00:00:00Z", "scale"),
              _rel("s1", "2026-03-01T12:00:00Z", "scale")]
    assert [r.id for r in merge(rels, scales)] == ["s3", "r2", "s1", "r1", "s0"]


def test_diff_and_scale_refuse_what_they_cannot_do_before_any_aws_call(tmp_path: Path) -> None:
    import pytest

    from deployctl.app import diff as diff_app
    from deployctl.app import scale as scale_app
    from deployctl.errors import UsageError

    path = tmp_path / "deploy.yaml"
    path.write_text("""\
version: 1
app: shop
region: us-east-1
image: {repository: shop}
services: {web: {port: 8000}}
environments:
  dev: {target: docker}
  pr:
    target: ecs
    preview: true
    cluster: main
    network: {subnets: [subnet-1]}
    roles: {execution: exec}
""", encoding="utf-8")
    loaded = read(path, environ={})
    dev, pr = load_env(loaded, "dev"), load_env(loaded, "pr")
    no_aws = object()  # any AWS call through it would raise AttributeError, not UsageError
    for call, cfg, says in ((lambda c: diff_app.diff(c, no_aws), dev, "deploys to docker"),
                            (lambda c: diff_app.diff(c, no_aws), pr, "is a preview environment"),
                            (lambda c: scale_app.plan(c, ["web=2"], no_aws), dev, "deploys to docker"),
                            (lambda c: scale_app.plan(c, ["web=2"], no_aws), pr, "is a preview environment")):
        with pytest.raises(UsageError, match=says):
            call(cfg)
