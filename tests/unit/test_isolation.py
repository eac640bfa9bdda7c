"""Environments never overwrite each other: names hold the environment, validate refuses configs
where two environments (or preview copies) could meet on one ECS service, task family, alarm or
target group, and `promote dev dev` suggests a config validate accepts."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from deployctl.config import load_env, read, validate_all
from deployctl.errors import ConfigError
from deployctl.lock import lock_key
from deployctl.render import ecs
from deployctl.render.monitoring import alarms
from tests.unit.test_cli_basics import run_main

ROOT = Path(__file__).resolve().parents[2]
ROLES = {"execution": "arn:aws:iam::123456789012:role/exec"}
NET = {"subnets": ["subnet-1"]}


def env(cluster: str = "shared", **extra: object) -> dict[str, object]:
    return {"target": "ecs", "cluster": cluster, "network": NET, "roles": ROLES, **extra}


def doc(envs: dict[str, object], **top: object) -> dict[str, object]:
    return {"version": 1, "app": "x", "region": "us-east-1", "image": {"repository": "x"},
            "services": {"api": {"port": 8000, "load_balancer": {"target_group": "x-tg"}},
                         "worker": {"command": ["w"]}},
            **top, "environments": envs}


def write(tmp_path: Path, data: dict[str, object]) -> Path:
    path = tmp_path / "deploy.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def problems(tmp_path: Path, data: dict[str, object]) -> list[str]:
    with pytest.raises(ConfigError) as err:
        validate_all(read(write(tmp_path, data), {}))
    return [f"{p.line}:{p.col} {p.path}: {p.message}" for p in err.value.problems]


def line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


# -- names ---------------------------------------------------------------------------------


def test_staging_and_prod_on_one_cluster_share_no_name(tmp_path: Path) -> None:
    data = doc({"staging": env(), "prod": env(services={"api": {"load_balancer": {"target_group": "x-prod-tg"}}})},
               monitoring={"load_balancer": "alb", "error_rate": 2, "latency": {"p99": "5s"}})
    loaded = read(write(tmp_path, data), {})
    envs = validate_all(loaded)
    staging, prod = envs["staging"], envs["prod"]
    for svc in ("api", "worker"):
        assert ecs.service_name(staging, svc) == f"x-staging-{svc}"
        assert ecs.service_name(prod, svc) == f"x-prod-{svc}"
        assert ecs.family(staging, svc) != ecs.family(prod, svc)
    assert ecs.log_group(staging) != ecs.log_group(prod)
    assert lock_key(staging.app, staging.env_name) != lock_key(prod.app, prod.env_name)
    assert staging.monitoring and prod.monitoring
    staging_alarms = {a.name for a in alarms(staging, staging.monitoring)}
    prod_alarms = {a.name for a in alarms(prod, prod.monitoring)}
    assert staging_alarms and prod_alarms and not staging_alarms & prod_alarms
    # every resource is tagged with its environment (what preflight and destroy check)
    tags = {t["key"]: t["value"] for t in ecs.tags(prod, "api", ecs.Facts())}
    assert tags["deployctl:env"] == "prod" and tags["deployctl:app"] == "x"


def test_preview_copies_hold_the_environment_and_the_name(tmp_path: Path) -> None:
    data = doc({"staging": env(), "preview": env(preview=True, services={"api": {"load_balancer": None}})})
    cfg = load_env(read(write(tmp_path, data), {}), "preview")
    assert ecs.service_name(cfg, "api", "pr-7") == "x-preview-pr-7-api"
    assert ecs.family(cfg, "api", "pr-7") == "x-preview-pr-7-api"


def test_two_environments_resolving_to_one_service_are_refused_at_the_template(tmp_path: Path) -> None:
    data = doc({"staging": env(), "prod": env(deploy={"service_name": "{app}-{service}"},
                                              services={"api": {"load_balancer": {"target_group": "p"}}})},
               deploy={"service_name": "{app}-{service}"})
    found = problems(tmp_path, data)
    path = tmp_path / "deploy.yaml"
    line = [i for i, text in enumerate(path.read_text().splitlines(), 1) if "service_name" in text][-1]
    assert len(found) == 2, found  # api and worker
    assert found[0].startswith(f"{line}:") and "environments.prod.deploy.service_name" in found[0]
    assert "service api of environment 'prod' and service api of environment 'staging' can both get the " \
           "ECS service name 'x-api' in cluster shared (us-east-1)" in found[0]


def test_the_cli_says_file_line_col_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, doc({"staging": env(), "prod": env(services={"api": {"load_balancer": {
        "target_group": "p"}}})}, deploy={"service_name": "{app}-{service}"}))
    code, _, err = run_main(["validate", "-f", str(path)], capsys)
    assert code == 2
    assert re.search(rf"{re.escape(str(path))}:{line_of(path, 'prod:')}:\d+: environments\.prod: service api of "
                     r"environment 'prod' and service api of environment 'staging' can both get the ECS service "
                     r"name 'x-api'", err), err


def test_keeping_old_names_is_fine_when_each_environment_has_its_own_cluster(tmp_path: Path) -> None:
    data = doc({"staging": env("ai-staging"), "prod": env("ai-prod", services={"api": {"load_balancer": {
        "target_group": "x-prod-tg"}}}),
        "preview": env("ai-staging", preview=True, deploy={"service_name": "{app}-{name}-{service}"},
                       services={"api": {"load_balancer": None}})},
        deploy={"service_name": "{app}-{service}"})
    envs = validate_all(read(write(tmp_path, data), {}))
    assert ecs.service_name(envs["staging"], "api") == "x-api" == ecs.service_name(envs["prod"], "api")
    assert ecs.service_name(envs["preview"], "api", "pr-1") == "x-pr-1-api"
    # families stay per environment whatever the service names are
    assert ecs.family(envs["staging"], "api") == "x-staging-api" and ecs.family(envs["prod"], "api") == "x-prod-api"


def test_an_environment_named_like_a_preview_copy_is_refused(tmp_path: Path) -> None:
    # env `preview-x` and copy `x` of preview env `preview`: both x-preview-x-api
    data = doc({"preview": env(preview=True, services={"api": {"load_balancer": None}}),
                "preview-x": env(services={"api": {"load_balancer": None}})})
    found = problems(tmp_path, data)
    assert any("service api of environment 'preview-x' and service api of environment 'preview' (a preview "
               "copy) can both get the ECS service name 'x-preview-x-api'" in p for p in found), found
    assert any("task-definition family 'x-preview-x-api'" in p for p in found), found


def test_preview_copies_of_one_environment_cannot_meet(tmp_path: Path) -> None:
    # copy `a` of service `b-api` and copy `a-b` of service `api`: both x-p-a-b-api
    data = doc({"p": env(preview=True, services={"api": {"load_balancer": None}})})
    data["services"]["b-api"] = {"command": ["b"]}  # type: ignore[index]
    found = problems(tmp_path, data)
    assert any("can both get the ECS service name 'x-p-" in p and "-b-api'" in p for p in found), found


def test_a_preview_template_needs_its_name(tmp_path: Path) -> None:
    data = doc({"staging": env("a"), "preview": env("b", preview=True, services={"api": {"load_balancer": None}})},
               deploy={"service_name": "{app}-{service}"})
    found = problems(tmp_path, data)
    assert any(p.startswith(f"{line_of(tmp_path / 'deploy.yaml', 'preview:')}:") and
               "has no {name}: every preview copy of 'preview' would deploy to the same ECS services" in p
               for p in found), found


def test_service_name_template_is_checked(tmp_path: Path) -> None:
    for template, message in (("{app}-{env}", "must contain {service}"), ("{app}-{svc}", "unknown placeholder {svc}"),
                              ("{app}.{service}", "valid ECS service name"), ("{app}-{service", "unbalanced")):
        found = problems(tmp_path, doc({"staging": env()}, deploy={"service_name": template}))
        assert any("deploy.service_name" in p and message in p for p in found), (template, found)


def test_same_family_in_one_region_is_refused_even_on_two_clusters(tmp_path: Path) -> None:
    # env `a` service `b-c` and env `a-b` service `c`: both x-a-b-c
    data = doc({"a": env("one"), "a-b": env("two")})
    data["services"] = {"b-c": {"command": ["w"]}, "c": {"command": ["w"]}}
    found = problems(tmp_path, data)
    assert any("can both get the task-definition family 'x-a-b-c' in us-east-1" in p for p in found), found
    assert not any("ECS service name" in p for p in found), found  # different clusters


# -- target groups ---------------------------------------------------------------------------


def test_reference_deploy_yaml_gives_prod_its_own_target_group() -> None:
    envs = validate_all(read(ROOT / "deploy.yaml", {}))
    groups = {n: c.services["api"].load_balancer.target_group for n, c in envs.items()
              if c.environment.target == "ecs" and c.services["api"].load_balancer}
    assert groups["staging"] != groups["prod"]


def test_a_target_group_inherited_by_two_environments_is_refused(tmp_path: Path) -> None:
    found = problems(tmp_path, doc({"staging": env("a"), "prod": env("b")}))
    prod_line = line_of(tmp_path / "deploy.yaml", "prod:")
    assert found == [f"{prod_line}:3 environments.prod: service api of environment 'prod' uses target group "
                     "x-tg, as service api of environment 'staging' does: status and rollouts would count each "
                     "other's targets, and traffic would go to both"]


def test_sharing_a_target_group_must_be_said_by_every_user(tmp_path: Path) -> None:
    shared = {"api": {"load_balancer": {"target_group": "x-tg", "shared": True}}}
    assert validate_all(read(write(tmp_path, doc({"staging": env("a", services=shared),
                                                  "prod": env("b", services=shared)})), {}))
    found = problems(tmp_path, doc({"staging": env("a", services=shared), "prod": env("b")}))
    assert len(found) == 1 and "environments.prod" in found[0], found
    # an ARN and a name are the same group
    arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/x-tg/0123456789abcdef"
    found = problems(tmp_path, doc({"staging": env("a"), "prod": env("b", services={"api": {
        "load_balancer": {"target_group": arn}}})}))
    assert any("environments.prod.services.api.load_balancer.target_group" in p for p in found), found


def test_preview_copies_share_a_target_group_only_when_told(tmp_path: Path) -> None:
    found = problems(tmp_path, doc({"preview": env(preview=True)}))
    assert found and "every preview copy would register in it" in found[0]
    ok = doc({"preview": env(preview=True, services={"api": {"load_balancer": {"shared": True}}})})
    assert validate_all(read(write(tmp_path, ok), {}))


# -- the name-pattern matcher ----------------------------------------------------------------


def p(text: str) -> tuple[str | None, ...]:
    from deployctl.config.isolation import NAME

    return tuple(NAME if c == "*" else c for c in text)


@pytest.mark.parametrize(("a", "b", "example"), [
    ("x-preview-*-api", "x-preview-x-api", "x-preview-x-api"),
    ("x-*-api", "x-staging-api", "x-staging-api"),
    ("x-p-*-api", "x-p-*-b-api", None),  # found below: the name may hold the "-b"
    ("x-*-api", "x-*-worker", None),
    ("x-staging-api", "x-prod-api", None),
    ("x-*-api", "x--api", None),  # a preview name is never empty
    ("x-*-api", "x-" + "a" * 21 + "-api", None),  # at most 20 characters
    ("x-*-api", "x-pr--api", None),  # and never ends with '-'
])
def test_overlap(a: str, b: str, example: str | None) -> None:
    from deployctl.config.isolation import overlap

    got = overlap(p(a), p(b))
    if a == "x-p-*-api":
        assert got is not None and got.endswith("-b-api")
        return
    assert got == example


def test_isolation_check_is_not_quadratic_in_the_number_of_services(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Counted, not timed: the exact pairwise check (`overlap`, a product-automaton search) is
    the costly step; comparing all pairs of 4,500 names took minutes. The candidates come from
    an index of name tails, so the checks grow with the number of services, not its square.
    (The wall time is measured in benchmarks/config_load.py.)"""
    from deployctl.config import isolation

    checks = 0
    exact = isolation.overlap

    def counted(a: Any, b: Any) -> str | None:
        nonlocal checks
        checks += 1
        return exact(a, b)

    monkeypatch.setattr(isolation, "overlap", counted)
    per_size = {}
    for n in (300, 1500):
        data = doc({"p": env(preview=True), "staging": env(), "prod": env()})
        data["services"] = {f"svc{i}": {"command": ["w"]} for i in range(n)}
        (tmp_path / str(n)).mkdir()
        loaded = read(write(tmp_path / str(n), data), {})
        envs = validate_all(loaded)
        checks = 0
        assert isolation.check(loaded.doc, loaded.data, envs) == []
        per_size[n] = checks
    names = 3 * 1500  # three environments' copies of every service
    assert per_size[1500] <= 4 * names, per_size  # all pairs would be ~10 million
    assert per_size[1500] <= 6 * per_size[300], per_size  # 5x the services, about 5x the checks
