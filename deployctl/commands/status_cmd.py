"""`deployctl status`: parse, call deployctl.app.status, render (once, or live with --watch)."""

from __future__ import annotations

import sys
from typing import Any

import typer

from deployctl.commands.common import ENV_OPTION, FILE_OPTION, JSON_OPTION, load, parse_lock_wait, print_json


def status(
    file: str = FILE_OPTION,
    env: str = ENV_OPTION,
    watch: bool = typer.Option(False, "--watch", "-w",
                               help="Refresh until every service's rollout is COMPLETED (exit 0) or "
                                    "FAILED/rolled back (exit 1)."),
    interval: float = typer.Option(5.0, "--interval", min=0.01, help="Seconds between refreshes with --watch."),
    timeout: str | None = typer.Option(None, "--timeout", metavar="DURATION",
                                       help="Give up watching after this long (exit 1)."),
    name: str | None = typer.Option(None, "--name", help="A preview copy's name, for environments with "
                                                          "preview: true (e.g. pr-42); without it, such an "
                                                          "environment lists its live previews."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Per service: running release, image digest, task definition revision, running/desired,
    rollout state, target health and the last 5 events.

    JSON (schema deployctl.status/v1, the same keys for every target; docs/cli.md "--json output"):
    {schema, app, env, target, cluster, settled, ok, current, services: [...]}.

    A preview environment without --name: its live previews (JSON schema deployctl.previews/v1).

    \b
    Examples:  deployctl status --env staging
               deployctl status --env prod --watch --interval 2
               deployctl status --env preview --name pr-42
    """
    # lazy: pydantic and the config stay off --help
    from deployctl.app import previews
    from deployctl.app import status as use

    cfg = load(file, env)
    if name is None and cfg.environment.preview:
        if watch:
            raise previews.name_required(cfg, "status --watch")
        found = previews.live(cfg)
        if as_json:
            print_json(previews.previews_doc(cfg, found))
        else:
            typer.echo("\n".join(previews.previews_lines(cfg, found)))
        return
    target = previews.target_for(cfg, name)
    if not watch:
        view = target.status()
        if as_json:
            print_json(view.doc)
        else:
            typer.echo("\n".join(view.lines))
        return
    limit = parse_lock_wait(timeout, "--timeout") if timeout else None
    with _Screen(sys.stderr if as_json else sys.stdout) as screen:
        view, settled = use.watch(target, interval=interval, limit=limit, show=screen.show)
    if as_json:
        # Always the document, a timed-out watch included (settled: false): CI reads stdout.
        print_json(view.doc)
    use.verdict(view, env, settled=settled, limit=limit)
    if not as_json:
        typer.echo(view.done)


class _Screen:
    """Where a watch draws: redrawn in place on a terminal, else printed when it changed."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.live: Any = None
        self.last: tuple[str, ...] = ()

    def __enter__(self) -> _Screen:
        from deployctl.ui import _is_tty  # lazy: --help loads only what it needs

        if _is_tty(self.stream):
            # lazy: rich stays off --help
            from rich.console import Console
            from rich.live import Live
            from rich.text import Text

            self.live = Live(Text(""), console=Console(file=self.stream), refresh_per_second=4, transient=False)
            self.live.start()
        return self

    def show(self, view: Any) -> None:
        if self.live is not None:
            from rich.text import Text  # lazy: rich stays off --help

            self.live.update(Text("\n".join(view.lines)))
        elif view.lines != self.last:
            print("\n".join(view.lines), file=self.stream, flush=True)
        self.last = view.lines

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.stop()


def register(app: typer.Typer) -> None:
    app.command()(status)
