"""`deployctl unlock`: break the deploy lock left by a deploy that died."""

from __future__ import annotations

import typer

from deployctl.commands.common import ENV_OPTION, FILE_OPTION, YES_OPTION, confirm, load


def unlock(
    file: str = FILE_OPTION,
    env: str = ENV_OPTION,
    yes: bool = YES_OPTION,
) -> None:
    """Break the deploy lock of an environment left by a deploy that died.

    Only for a stale lock: a live holder keeps deploying, and another deploy may now start
    alongside it. A dead holder's lock also expires by itself one lease (60 s) after it died.

    \b
    Example:  deployctl unlock --env prod
    """
    from deployctl.app import unlock as use  # lazy: pydantic and the config stay off --help

    cfg = load(file, env)
    target, holder = use.holder(cfg)
    if target.unlock_note:
        typer.echo(f"{cfg.app}/{env} {target.unlock_note}")
        return
    if holder is None:
        typer.echo(f"{cfg.app}/{env} is not locked")
        return
    typer.echo(f"warning: {cfg.app}/{env} is locked by {holder.describe()}", err=True)
    typer.echo("warning: if that deploy is still running, breaking its lock lets a second deploy run "
               "alongside it", err=True)
    confirm(f"Break the deploy lock of {cfg.app}/{env}?", yes)
    use.break_lock(target, holder)
    typer.echo(f"deploy lock of {cfg.app}/{env} broken (it was held by {holder.who}, pid {holder.pid} "
               f"on {holder.host})")


def register(app: typer.Typer) -> None:
    app.command()(unlock)
