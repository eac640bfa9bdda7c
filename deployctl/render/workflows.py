"""GitHub Actions workflows that call deployctl, rendered purely from templates.

The templates (deployctl/templates/workflows/*.yaml) use `@@NAME@@` placeholders, which cannot
clash with GitHub's `${{ … }}` expressions. The same function renders the workflows shipped in
pipelines/github/ (for this repository) and those `deployctl init` writes into a project.

Third-party actions are pinned to full commit SHAs (a tag can be moved; a commit cannot). The
version comment beside each SHA is what the SHA was published as; bump both together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources

# action → "sha # version". Each SHA was cross-checked against several independent public
# workflows pinning it with the same version comment (no network access to GitHub here).
ACTIONS = {
    "CHECKOUT": "11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2",
    "SETUP_PYTHON": "0b93645e9fea7318ecaed2b359559ac225c90a2b # v5.3.0",
    "AWS_CREDENTIALS": "e3dd6a429d7300a6a4c196c26e071d42e0343502 # v4.0.2",
}
WORKFLOWS = ("deploy-staging", "preview", "promote", "rollback")


@dataclass(frozen=True)
class WorkflowParams:
    app: str
    region: str
    install: str  # what `python -m pip install` gets: "." in this repo, a pinned version elsewhere
    python: str = "3.11"
    branch: str = "main"
    staging: str = "staging"
    prod: str = "prod"
    preview: str | None = "preview"
    prod_github_environment: str = "production"
    rollback_envs: tuple[str, ...] = field(default=())

    def values(self) -> dict[str, str]:
        choices = self.rollback_envs or (self.staging, self.prod)
        return {
            "APP": self.app,
            "REGION": self.region,
            "INSTALL": self.install,
            "PYTHON": self.python,
            "BRANCH": self.branch,
            "STAGING": self.staging,
            "PROD": self.prod,
            "PREVIEW": self.preview or "preview",
            "PROD_GH": self.prod_github_environment,
            "ROLLBACK_CHOICES": ", ".join(choices),
            **ACTIONS,
        }


def template(name: str) -> str:
    return (resources.files("deployctl") / "templates" / "workflows" / f"{name}.yaml").read_text("utf-8")


def fill(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace(f"@@{key}@@", value)
    if "@@" in text.replace("@@@", ""):
        left = text[text.index("@@"):][:40]
        raise ValueError(f"unfilled placeholder in workflow template near {left!r}")
    return text


def render(params: WorkflowParams) -> dict[str, str]:
    """File name (e.g. 'deploy-staging.yml') → workflow text. No preview workflow when the
    project has no preview environment."""
    names = [n for n in WORKFLOWS if n != "preview" or params.preview]
    values = params.values()
    out = {}
    for name in names:
        file = f"deploy-{params.staging}.yml" if name == "deploy-staging" else f"{name}.yml"
        out[file] = fill(template(name), values)
    return out


def shipped_params() -> WorkflowParams:
    """Parameters of the workflows in pipelines/github/: this repository's deploy.yaml (chat-api),
    with deployctl installed from the checked-out repository."""
    return WorkflowParams(app="chat-api", region="us-east-1", install=".")
