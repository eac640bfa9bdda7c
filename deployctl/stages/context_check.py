"""Refuse to build when the context would ship secrets (exit 2, before the daemon sees a byte).

Everything in the context is sent to the Docker daemon, and a `COPY . .` puts it in a layer
that anyone who can pull the image can read, forever, even if a later step deletes it. So a
file that is a secret by its name (secret_rules.name_reason), by its content
(secret_rules.content_reason) or that is part of `.git` is refused, naming each file and the
`.dockerignore` line that keeps it out. A path listed in `image.allow_secret_files` is let
through deliberately; a directory listed there covers the names below it, but a file whose
*content* is a credential must be listed itself (allowing `.git` for a version tool does not
allow the CI token in `.git/config`).

Content is read with a bounded cost: the first SCAN_BYTES (1 MiB) of each file, nothing of a
file that starts with binary data (model weights, images, archives).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from deployctl.errors import UsageError
from deployctl.stages import secret_rules as rules
from deployctl.stages.context import BuildContext

DOCS = "docs/build-secrets.md"
RUNTIME_SECRETS = "pass secrets at run time instead (services.*.secrets in deploy.yaml)"


class SecretsRefused(UsageError):
    """The build or push would put secrets into an image (exit 2: the fix is in the project)."""


@dataclass(frozen=True)
class Finding:
    path: str
    reason: str
    by_content: bool


def findings(ctx: BuildContext, allowed: Iterable[str] = ()) -> list[Finding]:
    """Files of the context (after .dockerignore) that look like secrets, minus allowed ones.
    The files of a `.git` or credentials directory are one finding (the directory), plus one for
    each of them whose content is a credential (`.git/config` with a CI token)."""
    allowed = list(allowed)
    exact = {a.strip("/") for a in allowed}
    found: list[Finding] = []
    dirs: dict[str, tuple[str, int]] = {}
    for path in ctx.files:
        if path in exact:
            continue
        by_name = rules.name_reason(path)
        by_content = _content_reason(ctx.root / path, path)
        # A listed directory covers the names below it, not a credential found in a file's content.
        if by_name and not rules.matching([path], allowed):
            where = ignore_line(path)
            if where != _escape(path):  # inside .git or a credentials directory
                reason, count = dirs.get(where, (by_name, 0))
                dirs[where] = (reason, count + 1)
                if by_content:
                    found.append(Finding(path, by_content, True))
                continue
            found.append(Finding(path, by_name, False))
        elif by_content:
            found.append(Finding(path, by_content, True))
    for where, (reason, count) in dirs.items():
        found.append(Finding(f"{where}/", f"{reason}, {count} files", False))
    return sorted(found, key=lambda f: f.path)


def secret_files(ctx: BuildContext, allowed: Iterable[str] = ()) -> list[str]:
    return [f.path for f in findings(ctx, allowed)]


def _content_reason(full: Path, path: str) -> str | None:
    try:
        with open(full, "rb") as fh:
            head = fh.read(rules.BINARY_SNIFF)
            if rules.is_binary(head):
                return None  # model weights, images, git objects: not read further
            data = head + fh.read(rules.SCAN_BYTES - len(head))
    except OSError:
        return None  # unreadable files are reported by the hash and tar steps, with the fix
    return rules.content_reason(data, path)


def refuse_secrets(ctx: BuildContext, context_label: str, allowed: Iterable[str] = (),
                   build_args: dict[str, str] | None = None) -> None:
    """Raise SecretsRefused naming every secret-looking file and the .dockerignore line for it,
    and every secret-looking build arg (one error, so that one run shows everything to fix)."""
    found = findings(ctx, allowed)
    try:
        refuse_secret_build_args(build_args or {})
    except SecretsRefused as args_refused:
        if not found:
            raise
        message = _files_message(found, context_label, ctx.dockerfile_name)
        raise SecretsRefused(message + ".\nAlso " + args_refused.message,
                             hint=_files_hint(context_label) + " Build args: " + (args_refused.hint or "")) from None
    if not found:
        return
    raise SecretsRefused(_files_message(found, context_label, ctx.dockerfile_name), hint=_files_hint(context_label))


def _fix(path: str, dockerfile: str) -> str:
    if path in (dockerfile, ".dockerignore"):
        return f"{path} is always sent, take the value out of it"
    return f"exclude with `{ignore_line(path.rstrip('/'))}`"


def _files_message(found: list[Finding], context_label: str, dockerfile: str) -> str:
    # One line per file, in words the redactor leaves alone (no `name: value` shapes).
    label = context_label.rstrip("/") or "."
    shown = found[:20]
    lines = [f"{f.path} ({f.reason}; {_fix(f.path, dockerfile)})" for f in shown]
    if len(found) > len(shown):
        lines.append(f"and {len(found) - len(shown)} more")
    return (f"refusing to build: the build context {label}/ would send {len(found)} secret-looking "
            f"file(s) to the Docker daemon, and a COPY would bake them into the image for anyone who "
            "can pull it:\n  " + ",\n  ".join(lines))


def _files_hint(context_label: str) -> str:
    label = context_label.rstrip("/") or "."
    return (f"add the lines shown to {label}/.dockerignore or move the files out of the context; "
            f"{RUNTIME_SECRETS}. A file that must ship goes into image.allow_secret_files (see {DOCS}).")


def ignore_line(path: str) -> str:
    """The .dockerignore line that keeps `path` out: its credentials directory or .git when it is
    inside one, else the path itself (anchored, so it matches nothing else)."""
    parts = path.split("/")
    for i, seg in enumerate(parts[:-1]):
        if seg.lower() == rules.GIT_DIR or seg.lower() in rules.SECRET_DIRS:
            line = "/".join(parts[: i + 1])
            break
    else:
        line = path
    return _escape(line)


def _escape(line: str) -> str:
    """`line` as a .dockerignore pattern matching exactly that path: pattern syntax, and spaces
    the parser would trim, are escaped; a leading `/` keeps a `#` or `!` from starting a comment
    or an exception."""
    escaped = "".join("\\" + c if c in "*?[]\\" else c for c in line)
    if escaped != escaped.lstrip():
        escaped = "\\" + escaped
    if escaped != escaped.rstrip():  # trailing spaces are trimmed even when escaped: `?` matches them
        stripped = escaped.rstrip()
        escaped = stripped + "?" * (len(escaped) - len(stripped))
    return "/" + escaped if escaped[0] in "!#" else escaped


def refuse_secret_build_args(build_args: dict[str, str]) -> None:
    """Raise SecretsRefused for build args whose name or value looks secret, without the value:
    the classic builder records every build arg a RUN step sees in the image history
    (`|1 NPM_TOKEN=…`), readable by anyone who can pull the image."""
    found = rules.secret_args(build_args)
    if not found:
        return
    names = ", ".join(f"{name} ({why})" for name, why in found)
    raise SecretsRefused(
        f"refusing to build: build args are stored in plain text in the image history "
        f"(`docker history`, image config) and shown in the build log; refused here: {names}",
        hint=f"remove them from image.build_args and {RUNTIME_SECRETS}, read by the app at start-up. "
             "BuildKit secret mounts (`RUN --mount=type=secret`) would keep a build-time secret out "
             "of the image, but deployctl builds through the Docker Engine API with the classic "
             f"builder, where they are not available. Rename a harmless arg whose name only sounds secret "
             f"(see {DOCS})",
    )
