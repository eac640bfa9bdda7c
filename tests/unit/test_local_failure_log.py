"""The local target's "last log lines" of a container that never turned healthy: what the app
printed is shown, its secrets are not, multi-line ones included (the lines get a "  | " prefix,
so they must be redacted as one stream before it goes on)."""

from __future__ import annotations

from typing import Any

from deployctl.targets import docker as local

APP_LOG = """\
loading model small-chat
config:
  database:
    password:
      - hunter2-leaked-value
  api_token: |
    sk_live_LEAKEDVALUE0123456789
  workers: 4
-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ-SECRETBODY
-----END OPENSSH PRIVATE KEY-----
health check failed: model not loaded
"""


class Container:
    """The three things _show_failure asks of a docker-py container."""

    name = "qt-dev-api-r2"
    attrs: dict[str, Any] = {"State": {"Health": {"Log": [{"ExitCode": 1, "Output": "wget: 503"}]}}}

    def reload(self) -> None:
        pass

    def logs(self, **_: Any) -> bytes:
        return APP_LOG.encode()


def test_failure_log_shows_the_app_output_without_its_secrets() -> None:
    lines: list[str] = []
    local._show_failure(Container(), "api", lines.append)
    out = "\n".join(lines)
    for secret in ("hunter2-leaked-value", "sk_live_LEAKEDVALUE", "SECRETBODY"):
        assert secret not in out
    # What a person needs to see why it failed stays readable.
    for kept in ("loading model small-chat", "workers: 4", "health check failed: model not loaded",
                 "exit 1: wget: 503"):
        assert kept in out
    assert all(line.startswith(("api: ", "  | ")) for line in lines)
