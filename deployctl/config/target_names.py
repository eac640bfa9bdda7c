"""The registry of deploy targets: deploy.yaml's `environment.target` name → "module:Class".

It lives in the config layer because validation accepts exactly the registered names, while
the classes live above it in deployctl.targets, which imports them only when an environment
uses one (so `--help` and `validate` never load boto3 or the docker SDK). A new target is one
module and one entry here; tests register theirs by adding an entry.
"""

from __future__ import annotations

TARGETS: dict[str, str] = {
    "docker": "deployctl.targets.docker_target:DockerTarget",
    "ecs": "deployctl.targets.ecs_target:EcsTarget",
}

# Companions: a deploy.yaml section → the class that deploys it beside the environment's own
# target, after it (deployctl.targets.composite). Same "module:Class" form, loaded only when an
# environment has the section.
COMPANIONS: dict[str, str] = {
    "frontend": "deployctl.targets.vercel_target:VercelFrontend",
}
