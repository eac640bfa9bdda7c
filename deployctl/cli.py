"""Command-line entry point: parse, call a command, map errors to exit codes.

Imports nothing heavy at module load: `deployctl --help` must not pull in boto3, docker or
pydantic. Each command module registers itself and imports its work lazily.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import threading
import traceback
from typing import Any

import typer

from deployctl import __version__
from deployctl.app.session import SESSION
from deployctl.errors import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    ConfigError,
    ConfigProblem,
    DeployctlError,
)

COMMAND_MODULES = (
    "deployctl.commands.config_cmds",  # validate, config, plan, schema
    "deployctl.commands.run_cmd",  # run
    "deployctl.commands.promote_cmd",  # promote
    "deployctl.commands.rollback_cmd",  # rollback
    "deployctl.commands.status_cmd",  # status
    "deployctl.commands.history_cmd",  # history
    "deployctl.commands.unlock_cmd",  # unlock
    "deployctl.commands.init_cmd",  # init
    "deployctl.commands.iam_cmd",  # iam-policy
    "deployctl.commands.preview_cmds",  # destroy
    "deployctl.commands.monitor_cmds",  # monitor apply, metrics
    "deployctl.commands.bootstrap_cmd",  # bootstrap
    "deployctl.commands.diff_cmd",  # diff
    "deployctl.commands.scale_cmd",  # scale
    "deployctl.commands.logs_cmd",  # logs
    "deployctl.commands.task_cmd",  # task run
    "deployctl.commands.down_cmd",  # down
    "deployctl.commands.resume_cmd",  # resume
)

app = typer.Typer(
    name="deployctl",
    help="From a git commit to a healthy deploy: lint → test → build → push → deploy on ECS Fargate "
         "or the local Docker engine.\n\nStart with `deployctl validate` and `deployctl plan --env staging`.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)



def _version(value: bool) -> None:
    if value:
        typer.echo(f"deployctl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show tracebacks and debug details."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    SESSION.verbose = verbose


for _name in COMMAND_MODULES:
    try:
        _module = importlib.import_module(_name)
    except ModuleNotFoundError as exc:  # a command module not written yet is simply absent
        if exc.name != _name:
            raise
        continue
    _module.register(app)


def _print_error(exc: DeployctlError) -> None:
    # Errors leave through the redactor too (stderr and the ::error annotations): a message can
    # quote a value, a URL or a command line.
    from deployctl.ui.console import scrub  # lazy: only an error needs it; --help stays lean

    _print_error_text(exc, scrub)


def _print_error_text(exc: DeployctlError, scrub: Any) -> None:
    err = sys.stderr
    if isinstance(exc, ConfigError) and not exc.problems:  # never "0 problems": that reads as success
        print("error: the deploy configuration was refused without a located problem "
              "(a deployctl bug: please report it with --verbose output)", file=err)
        return
    if isinstance(exc, ConfigError):
        n = len(exc.problems)
        print(f"error: {n} problem{'s' if n != 1 else ''} in deploy configuration:", file=err)
        for problem in exc.problems:
            # The location and key path are deployctl's own text (and `secrets: …` would read as
            # an assignment): only the message and hint are scrubbed.
            print(f"  {_scrubbed(problem, scrub).format()}", file=err)
        if os.environ.get("GITHUB_ACTIONS") == "true":
            # lazy: only an error needs it; --help stays lean
            from deployctl.ui.github import escape_data, escape_property

            for p in exc.problems:
                message = _scrubbed(p, scrub).message
                text = escape_data(f"{p.path}: {message}" if p.path else message)
                print(f"::error file={escape_property(p.file)},line={p.line},col={p.col}::{text}")
        return
    print(scrub(f"error: {exc.message}"), file=err)
    if exc.hint:
        print(scrub(f"hint: {exc.hint}"), file=err)
    if os.environ.get("GITHUB_ACTIONS") == "true":
        # Errors before any stage ran (guardrails, locks, --image, AWS access) get the same
        # annotation as a failed stage; the runner reads workflow commands from stdout.
        from deployctl.ui.github import error_command  # lazy: only an error needs it; --help stays lean

        text = f"{exc.message} (hint: {exc.hint})" if exc.hint else exc.message
        print(error_command("deployctl", text), flush=True)


def _scrubbed(problem: Any, scrub: Any) -> Any:
    """The problem with its message and hint scrubbed. A YAML syntax error is the parser's prose
    about a character (`while scanning for the next token: found character '\\t'`, which reads
    as `token: found`); it quotes no value, so it is left as it is."""
    if problem.message.startswith("YAML syntax error:"):
        return problem
    hint = scrub(problem.hint) if problem.hint else problem.hint
    return ConfigProblem(problem.file, problem.line, problem.col, problem.path, scrub(problem.message), hint)


def _click_kind(exc: BaseException) -> str | None:
    """"usage", "exit" or "abort" for click's control-flow exceptions, else None.

    typer >= 0.2x raises exceptions of its own copy of click (typer._click, typer.Exit), older
    typer raises click's. Only modules already loaded can have raised, so nothing is imported
    here: importing click just to compare classes would cost `--help` tens of milliseconds.
    """
    if isinstance(exc, typer.Exit):
        return "exit"
    if isinstance(exc, typer.Abort):
        return "abort"
    for name in ("typer._click", "click"):
        mod = sys.modules.get(name)
        if mod is None:
            continue
        if isinstance(exc, getattr(getattr(mod, "exceptions", None), "Exit", ())):
            return "exit"
        if isinstance(exc, getattr(mod, "Abort", ())):
            return "abort"
        if isinstance(exc, getattr(mod, "ClickException", ())):
            return "usage"
    return None


def _interrupt(signum: int, frame: object) -> None:
    # Outside the stage engine (which installs its own handlers and prints its own line), Ctrl-C
    # and SIGTERM (how CI cancels a job) both unwind as KeyboardInterrupt, so `finally` blocks
    # run (locks released) and we exit 130. typer turns it into a silent exit code, hence the flag.
    SESSION.interrupted = True
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, _interrupt)
    try:
        code = app(args=argv, standalone_mode=False)
        if code == EXIT_INTERRUPTED and SESSION.interrupted:
            print("interrupted: stopped before the command finished", file=sys.stderr)
    except DeployctlError as exc:
        if SESSION.verbose:
            traceback.print_exc()
        _print_error(exc)
        code = exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - click's control flow, else last resort: one line, exit 3
        kind = _click_kind(exc)
        if kind == "exit":
            code = getattr(exc, "exit_code", 0)
        elif kind == "usage":
            exc.show()  # type: ignore[attr-defined]
            code = EXIT_USAGE
        elif kind == "abort":
            print("interrupted", file=sys.stderr)
            code = EXIT_INTERRUPTED
        else:
            if SESSION.verbose:
                traceback.print_exc()
            from deployctl.ui.console import scrub  # lazy: only an error needs it; --help stays lean

            print(scrub(f"internal error: {type(exc).__name__}: {exc}"), file=sys.stderr)
            print("hint: run again with --verbose for the traceback, and please report it", file=sys.stderr)
            code = EXIT_INTERNAL
    sys.exit(code if isinstance(code, int) else 0)
