"""Around the app: CI workflows that already deploy, and a frontend directory."""

from __future__ import annotations

import re
from pathlib import Path

from deployctl.project.files import SKIP_DIRS, read

_DEPLOYS = re.compile(r"docker push|docker/build-push-action|aws ecs |amazon-ecs-deploy|aws-actions/amazon-ecs|"
                      r"kubectl (apply|set image|rollout)|helm upgrade|flyctl deploy|fly deploy|"
                      r"gcloud run deploy|heroku |serverless deploy|sam deploy|cdk deploy|terraform apply|"
                      r"railway up|render deploy|deployctl run")
FRONTEND_NAMES = ("frontend", "web", "client", "ui", "webapp", "app-frontend")


def deploying_workflows(root: Path) -> list[str]:
    """.github/workflows files (relative paths) whose steps already deploy something."""
    d = root / ".github" / "workflows"
    if not d.is_dir():
        return []
    return sorted(f".github/workflows/{p.name}" for p in d.iterdir()
                  if p.suffix in (".yml", ".yaml") and _DEPLOYS.search(read(p)))


def frontend_dir(root: Path) -> str | None:
    """A directory holding a JavaScript frontend (package.json), preferring the usual names."""
    for name in FRONTEND_NAMES:
        if (root / name / "package.json").is_file():
            return name
    for p in sorted(root.iterdir()):
        if p.is_dir() and p.name not in SKIP_DIRS and (p / "package.json").is_file():
            return p.name
    return None
