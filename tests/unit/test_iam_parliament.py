"""parliament (Duo Labs' IAM linter, from the package index) on `deployctl iam-policy` output for
the reference deploy.yaml: every finding is either fixed or accepted with its reason written
down in docs/security.md ("IAM policy: accepted linter findings").

What parliament checks that our own evaluator cannot: that each action's Resource has the
format AWS matches for it (logs:DescribeLogGroups needs "*"), and that a Condition key exists for
the action (application-autoscaling:service-namespace is not documented for Describe* actions).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import parliament  # the dev extras (pyproject.toml) install it
import pytest

ROOT = Path(__file__).resolve().parents[2]
SECURITY_DOC = ROOT / "docs" / "security.md"

# (issue, the actions it names) → why it stays. Each is explained in docs/security.md.
ACCEPTED = {
    ("RESOURCE_STAR", ("ecs:RegisterTaskDefinition",)):
        "no resource type exists for it; limited by the aws:RequestTag condition instead",
    ("RESOURCE_STAR", ("ecs:DescribeTasks", "ecs:ListTasks")):
        "read-only; limited to the environment's cluster by the ecs:cluster condition",
    ("RESOURCE_MISMATCH", ("ecs:DeregisterTaskDefinition",)):
        "preview teardown: deliberately scoped to the preview families with tag conditions, failing closed",
}


def policy(env: str) -> dict[str, Any]:
    envvars = {k: v for k, v in os.environ.items() if k != "GITHUB_ACTIONS"}
    envvars["PYTHONPATH"] = str(ROOT) + os.pathsep + envvars.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-m", "deployctl", "iam-policy", "--env", env, "--json"], cwd=ROOT,
                         env=envvars, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout)["policy"])


def findings(doc: dict[str, Any]) -> set[tuple[str, tuple[str, ...]]]:
    found = parliament.analyze_policy_string(json.dumps(doc)).findings
    out = set()
    for f in found:
        detail = f.detail if isinstance(f.detail, list) else [f.detail]
        actions = sorted({d["action"] if isinstance(d, dict) and "action" in d else str(d) for d in detail})
        out.add((f.issue, tuple(actions)))
    return out


@pytest.mark.parametrize("env", ["staging", "prod", "preview"])
def test_iam_policy_passes_parliament_or_the_finding_is_accepted(env: str) -> None:
    got = findings(policy(env))
    assert got <= set(ACCEPTED), sorted(got - set(ACCEPTED))


def test_each_accepted_finding_is_written_down() -> None:
    text = SECURITY_DOC.read_text(encoding="utf-8")
    section = text.split("## IAM policy: accepted linter findings", 1)
    assert len(section) == 2, "docs/security.md has no accepted-findings section"
    for issue, actions in ACCEPTED:
        assert issue in section[1] and all(a in section[1] for a in actions), (issue, actions)


def test_parliament_finds_what_the_issue_reported() -> None:
    """The linter is not a rubber stamp here: the two reported mistakes are findings."""
    bad = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["logs:DescribeLogGroups"],
         "Resource": "arn:aws:logs:us-east-1:123456789012:log-group:*"},
        {"Effect": "Allow", "Action": ["application-autoscaling:DescribeScalableTargets"], "Resource": "*",
         "Condition": {"StringEquals": {"application-autoscaling:service-namespace": "ecs"}}},
    ]}
    issues = {issue for issue, _ in findings(bad)}
    assert "RESOURCE_MISMATCH" in issues
    assert issues - {"RESOURCE_MISMATCH", "RESOURCE_STAR"}, issues  # the condition key is flagged too
