"""After the build, before anything leaves the machine: look at the image itself.

The context check stops the secrets deployctl can see before a build. This one catches what
gets into the image some other way: a file a RUN step wrote (`RUN echo $TOKEN > ~/.npmrc`),
a base image that carries a key, an `ARG TOKEN=…` default or `ENV API_KEY=…` in the
Dockerfile, a credential typed into a RUN line. It reads

- the history (`created_by` of each step): the `|N NAME=value` build args a RUN step saw,
  `ARG`/`ENV` values, and token shapes anywhere in a command;
- every layer's file list from `docker save`: secret file names (secret_rules.name_reason),
  and the content of the few files that are secrets only by content (`*.pem`, `.npmrc`, …).
  A file a later layer deletes still counts: its layer is pulled with the image.

Found → SecretsRefused (exit 2), naming the layer and path or the history step and arg, never
the value. `image.allow_secret_files` entries match image paths: an absolute entry
(`/etc/ssl/private/test.key`) as is, a context-relative one (`certs/test-only.key`) wherever
it was copied to.

Reading the layers streams the whole image once (about as long as a local `docker save`: for
a 230 MB image, 2 s of the engine's CPU and 0.5 s of ours). What it found, before
`allow_secret_files` is applied, is kept per image id in the user's cache directory
(`~/.cache/deployctl/image-checks/`), so an image that is already built (`run` again, `push`
after `build`, the same image for another environment) is not streamed again. An image id is
the digest of the image's config, which names every layer's content digest and the history:
the same id is the same layers and history. The entries are keyed by a digest of these rules
too, so a deployctl with other rules checks again. They hold paths and reasons, never content.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from deployctl.stages import secret_rules as rules
from deployctl.stages.context_check import DOCS, RUNTIME_SECRETS, SecretsRefused

_FOUND: dict[str, tuple[list[str], list[tuple[int, str, str]]]] = {}  # this process's checks by image id
_LOCK = threading.Lock()
# `|2 A=1 B=2 /bin/sh -c …`: the build args a classic-builder RUN step recorded.
_RUN_ARGS = re.compile(r"^\|([0-9]+) ")
# `/bin/sh -c #(nop)  ARG NAME=value` / `ENV A=1 B=2`.
_NOP = re.compile(r"#\(nop\)\s+(ARG|ENV)\s+(.*)$", re.DOTALL)


def history_findings(history: list[str]) -> list[str]:
    """Problems in the `created_by` lines (oldest first), described without values."""
    found = []
    for step, line in enumerate(history, start=1):
        for kind, name, value in _assignments(line):
            reason = rules.build_arg_reason(name, value)
            if reason:
                found.append(f"history step {step}, {kind} {name} ({reason})")
        content = rules.content_reason(line.encode(), deep=True)
        if content:
            found.append(f"history step {step}, a command holding {content}")
    return found


def _assignments(line: str) -> list[tuple[str, str, str]]:
    out = []
    run = _RUN_ARGS.match(line)
    if run:
        words = line[run.end():].split(" ")
        for word in words[: int(run.group(1))]:
            name, _, value = word.partition("=")
            out.append(("build arg", name, value))
    nop = _NOP.search(line)
    if nop:
        kind = "ARG default" if nop.group(1) == "ARG" else "ENV"
        for word in nop.group(2).split():
            name, sign, value = word.partition("=")
            if sign:
                out.append((kind, name, value.strip("\"'")))
    return out


def _allowed(path: str, allowed: Iterable[str]) -> bool:
    for entry in allowed:
        a = entry.strip("/")
        if entry.startswith("/"):
            if path == a or path.startswith(a + "/"):
                return True
        elif path == a or path.startswith(a + "/") or path.endswith("/" + a) or f"/{a}/" in f"/{path}":
            return True
    return False


# What every Debian/Ubuntu image carries and is public by design: the package manager's signing
# keyrings (public keys, *.gpg), manual pages (env.1.gz) and the programs themselves (apt-key).
# Found by name only, so content checks (a private key block) still apply to these paths.
OS_PUBLIC_PATHS = re.compile(r"^(?:usr/share/keyrings/|etc/apt/trusted\.gpg\.d/|usr/share/man/|usr/share/doc/|"
                             r"usr/(?:local/)?s?bin/[^/]+$|s?bin/[^/]+$)")


def layer_findings(files: Iterable[tuple[int, str, bytes]], allowed: Iterable[str]) -> list[str]:
    """Secret-looking files among (layer, path, head) of an image's layers."""
    return _allowed_findings(layer_candidates(files), allowed)


def layer_candidates(files: Iterable[tuple[int, str, bytes]]) -> list[tuple[int, str, str]]:
    """(layer, path, reason) of every secret-looking file, before `allow_secret_files`."""
    found = []
    for layer, path, head in files:
        name = path.rsplit("/", 1)[-1]
        if name.startswith(".wh."):
            continue  # a whiteout marks a deletion; the file it deletes was listed with its layer
        reason = None if OS_PUBLIC_PATHS.match(path) else rules.name_reason(path)
        if reason is None and head:
            reason = rules.content_reason(head, path)
        if reason:
            found.append((layer, path, reason))
    return found


def _allowed_findings(candidates: Iterable[tuple[int, str, str]], allowed: Iterable[str]) -> list[str]:
    allowed = list(allowed)
    return [f"layer {layer}, /{path} ({reason})" for layer, path, reason in candidates
            if not _allowed(path, allowed)]


def _rules_digest() -> str:
    """Changes whenever what counts as a secret changes (these rules or this module)."""
    digest = hashlib.sha256()
    for module in (rules.__file__, __file__):
        digest.update(Path(module).read_bytes())
    return digest.hexdigest()[:16]


def _cache_file(image_id: str) -> Path | None:
    if not re.fullmatch(r"sha256:[0-9a-f]{64}", image_id):
        return None  # only a content-addressed id says "same image"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "deployctl" / "image-checks"
    return base / _rules_digest() / f"{image_id.removeprefix('sha256:')}.json"


def _load(image_id: str) -> tuple[list[str], list[tuple[int, str, str]]] | None:
    with _LOCK:
        if image_id in _FOUND:
            return _FOUND[image_id]
    path = _cache_file(image_id)
    if path is None:
        return None
    try:
        data = json.loads(path.read_text())
        history = [str(line) for line in data["history"]]
        layers = [(int(layer), str(p), str(reason)) for layer, p, reason in data["layers"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # missing, unreadable or from another format: check the image again
    return history, layers


def _save(image_id: str, history: list[str], layers: list[tuple[int, str, str]]) -> None:
    with _LOCK:
        _FOUND[image_id] = (history, layers)
    path = _cache_file(image_id)
    if path is None:
        return
    tmp = ""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "w") as fh:
            json.dump({"history": history, "layers": layers}, fh)
        os.replace(tmp, path)
    except OSError:  # a cache that cannot be written only costs a re-check
        if tmp:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def check_image(client: Any, ref: str, allowed: Iterable[str], log: Any = None) -> None:
    """Refuse (SecretsRefused) an image whose history or layers hold secrets."""
    # lazy: the docker SDK stays off validate, plan and the skip path
    from deployctl.adapters import engine as docker_engine

    info = docker_engine.image_info(client, ref)
    image_id = info.id if info is not None and info.id else ""
    known = _load(image_id) if image_id else None
    if known is None:
        exact = image_id or ref  # by id: a tag moved by another build meanwhile is not what gets recorded
        history = history_findings(docker_engine.image_history(client, exact))
        files = docker_engine.image_layer_files(client, exact, wanted=rules.is_container,
                                                max_bytes=rules.SCAN_BYTES)
        known = (history, layer_candidates(files))
        if image_id:
            _save(image_id, *known)
    found = known[0] + _allowed_findings(known[1], allowed)
    if found:
        shown = found[:20] + ([f"… and {len(found) - 20} more"] if len(found) > 20 else [])
        raise SecretsRefused(
            f"refusing to push {ref}: the built image holds secret-looking content, readable by "
            "anyone who can pull it:\n  " + ",\n  ".join(shown),
            hint="keep secrets out of the Dockerfile (no ARG/ENV values, no files written by RUN) "
                 f"and {RUNTIME_SECRETS}; a file that must ship goes into image.allow_secret_files "
                 f"(see {DOCS})",
        )
    if log is not None:
        log(f"checked {ref}: no secret-looking files in its layers or values in its history")
