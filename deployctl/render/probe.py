"""The HTTP health probe both targets run inside the app's container (pure argv builder).

One strategy for the local Docker HEALTHCHECK and the ECS container healthCheck, because the
same image runs on both: use the first of wget, curl or the image's own python that exists,
so a slim Python image with neither wget nor curl still gets checked. Only one tool makes the
request (trying curl after wget failed would double every failing probe's requests and hide
which answer counted). Whatever fails, the first line of the check's output says why: the
tool's own error (`wget: server returned error: HTTP/1.1 503`, `curl: (7) Failed to connect`),
python's exception text (`HTTP Error 500: Internal Server Error`), or that no tool exists.

Docker keeps the check's stdout and stderr as its health log (the first 4 KiB), which is where
deployctl reads the cause from; CMD-SHELL runs with /bin/sh -c, so an image without a shell
needs `health.command` as an exec list instead. References:
https://docs.docker.com/reference/dockerfile/#healthcheck and
https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_HealthCheck.html
"""

from __future__ import annotations

import shlex

NO_TOOL = "health probe: no wget, curl or python in the image to GET"

# Exception text only, no traceback: the first line of the output is the cause.
_PYTHON = ("import sys,urllib.request as u;"
           'sys.excepthook=lambda t,e,b:print(f"GET {sys.argv[1]}: {e}");'
           "u.urlopen(sys.argv[1],timeout=float(sys.argv[2]))")


def http_probe_script(url: str, timeout: float) -> str:
    """A /bin/sh one-liner that GETs `url` and exits 0 on a 2xx/3xx answer, 1 otherwise."""
    py = shlex.quote(_PYTHON)
    # Whatever the tool printed comes first; our own line follows only where it may have printed
    # nothing (GNU wget -q is silent on errors).
    return (
        f"u={shlex.quote(url)}; "
        "if command -v wget >/dev/null 2>&1; then "
        "wget -q -O /dev/null \"$u\" 2>&1 || { echo \"GET $u failed (wget exit $?)\"; exit 1; }; "
        "elif command -v curl >/dev/null 2>&1; then "
        f"curl -fsS -o /dev/null --max-time {int(max(1, timeout))} \"$u\" 2>&1 || exit 1; "
        "elif p=$(command -v python3 || command -v python); then "
        f"\"$p\" -c {py} \"$u\" {timeout:g} 2>&1 || exit 1; "
        f"else echo \"{NO_TOOL} $u; set the service's health.command\"; exit 1; fi"
    )


def http_probe(port: int, path: str, timeout: float) -> list[str]:
    """The health-check test (Docker's and ECS's shape) for GET http://127.0.0.1:port/path."""
    return ["CMD-SHELL", http_probe_script(f"http://127.0.0.1:{port}{path}", timeout)]


def command_probe(command: list[str] | str) -> list[str]:
    """A health command from deploy.yaml: a string runs in the shell, a list is exec'd as is."""
    if isinstance(command, str):
        return ["CMD-SHELL", command]
    return ["CMD", *command]
