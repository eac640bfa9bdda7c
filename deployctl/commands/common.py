"""Helpers shared by command modules: loading config, printing JSON, consoles."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from deployctl.adapters.git import GitFacts
    from deployctl.config.model import ResolvedConfig

FILE_OPTION = typer.Option("deploy.yaml", "--file", "-f", help="Path to deploy.yaml.")
ENV_OPTION = typer.Option(..., "--env", "-e", help="Environment name from deploy.yaml (e.g. dev, staging, prod).")
JSON_OPTION = typer.Option(False, "--json", help="Print stable machine-readable JSON on stdout.")
YES_OPTION = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation (CI).")


def confirm(question: str, yes: bool) -> None:
    """The one confirmation of every command that removes or replaces something: asks on a
    terminal; `--yes` skips; no terminal and no --yes is a usage error (exit 2), so a script
    or CI job never removes anything it did not explicitly say yes to."""
    from deployctl.errors import Interrupted, UsageError

    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(f"{question.rstrip('?')}: this needs a confirmation and there is no terminal to ask "
                         "on; nothing was changed", hint="pass --yes to go ahead without asking (CI)")
    if not typer.confirm(question, default=False):
        raise Interrupted("nothing was changed")


def load(file: str, env: str) -> ResolvedConfig:
    from deployctl.config import load_env, read

    return load_env(read(file), env)


def project_dir(file: str) -> Path:
    return Path(file).resolve().parent


def git_facts(file: str) -> GitFacts:
    from deployctl.adapters.git import read_facts

    return read_facts(project_dir(file))


def print_json(data: Any, redactor: Any = None) -> None:
    """Print `data` as JSON, its secrets masked (by key name and value shape, see
    Redactor.redact_data): every JSON document deployctl prints goes through the redactor."""
    from deployctl.redact import Redactor

    data = (redactor or Redactor()).redact_data(data)
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=False)
