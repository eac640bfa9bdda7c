"""deploy.yaml loading: overlays, interpolation, units, and the config/plan commands' JSON."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from deployctl.config import ResolvedConfig, deep_merge, load_env, read, validate_all
from deployctl.config.interpolate import interpolate
from deployctl.config.units import format_duration, format_size, parse_duration, parse_size
from deployctl.errors import ConfigError, UsageError
from tests.support import cli as in_process

ROOT = Path(__file__).resolve().parents[2]

BASE = """\
version: 1
app: chat-api
region: us-east-1
image: {repository: chat-api, build_args: {PYTHON_VERSION: "3.11"}}
services:
  api:
    port: 8000
    cpu: 1024
    memory: 4096
    health: {path: /health/ready, start_period: 60s, interval: 10s}
    env: {LOG_LEVEL: info, MODEL_NAME: small-chat}
    secrets: {OPENAI_API_KEY: chat-api/openai-key}
    after: [worker]
  worker:
    command: [python, -m, worker]
    cpu: 512
    memory: 2048
deploy: {alarms: [chat-api-5xx, chat-api-latency], timeout: 15m}
environments:
"""


def load(tmp_path: Path, text: str, env: str, environ: dict[str, str] | None = None) -> ResolvedConfig:
    path = tmp_path / "deploy.yaml"
    path.write_text(text, encoding="utf-8")
    return load_env(read(path, environ or {}), env)


# -- overlays --------------------------------------------------------------------------------

def test_deep_merge_rules() -> None:
    base = {"a": {"x": 1, "y": [1, 2], "z": {"k": "v"}}, "b": 2, "keep": True}
    overlay = {"a": {"y": [3], "z": {"n": "m"}, "x": None}, "b": 5, "new": {"p": 1, "q": None}}
    merged = deep_merge(base, overlay)
    assert merged == {
        "a": {"y": [3], "z": {"k": "v", "n": "m"}},  # maps merge, lists replace, null removes
        "b": 5,  # scalars replace
        "keep": True,  # untouched keys stay
        "new": {"p": 1},  # a null inside a map the base never had is simply not set
    }
    assert base == {"a": {"x": 1, "y": [1, 2], "z": {"k": "v"}}, "b": 2, "keep": True}  # not mutated


def test_overlay_maps_merge_lists_replace_null_removes(tmp_path: Path) -> None:
    text = BASE + """\
  dev: {target: docker}
  prod:
    target: docker
    image: {build_args: {EXTRA: "1"}}
    deploy: {alarms: [prod-5xx]}
    services:
      api:
        memory: 8192
        env: {LOG_LEVEL: warning, TRACE: "on"}
        health: {interval: 20s}
        secrets: null
        after: []
"""
    dev = load(tmp_path, text, "dev")
    prod = load(tmp_path, text, "prod")
    api = prod.services["api"]
    # Maps deep-merge: overridden key changes, new key added, untouched key inherited.
    assert api.env == {"LOG_LEVEL": "warning", "MODEL_NAME": "small-chat", "TRACE": "on"}
    assert api.health is not None and api.health.path == "/health/ready" and api.health.interval == 20
    assert api.health.start_period == 60
    assert prod.image.build_args == {"PYTHON_VERSION": "3.11", "EXTRA": "1"}
    # Lists replace.
    assert prod.deploy.alarms == ["prod-5xx"]
    assert api.after == []
    # Null removes the inherited value (back to the default).
    assert api.secrets == {}
    # Scalars replace; the rest is inherited untouched.
    assert api.memory == 8192 and api.cpu == 1024
    assert prod.deploy.timeout == 900
    assert prod.services["worker"] == dev.services["worker"]
    # The base is what dev sees.
    assert dev.services["api"].env == {"LOG_LEVEL": "info", "MODEL_NAME": "small-chat"}
    assert dev.services["api"].secrets == {"OPENAI_API_KEY": "chat-api/openai-key"}
    assert dev.deploy.alarms == ["chat-api-5xx", "chat-api-latency"]


def test_null_service_override_removes_the_service_there(tmp_path: Path) -> None:
    text = BASE.replace("    after: [worker]\n", "") + """\
  dev:
    target: docker
    services: {worker: null}
  staging: {target: docker}
"""
    assert list(load(tmp_path, text, "dev").services) == ["api"]
    assert list(load(tmp_path, text, "staging").services) == ["api", "worker"]


def test_env_values_numbers_become_text_but_yaml_surprises_are_refused(tmp_path: Path) -> None:
    text = BASE.replace("env: {LOG_LEVEL: info, MODEL_NAME: small-chat}", "env: {WORKERS: 4, MODEL_NAME: small-chat}")
    cfg = load(tmp_path, text + "  dev: {target: docker}\n", "dev")
    assert cfg.services["api"].env["WORKERS"] == "4"
    for value, word in (("3.10", "number 3.1"), ("on", "boolean true"), ("no", "boolean false")):
        bad = text.replace("WORKERS: 4", f"WORKERS: {value}") + "  dev: {target: docker}\n"
        with pytest.raises(ConfigError) as err:
            load(tmp_path, bad, "dev")
        [problem] = err.value.problems
        assert problem.path == "services.api.env.WORKERS" and f"YAML read this as the {word}" in problem.message


@pytest.mark.parametrize("field", ["cpu", "memory", "count", "port"])
def test_booleans_are_not_numbers(tmp_path: Path, field: str) -> None:
    text = BASE.replace("    cpu: 512\n    memory: 2048\n", "")
    text = text.replace("  worker:\n", f"  worker:\n    {field}: true\n")
    with pytest.raises(ConfigError) as err:
        load(tmp_path, text + "  dev: {target: docker}\n", "dev")
    assert [p.path for p in err.value.problems] == [f"services.worker.{field}"]


def test_environment_fields_and_name(tmp_path: Path) -> None:
    text = BASE + """\
  staging:
    target: ecs
    cluster: ai-staging
    network: {subnets: [subnet-1, subnet-2], security_groups: [sg-1]}
    roles: {execution: arn:aws:iam::123456789012:role/exec}
"""
    cfg = load(tmp_path, text, "staging")
    assert cfg.env_name == "staging"
    assert cfg.environment.cluster == "ai-staging"
    assert cfg.environment.network is not None and cfg.environment.network.subnets == ["subnet-1", "subnet-2"]
    assert cfg.environment.network.public_ip is False
    assert cfg.environment.roles is not None and cfg.environment.roles.task is None


def test_resolved_config_is_frozen(tmp_path: Path) -> None:
    cfg = load(tmp_path, BASE + "  dev: {target: docker}\n", "dev")
    with pytest.raises(Exception, match="frozen"):
        cfg.services["api"].count = 5  # type: ignore[misc]


def test_load_env_only_reports_the_chosen_environment(tmp_path: Path) -> None:
    text = BASE + """\
  dev: {target: docker}
  prod:
    target: docker
    services: {api: {memory: 16384}}
"""
    assert load(tmp_path, text, "dev").env_name == "dev"
    with pytest.raises(ConfigError) as err:
        load(tmp_path, text, "prod")
    assert [p.path for p in err.value.problems] == ["environments.prod.services.api.memory"]
    with pytest.raises(ConfigError):
        validate_all(read(tmp_path / "deploy.yaml", {}))


def test_unset_variable_only_matters_for_the_environment_that_uses_it(tmp_path: Path) -> None:
    text = BASE + """\
  dev: {target: docker}
  prod:
    target: docker
    services: {api: {env: {MODEL_BUCKET: "${PROD_MODEL_BUCKET}"}}}
"""
    assert load(tmp_path, text, "dev").services["api"].env["LOG_LEVEL"] == "info"
    with pytest.raises(ConfigError) as err:
        load(tmp_path, text, "prod")
    [problem] = err.value.problems
    assert problem.path == "environments.prod.services.api.env.MODEL_BUCKET"
    assert "PROD_MODEL_BUCKET is not set" in problem.message
    prod = load(tmp_path, text, "prod", {"PROD_MODEL_BUCKET": "s3://models"})
    assert prod.services["api"].env["MODEL_BUCKET"] == "s3://models"


def test_unknown_environment_names_the_choices(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as err:
        load(tmp_path, BASE + "  dev: {target: docker}\n  staging: {target: docker}\n", "stagin")
    assert "unknown environment 'stagin'" in err.value.message
    assert err.value.hint == "did you mean 'staging'? environments are: dev, staging"
    assert err.value.exit_code == 2


def test_yaml_anchors_and_merge_keys_work(tmp_path: Path) -> None:
    text = BASE.replace("  worker:\n", "  worker: &small\n") + """\
  dev:
    target: docker
    services:
      api: {<<: *small, port: 8000}
"""
    cfg = load(tmp_path, text, "dev")
    assert cfg.services["api"].command == ["python", "-m", "worker"]
    assert (cfg.services["api"].cpu, cfg.services["api"].memory) == (512, 2048)


# -- interpolation -----------------------------------------------------------------------

def test_interpolation_forms() -> None:
    data = {
        "a": "${NAME}",
        "b": "pre-${NAME}-${OTHER}-post",
        "c": "${MISSING:-fallback}",
        "d": "${EMPTY:-fallback}",  # like the shell: empty counts as unset for :-
        "e": "$${NAME} and $$ and $NAME",
        "f": ["${NAME}", 3, True, None],
        "${NAME}": "keys are never interpolated",
        "g": "${EMPTY}",
    }
    out, unset = interpolate(data, {"NAME": "chat", "OTHER": "x", "EMPTY": ""})
    assert unset == {}
    assert out == {
        "a": "chat",
        "b": "pre-chat-x-post",
        "c": "fallback",
        "d": "fallback",
        "e": "${NAME} and $$ and $NAME",
        "f": ["chat", 3, True, None],
        "${NAME}": "keys are never interpolated",
        "g": "",
    }


def test_interpolation_collects_every_unset_variable_with_its_path() -> None:
    data = {"services": {"api": {"env": {"A": "${FIRST}", "B": "${SECOND}x${THIRD}"}}}, "l": ["${FOURTH}"]}
    _, unset = interpolate(data, {})
    assert unset == {("services", "api", "env", "A"): ["FIRST"], ("services", "api", "env", "B"): ["SECOND", "THIRD"],
                     ("l", 0): ["FOURTH"]}
    _, bad = interpolate({"x": "${1BAD}"}, {})
    assert "is not a valid variable reference" in bad[("x",)][0]


def test_interpolated_values_reach_typed_fields(tmp_path: Path) -> None:
    text = BASE.replace("    cpu: 512\n", "    cpu: ${WORKER_CPU:-512}\n    count: ${WORKERS}\n") + \
        "  dev: {target: docker}\n"
    cfg = load(tmp_path, text, "dev", {"WORKERS": "4"})
    assert cfg.services["worker"].count == 4 and cfg.services["worker"].cpu == 512
    with pytest.raises(ConfigError) as err:
        load(tmp_path, text, "dev", {})
    [problem] = err.value.problems
    assert problem.path == "services.worker.count" and "WORKERS is not set" in problem.message
    assert (problem.line, problem.col) == (17, 12)  # the `${WORKERS}` value


# -- units -------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "seconds"), [
    ("90s", 90), ("10m", 600), ("1h30m", 5400), ("1h 30m", 5400), ("500ms", 0.5), ("2.5s", 2.5),
    ("45", 45), (30, 30), (0, 0), (1.5, 1.5), ("0s", 0),
])
def test_parse_duration(text: Any, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["10 seconds", "", "m", "1x", "s10", "10s5", "-5s", True, -1, None, [10]])
def test_parse_duration_rejects(bad: Any) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


@pytest.mark.parametrize(("text", "size"), [
    ("600MB", 600_000_000), ("600mb", 600_000_000), ("1.5GB", 1_500_000_000), ("2GiB", 2 * 2**30),
    ("512KiB", 512 * 1024), ("10 KB", 10_000), ("512", 512), (1024, 1024), ("1G", 10**9), ("7B", 7),
])
def test_parse_size(text: Any, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", ["600 megs", "MB", "", "-5MB", "1.2.3GB", "5XB", True, 1.5, None])
def test_parse_size_rejects(bad: Any) -> None:
    with pytest.raises(ValueError):
        parse_size(bad)


def test_format_units() -> None:
    assert [format_duration(s) for s in (5, 2.5, 60, 90, 3600, 5400)] == \
        ["5s", "2.5s", "1m", "1m30s", "1h00m", "1h30m"]
    assert [format_size(n) for n in (512, 600_000_000, 2_500_000_000)] == ["512 B", "600.0 MB", "2.5 GB"]


# -- commands ----------------------------------------------------------------------------

def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "GITHUB_ACTIONS"}
    environ.update(env)
    return in_process.run(*args, cwd=ROOT, env=environ, replace_env=True)


def test_config_json_shows_secrets_by_reference_only() -> None:
    secret_value = "sk-live-this-must-never-be-printed"
    proc = cli("config", "--env", "prod", "--json", OPENAI_API_KEY=secret_value)
    assert proc.returncode == 0, proc.stderr
    assert secret_value not in proc.stdout + proc.stderr
    data = json.loads(proc.stdout)
    assert data["env_name"] == "prod"
    api = data["services"]["api"]
    assert api["secrets"] == {"OPENAI_API_KEY": "chat-api/openai-key", "DATABASE_URL": "ssm:/chat-api/database-url"}
    assert (api["count"], api["memory"], api["autoscaling"]) == (3, 8192, {
        "min": 3, "max": 10, "target_cpu": 60, "target_memory": None, "requests_per_target": 200, "queue": None,
        "queue_backlog_per_task": None, "scale_in_cooldown": 300.0, "scale_out_cooldown": 60.0})
    assert data["environment"]["promote_from"] == "staging"
    dev = json.loads(cli("config", "--env", "dev", "--json").stdout)
    assert dev["services"]["api"]["secrets"] == {} and dev["image"]["registry"] == "localhost:5000"


def test_config_human_output_is_yaml() -> None:
    import yaml

    proc = cli("config", "--env", "staging")
    assert proc.returncode == 0, proc.stderr
    assert yaml.safe_load(proc.stdout)["environment"]["cluster"] == "ai-staging"


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_plan_json_has_each_services_task_definition(env: str) -> None:
    proc = cli("plan", "--env", env, "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["schema"] == "deployctl.plan/v1" and data["env"] == env
    assert set(data["services"]) == {"api", "worker"}
    for name, svc in data["services"].items():
        td = svc["task_definition"]
        assert td["family"] == f"chat-api-{env}-{name}"
        assert td["requiresCompatibilities"] == ["FARGATE"] and td["networkMode"] == "awsvpc"
        [container] = td["containerDefinitions"]
        assert container["name"] == name and container["image"] == data["image"]["ref"]
        assert svc["create_service"]["cluster"] == f"ai-{env}"
        assert svc["update_service"]["taskDefinition"] == td["family"]
    # prod is deployed by promotion (promote_from: staging): the plan shows that, not a build
    expected = ["promote", "deploy"] if env == "prod" else ["lint", "test", "build", "push", "deploy"]
    assert [s["name"] for s in data["stages"]] == expected
    assert data["guardrails"] == {"violations": []}


def root_environments() -> list[str]:
    return read(ROOT / "deploy.yaml", {}).env_names()


def test_unknown_env_is_exit_2_with_the_choices() -> None:
    envs = root_environments()
    assert {"dev", "staging", "prod"} <= set(envs)
    for command in ("plan", "config"):
        proc = cli(command, "--env", "qa", "--json")
        assert proc.returncode == 2
        assert proc.stdout == ""
        assert "unknown environment 'qa'" in proc.stderr
        assert f"environments are: {', '.join(envs)}" in proc.stderr
        assert "Traceback" not in proc.stderr


def test_validate_root_example() -> None:
    envs = root_environments()
    proc = cli("validate")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"deploy.yaml: ok ({len(envs)} environments: {', '.join(envs)})"
