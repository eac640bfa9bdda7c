"""Preflight of the local (docker) target: what `run` checks before lint, test and build start.

A missing secret or a taken port used to be found at deploy time, after the build and push;
everything here is cheap and changes nothing, so it runs first and reports every problem at once,
one per line (PreflightFailed, exit 1):
- the Docker engine answers;
- each service's stable port is free, or already this environment's proxy (or one whose
  environment has nothing running, which the deploy takes over);
- every secret the services read is set in the deployer's environment;
- when this run builds and the commit's image is not in the local engine yet, each base image
  of the Dockerfile is in the local engine or its registry answers for it (nothing is pulled).
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from deployctl import localproxy
from deployctl.config.model import ResolvedConfig
from deployctl.errors import DeployctlError, PreflightFailed
from deployctl.targets import docker

_FROM = re.compile(r"^\s*FROM\s+(?:--platform=\S+\s+)?(?P<image>\S+)(?:\s+AS\s+(?P<name>\S+))?\s*$", re.IGNORECASE)
_ARG = re.compile(r"^\s*ARG\s+(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:=(?P<value>\S*))?\s*$", re.IGNORECASE)
_VAR = re.compile(r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}"
                  r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")


def base_images(dockerfile: str, build_args: Mapping[str, str]) -> list[str]:
    """The images the Dockerfile's FROM lines pull, in order: not `scratch`, not its own stages.
    ARGs declared before the first FROM are expanded (build args win over their defaults); a
    reference still holding an unknown variable is left out (the build itself will say)."""
    text = re.sub(r"\\\r?\n", " ", dockerfile)
    args: dict[str, str] = {}
    stages: set[str] = set()
    seen_from = False
    out: list[str] = []
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        arg = _ARG.match(line)
        if arg and not seen_from:
            name = arg.group("name")
            args[name] = str(build_args.get(name, arg.group("value") or ""))
            continue
        found = _FROM.match(line)
        if not found:
            continue
        seen_from = True
        unknown = False

        def expand(m: re.Match[str]) -> str:
            nonlocal unknown
            name = m.group("braced") or m.group("bare")
            value = str(build_args.get(name, args.get(name, "")))
            if not value:
                value = m.group("default") or ""
            unknown = unknown or not value
            return value

        image = _VAR.sub(expand, found.group("image"))
        earlier_stage = image.lower() in stages
        if found.group("name"):
            stages.add(found.group("name").lower())
        if not (unknown or earlier_stage or image.lower() == "scratch" or image in out):
            out.append(image)
    return out


def problems(cfg: ResolvedConfig, *, builds: bool, deploys: bool, context_dir: Path,
             environ: Mapping[str, str], connect: Callable[[], Any], image_ref: str = "") -> list[str]:
    """Every problem found, one line each; [] when the run can go ahead. Ports and secrets
    matter to a run that deploys, base images to one that builds; the engine to both."""
    found: list[str] = []
    client = None
    try:
        client = connect()
    except DeployctlError as exc:
        found.append(exc.message)
    if deploys:
        found.extend(_ports(cfg, client))
        try:
            docker.local_secrets(cfg, environ)
        except PreflightFailed as exc:
            found.append(exc.message)
    if builds and client is not None and not _built(client, image_ref):
        found.extend(_bases(cfg, client, context_dir))
    return found


def check(cfg: ResolvedConfig, *, builds: bool, deploys: bool, context_dir: Path, environ: Mapping[str, str],
          connect: Callable[[], Any], image_ref: str = "", log: Callable[[str], None] | None = None) -> None:
    """PreflightFailed listing every problem; else one `preflight: ok` line to `log`."""
    if not (builds or deploys):
        return
    found = problems(cfg, builds=builds, deploys=deploys, context_dir=context_dir, environ=environ,
                     connect=connect, image_ref=image_ref)
    if found:
        n = len(found)
        raise PreflightFailed(
            f"preflight found {n} problem{'s' if n != 1 else ''} for {cfg.app}/{cfg.env_name} on the local "
            "Docker engine; no stage ran:\n" + "\n".join(f"  - {p}" for p in found),
            hint="fix them all, then run again")
    if log is not None:
        log("preflight: ok (Docker engine" + (", ports, secrets" if deploys else "")
            + (", base images" if builds else "") + ")")


def _ports(cfg: ResolvedConfig, client: Any) -> list[str]:
    out = []
    for name, svc in cfg.services.items():
        if not svc.port:
            continue
        port = docker.local_port(svc)
        proxy = localproxy.status(port)
        owner = str((proxy or {}).get("owner", ""))
        if proxy is not None:
            if owner.startswith(f"{cfg.app}/{cfg.env_name}/") or client is None or not _alive(client, owner):
                continue
            out.append(f"services.{name}: 127.0.0.1:{port} is the stable port of {owner.rsplit('/', 1)[0]} "
                       f"(deployctl's proxy, pid {proxy.get('pid')}); give services.{name}.local_port a free port")
            continue
        if not _free(port):
            out.append(f"services.{name}: 127.0.0.1:{port} is taken by another program; give "
                       f"services.{name}.local_port a free port")
    return out


def _alive(client: Any, owner: str) -> bool:
    app, _, rest = owner.partition("/")
    env, _, service = rest.partition("/")
    labels = [f"{docker.L_APP}={app}", f"{docker.L_ENV}={env}", f"{docker.L_SERVICE}={service}",
              f"{docker.L_ROLE}={docker.ROLE_SERVICE}"]
    return bool(client.containers.list(ignore_removed=True, filters={"label": labels, "status": "running"}))


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _built(client: Any, image_ref: str) -> bool:
    """The commit's image is already in the local engine: the build will not need its bases."""
    from deployctl.adapters import engine  # lazy: the docker SDK stays off validate and plan

    return bool(image_ref) and engine.image_info(client, image_ref) is not None


def _bases(cfg: ResolvedConfig, client: Any, context_dir: Path) -> list[str]:
    from deployctl.adapters import engine  # lazy: the docker SDK stays off validate and plan

    path = context_dir / cfg.image.dockerfile
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return [f"image.dockerfile: cannot read {path}: {exc.strerror or exc}"]
    out = []
    for ref in base_images(text, {k: str(v) for k, v in cfg.image.build_args.items()}):
        why = engine.resolvable(client, ref)
        if why:
            out.append(f"base image {ref} (FROM in {cfg.image.dockerfile}): {why}")
    return out
