"""`deployctl down`: take a local (target: docker) environment off this machine."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

import typer

from deployctl.commands.common import ENV_OPTION, FILE_OPTION, JSON_OPTION, YES_OPTION, confirm, load, print_json

if TYPE_CHECKING:
    from deployctl.targets.docker import DownPlan


def down(
    file: str = FILE_OPTION,
    env: str = ENV_OPTION,
    images: bool = typer.Option(False, "--images", help="Also remove the environment's images: its release "
                                                        "tags and the app's build tags of the images it ran."),
    as_json: bool = JSON_OPTION,
    yes: bool = YES_OPTION,
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be removed; change nothing."),
) -> None:
    """Remove a local environment: its containers (with the release records `history` reads),
    the proxies on its stable ports, and its networks. Images stay unless --images is given
    (an image another environment still uses stays even then). Refused while a deploy of the
    environment runs (exit 1), and for environments that do not run on this machine (exit 2).
    Asks first; without a terminal it needs --yes.

    \b
    Examples:  deployctl down --env dev
               deployctl down --env dev --images --yes
    """
    from deployctl.app import down as use  # lazy: pydantic and the config stay off --help

    cfg = load(file, env)
    target, plan = use.prepare(cfg, images=images)
    where = f"{cfg.app}/{cfg.env_name}"
    if plan.empty:
        if as_json:
            print_json({"schema": "deployctl.down/v1", "dry_run": dry_run, **asdict(plan), "kept": []})
        else:
            typer.echo(f"{where}: nothing to remove on this machine")
        return
    if dry_run or not as_json:
        for line in _describe(plan):
            typer.echo(("would remove " if dry_run else "to remove: ") + line, err=as_json)
    if dry_run:
        if as_json:
            print_json({"schema": "deployctl.down/v1", "dry_run": True, **asdict(plan), "kept": []})
        return
    confirm(f"Take {where} down (release history included)?", yes)
    report = use.down(target, plan, lambda line: None if as_json else typer.echo(line))
    if as_json:
        print_json({"schema": "deployctl.down/v1", "dry_run": False, **asdict(plan),
                    "removed_images": list(report.removed_images), "kept": list(report.kept)})
        return
    for line in report.kept:
        typer.echo(f"left alone: {line}")
    typer.echo(f"{where} is down" + ("" if images else "; its images stay (--images removes them)"))


def _describe(plan: DownPlan) -> list[str]:
    lines = []
    if plan.containers:
        lines.append(f"{len(plan.containers)} container(s): {', '.join(plan.containers)}")
    if plan.proxies:
        lines.append("proxies on " + ", ".join(f"127.0.0.1:{port}" for port in plan.proxies))
    if plan.networks:
        lines.append(f"network(s): {', '.join(plan.networks)}")
    if plan.images:
        lines.append(f"image tag(s): {', '.join(plan.images)}")
    return lines


def register(app: typer.Typer) -> None:
    app.command()(down)
