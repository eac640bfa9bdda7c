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
    with pytest.raises(ConfigError) as err:
        loaded = read(write(tmp_path, text), {})
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


# -- 2. YAML merge keys: written keys override merged ones -----------------------------------------

MERGE = """\
version: 1
app: demo
region: us-east-1
image: {repository: demo}
x-sizes:
  small: &small {cpu: 256, memory: 512, count: 1}
  big: &big {cpu: 1024, memory: 4096, count: 3, spot: true}
services:
  api: &base
    port: 8000
    cpu: 256
    memory: 512
    health: {path: /health}
  api2:
    <<: *base
    cpu: 512
    memory: 1024
  api3:
    <<: [*small, *big, *base]
    memory: 2048
environments:
  dev: {target: docker}
"""


def test_explicit_keys_override_merged_ones(tmp_path: Path) -> None:
    text = MERGE.replace("x-sizes:\n  small: &small {cpu: 256, memory: 512, count: 1}\n"
                         "  big: &big {cpu: 1024, memory: 4096, count: 3, spot: true}\n", "")
    text = text.replace("    <<: [*small, *big, *base]\n", "    <<: *base\n")
    cfg = load(tmp_path, text, "dev")
    api2 = cfg.services["api2"]
    assert (api2.cpu, api2.memory, api2.port) == (512, 1024, 8000)
    assert api2.health is not None and api2.health.path == "/health"
    assert (cfg.services["api"].cpu, cfg.services["api"].memory) == (256, 512)


def test_earlier_merged_mapping_wins_and_written_keys_win_over_all(tmp_path: Path) -> None:
    # Known top-level keys only: the x-sizes holder is dropped before the file is loaded.
    loaded = read(write(tmp_path, MERGE), {})
    del loaded.data["x-sizes"]
    api3 = loaded.data["services"]["api3"]
    assert api3 == {"memory": 2048, "cpu": 256, "count": 1, "spot": True, "port": 8000,
                    "health": {"path": "/health"}}
    # Positions follow the values: memory where api3 writes it, count from &small.
    assert loaded.doc.marks.keys[("services", "api3", "memory")] == (20, 5)
    assert loaded.doc.marks.keys[("services", "api3", "count")] == (6, 41)
    assert loaded.doc.marks.keys[("services", "api3", "spot")] == (7, 49)


def test_a_problem_in_an_overriding_key_points_at_it(tmp_path: Path) -> None:
    text = MERGE.replace("x-sizes:\n  small: &small {cpu: 256, memory: 512, count: 1}\n"
                         "  big: &big {cpu: 1024, memory: 4096, count: 3, spot: true}\n", "")
    text = text.replace("    <<: [*small, *big, *base]\n", "    <<: *base\n").replace("memory: 1024", "memory: 3000")
    assert problems_of(tmp_path, text, "dev") == [
        "14:13 services.api2.memory: memory 3000 MiB is not allowed with cpu 512; Fargate allows 1024–4096 MiB "
        "in steps of 1024 MiB (see the Fargate size table in docs/deploy-yaml.md)"]


def test_a_key_written_twice_beside_a_merge_is_still_a_duplicate(tmp_path: Path) -> None:
    text = SMALL.replace("    port: 8000\n", "    port: 8000\n  api2:\n    <<: {port: 1}\n    port: 2\n    port: 3\n")
    text += "  dev: {target: docker}\n"
    assert problems_of(tmp_path, text) == [
        "11:5 services.api2.port: duplicate key (first defined on line 10) (remove one of them)"]


# -- 3. values PyYAML cannot build are located problems, never exit 3 ----------------------------

@pytest.mark.parametrize("value, message", [
    ("!Ref foo", "3:9 region: unsupported YAML tag !Ref"),
    ("!!int abc", "3:9 region: 'abc' is not a whole number (tag !!int)"),
    ("!!float 1.x", "3:9 region: '1.x' is not a number (tag !!float)"),
    ("!!timestamp nope", "3:9 region: 'nope' is not a date or time (tag !!timestamp)"),
    ("!!python/name:os.system ''", "3:9 region: unsupported YAML tag !!python/name:os.system"),
    ("1" * 4301, "3:9 region: number too long (4301 characters)"),
], ids=["ref", "int", "float", "timestamp", "python", "long-int"])
def test_unbuildable_scalars_are_located_problems(tmp_path: Path, value: str, message: str,
                                                  capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    text = SMALL.replace("region: us-east-1", f"region: {value}") + "  dev: {target: docker}\n"
    for env in (None, "dev"):
        [problem] = problems_of(tmp_path, text, env)
        assert problem.startswith(message), problem
    for args in (["validate"], ["config", "--env", "dev"], ["plan", "--env", "dev"]):
        result = cli(tmp_path, capsys, monkeypatch, *args)
        assert result.code == 2, result.stderr
        assert "internal error" not in result.stderr
        assert f"deploy.yaml:{message.split()[0]}: region: " in result.stderr


def test_a_bad_key_and_a_long_number_in_an_env_value(tmp_path: Path) -> None:
    text = SMALL.replace("    port: 8000\n", f"    port: 8000\n    env: {{!Ref X: a, N: {'9' * 5000}}}\n")
    text += "  dev: {target: docker}\n"
    assert [p.split(" (")[0] for p in problems_of(tmp_path, text)] == [
        "8:11 services.api.env: unsupported YAML tag !Ref",
        "8:25 services.api.env.N: number too long",
    ]


def test_plain_dates_stay_text(tmp_path: Path) -> None:
    text = SMALL + "  dev: {target: docker, deploy_on: 2024-05-01}\n"
    assert load(tmp_path, text, "dev").environment.deploy_on == "2024-05-01"


def test_a_bad_value_behind_an_alias_is_reported_once(tmp_path: Path) -> None:
    text = SMALL.replace("port: 8000", "port: &p !!int eighty").replace(
        "    health: {path: /health}\n", "    health: {path: /health}\n  api2: {port: *p, health: {path: /h}}\n")
    text += "  dev: {target: docker}\n"
    assert [p.split(" (")[0] for p in problems_of(tmp_path, text)] == [
        "7:11 services.api.port: 'eighty' is not a whole number"]


# -- 4. alias bombs, self-reference, deep nesting and long `after` chains ----------------------------

def test_billion_laughs_is_refused_quickly_and_once(tmp_path: Path) -> None:
    import time

    lines = ['    command: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"    c{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    text = SMALL.replace("    port: 8000\n", "    port: 8000\n" + "\n".join(lines) + "\n") + "  dev: {target: docker}\n"
    started = time.monotonic()
    problems = problems_of(tmp_path, text)
    assert time.monotonic() - started < 5
    expands = [p for p in problems if "expands too much" in p]
    assert expands == ["12:14 services.api.c4[0]: alias *a3 expands too much (more than 10000 values through "
                       "aliases in this file) (aliases repeat whole values; nested ones multiply)"]


def test_aliases_within_the_cap_work(tmp_path: Path) -> None:
    services = "".join(f"  s{i}: {{<<: *svc, port: {8000 + i}}}\n" for i in range(50))
    text = SMALL.replace("services:\n", "x-svc: &svc {cpu: 512, memory: 1024, health: {path: /h}, "
                         "env: &env {A: '1', B: '2', C: '3'}}\nservices:\n" + services)
    loaded = read(write(tmp_path, text + "  dev: {target: docker}\n"), {})
    del loaded.data["x-svc"]
    cfg = load_env(loaded, "dev")
    assert len(cfg.services) == 51 and cfg.services["s49"].port == 8049
    assert cfg.services["s7"].env == {"A": "1", "B": "2", "C": "3"} and cfg.services["s7"].memory == 1024


@pytest.mark.parametrize("body, where", [
    ("  x: &x {a: *x}\n", "10:13 holder.x.a: alias *x refers to itself"),
    ("  x: &x [1, [2, *x]]\n", "10:17 holder.x[1][1]: alias *x refers to itself"),
    ("  x: &x {<<: *x}\n", "10:14 holder.x: alias *x refers to itself"),
    ("  x: &x {<<: [{a: 1}, *x]}\n", "10:23 holder.x: alias *x refers to itself"),
])
def test_an_alias_inside_its_own_anchor_is_located(tmp_path: Path, body: str, where: str) -> None:
    text = SMALL.replace("monitoring:\n", "holder:\n" + body + "monitoring:\n", 1) + "  dev: {target: docker}\n"
    problems = problems_of(tmp_path, text)
    assert any(p.startswith(where) for p in problems), problems


@pytest.mark.parametrize("levels", [65, 2000])
def test_deep_nesting_is_a_located_problem(tmp_path: Path, levels: int, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    text = SMALL + "  dev: {target: docker}\nstages: " + "[" * levels + "]" * levels + "\n"
    problems = problems_of(tmp_path, text)
    assert any(p.startswith("14:") and "nested too deeply (more than 64 levels)" in p for p in problems), problems
    result = cli(tmp_path, capsys, monkeypatch, "config", "--env", "dev")
    assert result.code == 2 and "nested too deeply" in result.stderr


def chain(n: int, *, loop: bool = False) -> str:
    services = "".join(f"  s{i}: {{port: 8000, health: {{path: /h}}, after: [s{i + 1}]}}\n" for i in range(n - 1))
    last = f"  s{n - 1}: {{port: 8000, health: {{path: /h}}{', after: [s0]' if loop else ''}}}\n"
    return f"version: 1\napp: demo\nregion: us-east-1\nimage: {{repository: demo}}\nservices:\n{services}{last}" \
           "environments:\n  dev: {target: docker}\n"


def test_a_long_after_chain_resolves_and_plans(tmp_path: Path) -> None:
    from deployctl.plan import waves

    cfg = load(tmp_path, chain(1200), "dev")
    level = waves(cfg)
    assert level["s1199"] == 0 and level["s0"] == 1199


def test_a_cycle_at_the_end_of_a_long_after_chain_is_found(tmp_path: Path) -> None:
    [problem] = problems_of(tmp_path, chain(1200, loop=True))
    assert problem.startswith("6:47 services.s0.after: `after` lists form a cycle: s0 → s1 → s2")
    assert problem.split(" (")[0].endswith("s1199 → s0")


# -- 5. names in monitoring must match, or roll-back alarms silently vanish --------------------------

def test_the_default_roll_back_on_needs_no_error_rate(tmp_path: Path) -> None:
    cfg = load(tmp_path, SMALL + "  dev: {target: docker}\n", "dev")
    assert cfg.monitoring is not None and cfg.monitoring.roll_back_on == ["error_rate"]


def test_roll_back_on_is_checked_per_environment(tmp_path: Path) -> None:
    text = SMALL.replace("  latency: {p99: 5s}\n", "  latency: {p99: 5s}\n  roll_back_on: [latency_p99]\n")
    text += "  dev:\n    target: docker\n    monitoring: {latency: {p99: null}}\n  prod: {target: docker}\n"
    assert load(tmp_path, text, "prod").monitoring.roll_back_on == ["latency_p99"]  # type: ignore[union-attr]
    assert problems_of(tmp_path, text) == [
        "12:18 monitoring.roll_back_on[0]: roll_back_on names latency_p99 but monitoring.latency.p99 is not set "
        "(in environment dev) (set monitoring.latency.p99, or remove latency_p99 from roll_back_on)"]


def test_a_monitoring_service_override_is_checked_where_it_is_written(tmp_path: Path) -> None:
    text = SMALL + "  dev:\n    target: docker\n    monitoring: {queue: {name: q, max_visible: 5, service: apu}}\n"
    assert problems_of(tmp_path, text, "dev") == [
        "15:60 environments.dev.monitoring.queue.service: unknown service 'apu' (did you mean 'api'?)"]


# -- 8. the Fargate memory message lists the exact values when they are not an even range ------------

def test_fargate_memory_message_for_cpu_256_lists_the_values() -> None:
    from deployctl.config import fargate

    assert fargate.check_pair(256, 1536) == ("memory 1536 MiB is not allowed with cpu 256; Fargate allows "
                                             "512, 1024 or 2048 MiB")
    assert fargate.check_pair(512, 1536) == ("memory 1536 MiB is not allowed with cpu 512; Fargate allows "
                                             "1024–4096 MiB in steps of 1024 MiB")
    for cpu in fargate.VALID_CPU:
        for memory in range(256, 131072, 256):
            message = fargate.check_pair(cpu, memory)
            assert (message is None) == (memory in fargate.allowed_memory(cpu))


# -- 10. NaN, infinity, zero timeouts and non-positive sizes ---------------------------------------

@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_parse_duration_refuses_non_finite_numbers(bad: float) -> None:
    from deployctl.config.units import parse_duration

    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(bad)


@pytest.mark.parametrize("bad", [-5, 0, "0MB", "0.1B"])
def test_parse_size_refuses_sizes_below_one_byte(bad: object) -> None:
    from deployctl.config.units import parse_size

    with pytest.raises(ValueError, match="size must be at least 1 byte"):
        parse_size(bad)


def test_config_json_never_holds_nan_or_infinity(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    text = SMALL.replace("  latency: {p99: 5s}\n", "  latency: {p99: .inf}\n  error_rate: .nan\n")
    write(tmp_path, text + "  dev: {target: docker, guardrails: {max_monthly_usd: .inf}}\n")
    result = cli(tmp_path, capsys, monkeypatch, "config", "--env", "dev", "--json")
    assert result.code == 2 and result.stdout == ""
    assert "monitoring.latency.p99: expected a duration such as 30s, 10m or 1h, got inf" in result.stderr
    assert "monitoring.error_rate: expected a finite number, got nan" in result.stderr
    assert "guardrails.max_monthly_usd: expected a finite number, got inf" in result.stderr


# -- 11. files that are not UTF-8 -------------------------------------------------------------------

@pytest.mark.parametrize("raw, where", [
    (b"version: 1\napp: d\xe9mo\n", "2:7"),
    (b"version: 1\napp: \xc3\xa9\xe9\n", "2:7"),  # the column counts characters, not bytes
    ("version: 1\n".encode("utf-16"), "1:1"),
    (b"\xff\xfeversion: 1\n", "1:1"),
])
def test_a_file_that_is_not_utf8_is_a_located_problem(tmp_path: Path, raw: bytes, where: str,
                                                      capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "deploy.yaml").write_bytes(raw)
    result = cli(tmp_path, capsys, monkeypatch, "validate")
    assert result.code == 2
    assert f"deploy.yaml:{where}: not UTF-8" in result.stderr and "(save the file as UTF-8)" in result.stderr
    if raw.startswith(b"\xff\xfe"):
        assert "UTF-16 byte-order mark" in result.stderr


# -- 12. --image is checked; GitHub Actions annotation properties are escaped ------------------------

@pytest.mark.parametrize("image, message", [
    ("not a ref!!", "image reference 'not a ref!!' does not name a registry host"),
    ("", "--image is empty"),
    ("  ", "--image is empty"),
    ("127.0.0.1:5000/app", "has neither a tag nor a digest"),
])
def test_plan_refuses_a_bad_image_reference(tmp_path: Path, image: str, message: str,
                                            capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, SMALL + "  dev: {target: docker}\n")
    result = cli(tmp_path, capsys, monkeypatch, "plan", "--env", "dev", "--image", image)
    assert result.code == 2 and result.stdout == ""
    assert message in result.stderr


def test_plan_takes_a_full_image_reference() -> None:
    from deployctl.plan import check_image_override

    assert check_image_override(None) is None
    assert check_image_override("127.0.0.1:5000/app:3f2a9c1d") == "127.0.0.1:5000/app:3f2a9c1d"


def test_github_annotation_file_property_is_escaped(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    odd = tmp_path / "a,b:c%"
    odd.mkdir()
    path = odd / "deploy.yaml"
    path.write_text(SMALL.replace("region: us-east-1", "region: [x]") + "  dev: {target: docker}\n",
                    encoding="utf-8")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    result = run_main(["validate", "-f", str(path)], capsys)
    assert result.code == 2
    [annotation] = [line for line in result.stdout.splitlines() if line.startswith("::error ")]
    escaped = str(path).replace("%", "%25").replace(":", "%3A").replace(",", "%2C")
    assert annotation.startswith(f"::error file={escaped},line=3,col=9::region: ")


# -- 13. deploy.schema.json agrees with validate ----------------------------------------------------

def schema_errors(text: str) -> list[str]:
    import json

    import jsonschema
    import yaml

    root = Path(__file__).resolve().parents[2]
    schema = json.loads((root / "deploy.schema.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(yaml.safe_load(text))]


SCHEMA_BASE = SMALL.replace("image: {repository: demo}", "image: {repository: demo, build_args: {N: 4}}").replace(
    "    port: 8000\n", "    port: 8000\n    env: {WORKERS: 4}\n    load_balancer: {target_group: tg}\n"
    "    autoscaling: {min: 1, max: 2}\n").replace("  latency: {p99: 5s}\n", "  latency: {p99: 5s}\n"
                                                "  tokens: {namespace: Chat}\n")


@pytest.mark.parametrize("env", [
    "{target: docker}",
    "{target: docker, services: {api: {load_balancer: {container_port: 80}, autoscaling: {max: 3}}}}",
    "{target: docker, monitoring: {tokens: {max_per_request: 5}, latency: {p99: 3s}}}",
    "{target: docker, monitoring: null, services: {api: {env: {WORKERS: 8, X: null}, health: {interval: 10s}}}}",
    "{target: docker, image: {max_size: 1GB, build_args: {N: 5}}, deploy: {timeout: 5m}}",
])
def test_what_validate_accepts_the_schema_accepts(tmp_path: Path, env: str) -> None:
    text = SCHEMA_BASE + f"  dev: {env}\n"
    load(tmp_path, text, "dev")  # validate accepts it
    assert schema_errors(text) == []


@pytest.mark.parametrize("env", [
    "{target: docker, deploy: null}",
    "{target: docker, image: null}",
    "{target: docker, services: null}",
    "{target: docker, services: {api: {memroy: 5}}}",
])
def test_what_validate_refuses_the_schema_refuses(tmp_path: Path, env: str) -> None:
    text = SCHEMA_BASE + f"  dev: {env}\n"
    assert problems_of(tmp_path, text, "dev")
    assert schema_errors(text)


# -- 14. keys keep their source text ------------------------------------------------------------------

def test_boolean_and_number_looking_keys_keep_their_text(tmp_path: Path) -> None:
    text = SMALL.replace("    port: 8000\n", '    port: 8000\n    env: {ON: "1", NO: "x", yes: "y", "true": "t"}\n')
    cfg = load(tmp_path, text + "  dev: {target: docker}\n", "dev")
    assert cfg.services["api"].env == {"ON": "1", "NO": "x", "yes": "y", "true": "t"}
    loaded = read(write(tmp_path, "010: a\n0x1F: b\n1_000: c\n"), {})
    assert list(loaded.data) == ["010", "0x1F", "1_000"]


def test_on_and_On_are_different_keys_not_duplicates(tmp_path: Path) -> None:
    text = SMALL.replace("    port: 8000\n", '    port: 8000\n    env: {On: "1", ON: "2"}\n')
    assert load(tmp_path, text + "  dev: {target: docker}\n", "dev").services["api"].env == {"On": "1", "ON": "2"}


# -- 15. tabs inside block scalars, multi-line strings and before comments are not indentation ---------

TAB_BASE = SMALL + "  dev: {target: docker}\nstages:\n  lint:\n    run:\n"


@pytest.mark.parametrize("run, expected", [
    ("      - |\n        make lint\n        \techo tabbed\n", "make lint\n\techo tabbed\n"),
    ("      - |\n        cat <<-EOF > conf.ini\n        \t[section]\n        \tEOF\n",
     "cat <<-EOF > conf.ini\n\t[section]\n\tEOF\n"),
    ('      - "a\n\tb"\n', "a b"),
    ("      - make lint\n\t# a comment indented with a tab\n", "make lint"),
])
def test_tabs_that_are_not_indentation_are_accepted(tmp_path: Path, run: str, expected: str) -> None:
    cfg = load(tmp_path, TAB_BASE + run, "dev")
    assert cfg.stages.lint is not None and cfg.stages.lint.run == [expected]


def test_a_tab_indenting_structure_is_still_refused(tmp_path: Path) -> None:
    text = TAB_BASE + "      - |\n        make lint\n    \ttimeout: 2m\n"
    assert problems_of(tmp_path, text) == ["19:5 : tab character in indentation (YAML indents with spaces only)"]


def test_a_tab_after_a_colon_gets_a_hint(tmp_path: Path) -> None:
    text = SMALL.replace("region: us-east-1", "region:\tus-east-1") + "  dev: {target: docker}\n"
    [problem] = problems_of(tmp_path, text)
    assert problem.startswith("3:8 : YAML syntax error:")
    assert problem.endswith("(YAML separates with spaces: put a space, not a tab, after ':' or '-')")


# -- lesser: `stages: false`, `version: true` ----------------------------------------------------------

@pytest.mark.parametrize("stages", ["false", "[]", "0", "''"])
def test_stages_must_be_a_mapping(tmp_path: Path, stages: str) -> None:
    [problem] = problems_of(tmp_path, SMALL + f"  dev: {{target: docker}}\nstages: {stages}\n")
    assert problem.startswith("14:9 stages: expected a mapping")


def test_stages_null_means_no_stages(tmp_path: Path) -> None:
    cfg = load(tmp_path, SMALL + "  dev: {target: docker}\nstages:\n", "dev")
    assert cfg.stages.lint is None and cfg.stages.test is None


def test_the_cli_never_prints_zero_problems(capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import deployctl.config

    def refuse(_loaded: object) -> None:
        raise ConfigError([])

    monkeypatch.setattr(deployctl.config, "validate_all", refuse)
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    result = run_main(["validate"], capsys)
    assert result.code == 2
    assert "0 problems" not in result.stderr and "without a located problem" in result.stderr
