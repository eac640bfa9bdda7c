"""What preflight finds, and how one check reports it: problems and notes are collected, never
raised one at a time, so one run lists every missing thing at once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from deployctl.adapters import aws as awsa
from deployctl.config.model import ResolvedConfig
from deployctl.errors import ExternalError


@dataclass
class PreflightResult:
    account_id: str
    image_ref: str  # by digest when the registry could be asked, else as given
    image_digest: str | None
    # deploy.yaml reference → full ARN of the secret/parameter (without a json-key/version suffix:
    # render.ecs.secret_arn puts the reference's suffix back on)
    secret_arns: dict[str, str] = field(default_factory=dict)
    target_group_arns: dict[str, str] = field(default_factory=dict)  # name → ARN
    alarm_states: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def cannot_check(self, what: str, exc: BaseException) -> None:
        if awsa.is_access_denied(exc):
            self.problems.append(f"cannot check {what}: access denied ({awsa.error_code(exc)}); "
                                 "the deploy would likely fail on it too")
        else:
            self.problems.append(f"cannot check {what}: {awsa.error_code(exc) or type(exc).__name__}: "
                                 f"{awsa.error_message(exc)}")


def guard(rep: Report, what: str, fn: Callable[[], None]) -> None:
    """Run one check; AWS errors become problems, except unreachable/no credentials (raised)."""
    try:
        fn()
    except awsa.ClientError as exc:
        if awsa.is_throttle(exc):
            rep.problems.append(f"cannot check {what}: AWS kept throttling the request; run again")
        else:
            rep.cannot_check(what, exc)
    except awsa.BotoCoreError as exc:
        err = awsa.translate(exc, f"checking {what}")
        raise (err or ExternalError(str(exc))) from None


def bootstrap_hint(cfg: ResolvedConfig) -> str:
    """What to say after a problem `deployctl bootstrap` can fix: it creates the cluster (with its
    capacity providers), the network, target groups, roles and queues (docs/bootstrap.md)."""
    if cfg.environment.preview:
        return " (or bootstrap the environment this preview runs in: `deployctl bootstrap --env ENV`)"
    return f" (or let `deployctl bootstrap --env {cfg.env_name}` create it: docs/bootstrap.md)"
