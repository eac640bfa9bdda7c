"""Error tree. Each class carries the exit code the CLI maps it to.

Exit codes (documented in docs/): 0 ok; 1 a stage or deploy failed (rolled back included);
2 usage or config error; 3 internal error; 130 interrupted.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130


class DeployctlError(Exception):
    """Base class: a message for people, plus an optional hint line."""

    exit_code = EXIT_INTERNAL

    def __init__(self, message: str, *, hint: str | None = None, short: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        # One line for tables and the stage's finished line when `message` is a block (a
        # deploy's outcome, every preflight problem): the block itself is shown once, at the end.
        self.short = short

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\nhint: {self.hint}"


class UsageError(DeployctlError):
    """Bad command line: unknown environment, conflicting flags, refused command."""

    exit_code = EXIT_USAGE


class ConfigError(DeployctlError):
    """deploy.yaml problems. `problems` holds every one found, each already located."""

    exit_code = EXIT_USAGE

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(p.format() for p in problems))


class ConfigProblem:
    """One located problem: deploy.yaml:LINE:COL: key.path: message (hint)."""

    def __init__(
        self, file: str, line: int, col: int, path: str, message: str, hint: str | None = None
    ) -> None:
        self.file, self.line, self.col = file, line, col
        self.path, self.message, self.hint = path, message, hint

    def format(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}"
        text = f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text

    def __repr__(self) -> str:
        return f"ConfigProblem({self.format()!r})"


class StageFailed(DeployctlError):
    """A pipeline stage failed (non-zero command, build error, push error, size budget)."""

    exit_code = EXIT_FAILED


class DeployFailed(DeployctlError):
    """A deploy did not end healthy on the new release (rolled back counts as failed)."""

    exit_code = EXIT_FAILED


class PreflightFailed(DeployctlError):
    """Things a deploy needs are missing; nothing was changed. `problems` holds each one found,
    one line each, naming what to create or fix (the message lists them too, one per line)."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, *, hint: str | None = None, problems: list[str] | None = None) -> None:
        super().__init__(message, hint=hint)
        self.problems = list(problems or [])


class ExternalError(DeployctlError):
    """An outside system (Docker daemon, registry, AWS) failed or is unreachable."""

    exit_code = EXIT_FAILED


class LockHeld(DeployctlError):
    """Another deploy of this environment holds the lock."""

    exit_code = EXIT_FAILED


class Interrupted(DeployctlError):
    """Ctrl-C or SIGTERM."""

    exit_code = EXIT_INTERRUPTED
