"""`deployctl promote SOURCE DEST`: parse, call deployctl.app.promote, render."""

from __future__ import annotations

import sys

import typer

from deployctl.commands.common import (
    FILE_OPTION,
    JSON_OPTION,
    LOCK_WAIT_OPTION,
    YES_OPTION,
    confirm,
    engine_runner,
    load,
    notify,
    parse_lock_wait,
)


def promote(
    source: str = typer.Argument(..., help="Environment to take the image from, e.g. staging."),
    dest: str = typer.Argument(..., help="Environment to deploy it to, e.g. prod."),
    file: str = FILE_OPTION,
    yes: bool = YES_OPTION,
    as_json: bool = JSON_OPTION,
    lock_wait: str | None = LOCK_WAIT_OPTION,
    no_rollback: bool = typer.Option(False, "--no-rollback", help="Leave a failed deploy in place."),
    allow_frontend_api_url_mismatch: bool = typer.Option(
        False, "--allow-frontend-api-url-mismatch",
        help="Promote the frontend although it was built with SOURCE's backend URL (frontend.api_url_env)."),
) -> None:
    """Deploy to DEST exactly the image (by digest) that SOURCE runs, with DEST's settings.

    SOURCE must be DEST's `promote_from`, and SOURCE's latest release must have succeeded
    and be settled. The deploy is watched like `deployctl run`. Exit codes: 0 ok, 1 refused
    or failed, 2 usage, 130 interrupted.

    \b
    Example:  deployctl promote staging prod --yes
    """
    # lazy: pydantic and the config stay off --help
    from deployctl.app import promote as use
    from deployctl.targets import DeployOptions

    promotion = use.prepare(lambda env: load(file, env), source, dest,
                            allow_frontend_api_url_mismatch=allow_frontend_api_url_mismatch)
    out = sys.stderr if as_json else sys.stdout
    for line in promotion.summary():
        print(line, file=out)
    confirm(f"Deploy this image to {dest}?", yes)
    options = DeployOptions(no_rollback=no_rollback, yes=yes, lock_wait=parse_lock_wait(lock_wait))
    dest_cfg = load(file, dest)
    sha = promotion.chosen.release.git_sha
    runner = engine_runner(promotion.target, as_json=as_json,
                           on_result=lambda report: notify(dest_cfg, "promote", report, git_sha=sha))
    code = use.execute(promotion, options, runner)
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command()(promote)
