"""`deployctl logs`: an environment's container logs (CloudWatch Logs on ECS, the engine's
container output locally), redacted.

Parsing and rendering only; the reads are the target's (deployctl.app.log_readers).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import typer

from deployctl.app.session import SESSION
from deployctl.commands.common import ENV_OPTION, FILE_OPTION, JSON_OPTION, load, parse_lock_wait
from deployctl.errors import EXIT_INTERRUPTED

# Colours per service, in deploy.yaml order (the same service keeps its colour in one output).
_COLOURS = ("cyan", "magenta", "green", "yellow", "blue", "bright_red")


def logs(
    service: str | None = typer.Argument(None, help="Only this service (deploy.yaml name). Default: all."),
    file: str = FILE_OPTION,
    env: str = ENV_OPTION,
    since: str | None = typer.Option(None, "--since", metavar="DURATION",
                                     help="Start this long ago (e.g. 30s, 10m, 2h). Default: 10m, or all of "
                                          "the release's lines with --release."),
    follow: bool = typer.Option(False, "--follow", "-F",
                                help="Keep printing new lines as they arrive (Ctrl-C stops, exit 130)."),
    release: str | None = typer.Option(None, "--release", metavar="ID",
                                       help="Only the tasks of this release (see `deployctl history`)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Print the services' container logs, oldest first, redacted: from CloudWatch Logs on ECS,
    from the Docker engine for a local environment (the containers it still has).

    Each line: time (UTC), service, task id, message. --json prints one document
    (schema deployctl.logs/v1: {schema, app, env, since, release, truncated, events: [...]});
    with --follow, one JSON object per line (schema deployctl.logs.event/v1).

    \b
    Examples:  deployctl logs --env staging
               deployctl logs --env prod api --since 1h
               deployctl logs --env prod --follow
               deployctl logs --env staging --release 20261207-1153-3f2a9c1
    """
    # lazy: pydantic, boto3 and the config stay off --help
    from deployctl.adapters import aws
    from deployctl.app import log_readers
    from deployctl.app.run import run_redactor
    from deployctl.targets import log_lines as use

    since_s = parse_lock_wait(since, "--since") if since else (0.0 if release else 600.0)
    cfg = load(file, env)
    req = use.Request(service=service, since_s=since_s, release=release)
    # A release without --since: all its tasks' lines (its streams bound them, not the clock).
    start_ms = 0 if release and not since else int((time.time() - since_s) * 1000)
    with aws.aws_errors(f"reading the logs of {cfg.env_name}"):
        reader, services = log_readers.open_reader(cfg, req, run_redactor(cfg))
        colours = {name: _COLOURS[i % len(_COLOURS)] for i, name in enumerate(services)}
        if not follow:
            lines = reader.read(start_ms)
            if as_json:
                doc = {"schema": use.SCHEMA, "app": cfg.app, "env": cfg.env_name,
                       "since": since or ("" if release else "10m"),
                       "release": release, "truncated": reader.truncated,
                       "events": [line.to_json() for line in lines]}
                sys.stdout.write(json.dumps(doc, indent=2) + "\n")
            else:
                _print(lines, colours)
                if not lines:
                    print(f"no log lines of {', '.join(colours)} in {cfg.env_name} since {since or '10m'} ago",
                          file=sys.stderr)
            if reader.truncated:
                print(f"note: only the first {use.MAX_EVENTS} lines are shown; narrow --since or name a "
                      "service", file=sys.stderr)
            return
        try:
            for line in reader.follow(start_ms):
                if as_json:
                    sys.stdout.write(json.dumps({"schema": use.EVENT_SCHEMA, **line.to_json()}) + "\n")
                    sys.stdout.flush()
                else:
                    _print([line], colours)
        except KeyboardInterrupt:
            # Ctrl-C is how --follow ends: say so once, no traceback, exit 130.
            print(f"stopped following the logs of {cfg.env_name}", file=sys.stderr)
            SESSION.interrupted = False  # handled here: no second "interrupted" line from the CLI
            raise typer.Exit(EXIT_INTERRUPTED) from None


def _print(lines: list[Any], colours: dict[str, str]) -> None:
    from rich.console import Console  # lazy: rich stays off --help
    from rich.text import Text

    out = Console(highlight=False, soft_wrap=True)
    for line in lines:
        text = Text()
        text.append(line.time, style="dim")
        text.append(f" {line.service}", style=colours.get(line.service, ""))
        text.append(f" {line.task_id[:8]} ", style="dim")
        text.append(line.message)  # plain text: a log line's [brackets] are never markup
        out.print(text)
    sys.stdout.flush()


def register(app: typer.Typer) -> None:
    app.command()(logs)
