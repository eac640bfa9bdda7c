"""Flags of the running process that the CLI sets once and use cases read (no import of cli)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Session:
    verbose: bool = False  # --verbose: tracebacks of internal errors
    interrupted: bool = False  # Ctrl-C or SIGTERM arrived outside the stage engine


SESSION = Session()
