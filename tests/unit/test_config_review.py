"""Config loading bugs found in review: each test failed before its fix.

Malformed files that only need "validate reports exactly this" live in tests/configs/bad/;
what needs more than one command or a look at the resolved config is here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from deployctl.config import ResolvedConfig, load_env, read, validate_all
from deployctl.config.resolve import Loaded
from deployctl.errors import ConfigError

from .test_config_errors import Result, run_main

SMALL = """\
version: 1
app: demo
region: us-east-1
image: {repository: demo}
services:
  api:
    port: 8000
    health: {path: /health}
monitoring:
  load_balancer: demo-alb
  latency: {p99: 5s}
environments:
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "deploy.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def load(tmp_path: Path, text: str, env: str) -> ResolvedConfig:
    return load_env(read(write(tmp_path, text), {}), env)


def problems_of(tmp_path: Path, text: str, env: str | None = None) -> list[str]:
    """Every problem as `LINE:COL path: message`, from validate_all or load_env(env)."""
    loaded = read(write(tmp_path, text), {})
    with pytest.raises(ConfigError) as err:
        if env is None:
            validate_all(loaded)
        else:
            load_env(loaded, env)
    assert err.value.problems, "a ConfigError must carry at least one problem"
    return [f"{p.line}:{p.col} {p.path}: {p.message}" + (f" ({p.hint})" if p.hint else "")
            for p in err.value.problems]


def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        *args: str) -> Result:
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    return run_main([*args, "-f", str(tmp_path / "deploy.yaml")], capsys)


# -- 1. a non-mapping overlay section must not make an environment vanish ------------------------

def test_monitoring_null_removes_monitoring_in_that_environment(tmp_path: Path) -> None:
    text = SMALL + "  dev: {target: docker, monitoring: null}\n  prod: {target: docker}\n"
    assert load(tmp_path, text, "dev").monitoring is None
    prod = load(tmp_path, text, "prod").monitoring
    assert prod is not None and prod.latency is not None and prod.latency.p99 == 5
    assert list(validate_all(read(tmp_path / "deploy.yaml", {}))) == ["dev", "prod"]


@pytest.mark.parametrize("value", ["5", "[]", "off", "[latency]"])
def test_non_mapping_monitoring_override_is_a_located_error(tmp_path: Path, value: str,
                                                            capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    text = SMALL + f"  dev:\n    target: docker\n    monitoring: {value}\n  prod: {{target: docker}}\n"
    for env in (None, "dev"):
        [problem] = problems_of(tmp_path, text, env)
        assert problem.startswith("15:5 environments.dev.monitoring: expected a mapping of overrides, got ")
    assert load(tmp_path, text, "prod").env_name == "prod"  # the other environment is unaffected
    for args in (["validate"], ["config", "--env", "dev"], ["plan", "--env", "dev"]):
        result = cli(tmp_path, capsys, monkeypatch, *args)
        assert result.code == 2
        assert result.stderr.startswith("error: 1 problem in deploy configuration:\n"), result.stderr
        assert "deploy.yaml:15:5: environments.dev.monitoring: expected a mapping" in result.stderr


def test_services_null_in_an_environment_is_a_located_error(tmp_path: Path) -> None:
    text = SMALL + "  dev:\n    target: docker\n    services: null\n"
    for env in (None, "dev"):
        [problem] = problems_of(tmp_path, text, env)
        assert problem.startswith("15:5 environments.dev.services: `services: null` removes every service")


@pytest.mark.parametrize("section", ["deploy", "image"])
def test_deploy_or_image_null_in_an_environment_is_refused_with_a_hint(tmp_path: Path, section: str) -> None:
    text = SMALL + f"  dev:\n    target: docker\n    {section}: null\n"
    [problem] = problems_of(tmp_path, text, "dev")
    assert problem == (f"15:5 environments.dev.{section}: expected a mapping of overrides, got nothing (null) "
                       f"(`{section}` cannot be removed; leave it out to inherit it)")


def test_a_config_error_always_names_a_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Whatever check is missing next, an environment never fails (or vanishes) with "0 problems".
    text = SMALL + "  dev: {target: docker}\n  prod: {target: docker}\n"
    monkeypatch.setattr(Loaded, "try_resolve", lambda self, env: (None, []))
    for env in (None, "dev"):
        problems = problems_of(tmp_path, text, env)
        assert problems[0].startswith("13:3 environments.dev: environment 'dev' could not be resolved")
    assert len(problems_of(tmp_path, text)) == 2
