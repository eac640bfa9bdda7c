"""A refused `promote` suggests only configs that validate accepts; destructive commands share
one confirmation that refuses without a terminal unless --yes is given."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
import yaml

from tests.unit.test_cli_basics import run_main

ROLES = {"execution": "arn:aws:iam::123456789012:role/exec"}


def ecs_env(cluster: str, **extra: object) -> dict[str, object]:
    return {"target": "ecs", "cluster": cluster, "network": {"subnets": ["subnet-1"]}, "roles": ROLES, **extra}


CONFIG = {
    "version": 1, "app": "x", "region": "us-east-1", "image": {"repository": "x"},
    "services": {"api": {"port": 8000}},
    "environments": {
        "dev": {"target": "docker"},
        "staging": ecs_env("a"),
        "qa": ecs_env("a"),
        "preview": ecs_env("a", preview=True),
        "prod": ecs_env("b", promote_from="staging"),
    },
}
SUGGESTION = re.compile(r"set environments\.([\w-]+)\.promote_from: ([\w-]+) in deploy\.yaml")


def test_every_promote_hint_is_a_config_validate_accepts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "deploy.yaml"
    path.write_text(yaml.safe_dump(CONFIG, sort_keys=False))
    envs = list(CONFIG["environments"])  # type: ignore[call-overload]
    suggested = []
    for src in envs:
        for dst in envs:
            if CONFIG["environments"][dst].get("promote_from") == src:  # type: ignore[index]
                continue  # a real promotion (it would go to AWS)
            code, _, err = run_main(["promote", src, dst, "-f", str(path)], capsys)
            assert code == 2, (src, dst, err)
            m = SUGGESTION.search(err)
            if not m:
                continue
            suggested.append((src, dst))
            changed = yaml.safe_load(path.read_text())
            changed["environments"][m.group(1)]["promote_from"] = m.group(2)
            trial = tmp_path / "trial.yaml"
            trial.write_text(yaml.safe_dump(changed, sort_keys=False))
            code, out, verr = run_main(["validate", "-f", str(trial)], capsys)
            assert code == 0, f"promote {src} {dst} suggested {m.group(0)}, which validate refuses:\n{verr}"
    assert ("staging", "qa") in suggested  # a sound suggestion is still made
    assert not [p for p in suggested if p[0] == p[1]]


def test_promote_dev_dev(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "deploy.yaml"
    path.write_text(yaml.safe_dump(CONFIG, sort_keys=False))
    code, _, err = run_main(["promote", "dev", "dev", "-f", str(path)], capsys)
    assert code == 2
    assert "cannot promote dev to itself" in err
    assert "promote_from: dev" not in err and "deployctl run --env dev" in err


def test_no_cycle_is_suggested(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "deploy.yaml"
    path.write_text(yaml.safe_dump(CONFIG, sort_keys=False))
    code, _, err = run_main(["promote", "prod", "staging", "-f", str(path)], capsys)
    assert code == 2 and "promote_from: prod" not in err  # staging ← prod ← staging would be a cycle


def test_confirm_refuses_without_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    from deployctl.commands.common import confirm
    from deployctl.errors import EXIT_USAGE, UsageError

    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a TTY, like `< /dev/null` in CI
    with pytest.raises(UsageError) as err:
        confirm("Remove preview 'pr-7'?", yes=False)
    assert err.value.exit_code == EXIT_USAGE
    assert "needs a confirmation and there is no terminal" in err.value.message
    assert "nothing was changed" in err.value.message and err.value.hint and "--yes" in err.value.hint
    confirm("Remove preview 'pr-7'?", yes=True)  # --yes: no question asked


def test_destroy_refuses_without_a_terminal_before_touching_aws(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "deploy.yaml"
    path.write_text(yaml.safe_dump(CONFIG, sort_keys=False))
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    # No AWS endpoint at all: a command that went on would fail differently (or delete things).
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    code, out, err = run_main(["destroy", "--env", "preview", "--name", "pr-7", "-f", str(path)], capsys)
    assert code == 2, err
    assert "Remove preview 'pr-7'" in err and "no terminal to ask on" in err and "--yes" in err
    assert "removed" not in out


def test_destroy_reports_revisions_the_ci_role_may_not_deregister(tmp_path: Path) -> None:
    """The preview CI policy allows DeregisterTaskDefinition only by resource tags; where AWS denies
    it, destroy has still deleted the services and says which revisions it left."""
    from botocore.exceptions import ClientError

    from deployctl.config import load_env, read
    from deployctl.targets.ecs_preview import destroy_preview

    path = tmp_path / "deploy.yaml"
    path.write_text(yaml.safe_dump(CONFIG, sort_keys=False))
    cfg = load_env(read(path, {}), "preview")
    tags = [{"key": "deployctl:app", "value": "x"}, {"key": "deployctl:env", "value": "preview"},
            {"key": "deployctl:preview", "value": "pr-7"}]
    arn = "arn:aws:ecs:us-east-1:123456789012:task-definition/x-preview-pr-7-api:1"
    calls: list[str] = []

    class Pages:
        def __init__(self, key: str, items: list[str]) -> None:
            self.key, self.items = key, items

        def paginate(self, **_: object) -> list[dict[str, list[str]]]:
            return [{self.key: self.items}]

    class Ecs:
        def get_paginator(self, op: str) -> Pages:
            return {"list_services": Pages("serviceArns", ["x-preview-pr-7-api"]),
                    "list_task_definition_families": Pages("families", ["x-preview-pr-7-api"]),
                    "list_task_definitions": Pages("taskDefinitionArns", [arn])}[op]

        def describe_services(self, **_: object) -> dict[str, object]:
            return {"services": [{"serviceName": "x-preview-pr-7-api", "status": "ACTIVE", "tags": tags}]}

        def describe_task_definition(self, **_: object) -> dict[str, object]:
            return {"tags": tags}

        def update_service(self, **kw: object) -> None:
            calls.append(f"update {kw['service']}")

        def delete_service(self, **kw: object) -> None:
            calls.append(f"delete {kw['service']}")

        def deregister_task_definition(self, **_: object) -> None:
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "DeregisterTaskDefinition")

    report = destroy_preview(Ecs(), cfg, "pr-7")
    assert calls == ["update x-preview-pr-7-api", "delete x-preview-pr-7-api"]
    assert report.services_deleted == ["x-preview-pr-7-api"] and report.task_definitions_deregistered == []
    assert report.skipped == ["task definition x-preview-pr-7-api: not deregistered (AccessDeniedException: "
                              "the CI role may not deregister it)"]
