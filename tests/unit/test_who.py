"""One answer to "who deployed" (issue 12 §10): the release records (ECS tags, local release
labels), `history` and the deploy lock all use releases_tags.actor, and it never says `unknown`
because $USER is unset."""

from __future__ import annotations

import os
import pwd
import socket
import subprocess
import sys
from pathlib import Path

from deployctl import lock, releases_tags
from deployctl.targets import docker

ROOT = Path(__file__).resolve().parents[2]
HOST = socket.gethostname()
LOGIN = pwd.getpwuid(os.getuid()).pw_name


def test_github_actions_names_the_actor() -> None:
    assert releases_tags.actor({"GITHUB_ACTOR": "octo", "USER": "runner"}) == "github:octo"


def test_local_user_and_host() -> None:
    assert releases_tags.actor({"USER": "ana"}) == f"ana@{HOST}"
    assert releases_tags.actor({"LOGNAME": "bo"}) == f"bo@{HOST}"


def test_without_user_variables_the_login_name_of_the_uid() -> None:
    assert releases_tags.actor({}) == f"{LOGIN}@{HOST}"


def test_lock_and_local_target_record_the_same_who_with_user_unset() -> None:
    """In a process without $USER, $LOGNAME and $USERNAME (a container, cron): lock holder,
    ECS release tag and local release label all say the same, and none says `unknown`."""
    code = ("from deployctl import lock, releases_tags; from deployctl.targets import docker; "
            "print(lock.who()); print(releases_tags.actor()); print(docker._who())")
    env = {k: v for k, v in os.environ.items()
           if k not in ("USER", "LOGNAME", "USERNAME", "GITHUB_ACTOR", "GITHUB_ACTIONS")}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60,
                         check=True).stdout.split()
    assert out == [f"{LOGIN}@{HOST}"] * 3


def test_same_function_in_process() -> None:
    assert lock.who() == releases_tags.actor() == docker._who()
