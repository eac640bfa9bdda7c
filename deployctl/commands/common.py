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
