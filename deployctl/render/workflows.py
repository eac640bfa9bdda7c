"""GitHub Actions workflows that call deployctl, rendered purely from templates.

The templates (deployctl/templates/workflows/*.yaml) use `@@NAME@@` placeholders, which cannot
clash with GitHub's `${{ … }}` expressions. The same function renders the workflows shipped in
pipelines/github/ (for this repository) and those `deployctl init` writes into a project.

Third-party actions are pinned to full commit SHAs (a tag can be moved; a commit cannot). The
version comment beside each SHA is what the SHA was published as; bump both together.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from importlib import metadata, resources
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from deployctl.project import Project

# action → "sha # version". Each SHA was cross-checked against several independent public
# workflows pinning it with the same version comment (no network access to GitHub here).
ACTIONS = {
    "CHECKOUT": "11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2",
    "SETUP_PYTHON": "0b93645e9fea7318ecaed2b359559ac225c90a2b # v5.3.0",
    "AWS_CREDENTIALS": "e3dd6a429d7300a6a4c196c26e071d42e0343502 # v4.0.2",
}
WORKFLOWS = ("deploy-staging", "preview", "promote", "rollback")
SHA = re.compile(r"^[0-9a-f]{40}$")
# The GitHub repository that publishes deployctl's composite action (action.yml at its root).
# Used when the installation does not say where it came from; `init --action-ref OWNER/NAME@SHA`
# names another (a fork, a mirror).
ACTION_REPO = "deployctl/deployctl"
# Where no commit is known: a SHA no repository has, so the workflow fails at "Set up job" with
# "unable to find version" instead of running something unpinned.
PLACEHOLDER = "0" * 40
# The builder tools the generated workflows install for lock files, pinned like the Dockerfile's.
POETRY = "poetry==1.8.5"
UV = "uv==0.5.11"


@dataclass(frozen=True)
class WorkflowParams:
    app: str
    region: str
    action_ref: str  # "OWNER/NAME@SHA", a bare SHA (of ACTION_REPO), or "./" for this repository
    python: str = "3.11"
    branch: str = "main"
    staging: str = "staging"
    prod: str = "prod"
    preview: str | None = "preview"
    prod_github_environment: str = "production"
    rollback_envs: tuple[str, ...] = field(default=())
    prepare: tuple[str, ...] = ()  # shell lines that install what lint/test need on the runner

    @property
    def action(self) -> str:
        if self.action_ref == "./" or "@" in self.action_ref:
            return self.action_ref
        return f"{ACTION_REPO}@{self.action_ref}"

    def prepare_step(self) -> str:
        if not self.prepare:
            return ""
        body = "\n".join(f"          {line}" for line in self.prepare)
        return ("      - name: Install the app's dependencies and its lint and test tools\n"
                f"        run: |\n{body}\n")

    def values(self) -> dict[str, str]:
        choices = self.rollback_envs or (self.staging, self.prod)
        return {
            "APP": self.app,
            "REGION": self.region,
            "ACTION": self.action,
            "PREPARE": self.prepare_step(),
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
    with deployctl installed by this repository's own action (`uses: ./`, the checked-out commit)."""
    return WorkflowParams(app="chat-api", region="us-east-1", action_ref="./",
                          prepare=("python -m pip install -r examples/chat-api/requirements.txt ruff pytest",))


def own_commit(start: Path | None = None) -> str | None:
    """The commit of the deployctl the user runs: PEP 610 direct_url.json when pip installed it
    from a git URL, else the git checkout this package lives in (plain file reads, no git
    process). None when neither says (an installation from an index or a wheel)."""
    try:
        direct = json.loads(metadata.distribution("deployctl").read_text("direct_url.json") or "{}")
        commit = (direct.get("vcs_info") or {}).get("commit_id")
        if isinstance(commit, str) and SHA.match(commit):
            return commit
    except (metadata.PackageNotFoundError, ValueError):
        pass
    here = (start or Path(__file__)).resolve()
    for d in here.parents:
        dot = d / ".git"
        if dot.is_file():  # a worktree: "gitdir: <path>"
            text = dot.read_text("utf-8").strip()
            if not text.startswith("gitdir:"):
                return None
            dot = (d / text.split(":", 1)[1].strip()).resolve()
        if dot.is_dir():
            return _head(dot)
    return None


def _head(gitdir: Path) -> str | None:
    head = (gitdir / "HEAD").read_text("utf-8").strip() if (gitdir / "HEAD").is_file() else ""
    if SHA.match(head):
        return head
    if not head.startswith("ref:"):
        return None
    ref = head.split(":", 1)[1].strip()
    common = gitdir
    if (gitdir / "commondir").is_file():
        common = (gitdir / (gitdir / "commondir").read_text("utf-8").strip()).resolve()
    for base in (gitdir, common):
        p = base / ref
        if p.is_file():
            value = p.read_text("utf-8").strip()
            return value if SHA.match(value) else None
    packed = common / "packed-refs"
    if packed.is_file():
        for line in packed.read_text("utf-8").splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1] == ref and SHA.match(parts[0]):
                return parts[0]
    return None


def prepare_commands(project: Project, stages_in_image: bool) -> tuple[str, ...]:
    """What a runner installs before `deployctl run` so the host stages can run: the app's
    dependencies and its lint/test tools. Nothing when the stages run inside the image."""
    tools = (*project.tools.lint_packages, *project.tools.test_packages)
    if stages_in_image or not tools:
        return ()
    deps = project.deps
    base = "" if deps.directory in (".", "") else f"cd {deps.directory} && "
    lines: list[str] = []
    if deps.manager == "pip" and deps.files and deps.files[0].endswith(".txt"):
        lines.append(f"python -m pip install -r {deps.files[0]}")
    elif deps.manager == "uv" and deps.lock:
        lines.append(f"python -m pip install {UV}")
        lines.append(f'{base}uv export --frozen --no-hashes --no-emit-project -o "$RUNNER_TEMP/requirements.txt"')
        lines.append('python -m pip install -r "$RUNNER_TEMP/requirements.txt"')
    elif deps.manager == "poetry" and deps.lock:
        lines.append(f"python -m pip install {POETRY}")
        lines.append(f"{base}poetry config virtualenvs.create false && poetry install --no-root --no-interaction")
    elif deps.files:
        lines.append(f"{base}python -m pip install .")
    lines += [f"python -m pip install -r {f}" for f in deps.dev_files if f.endswith(".txt")]
    missing = [t for t in tools if t not in deps.dev_packages and t not in deps.packages]
    if missing:
        lines.append("python -m pip install " + " ".join(missing))
    return tuple(lines)
