"""Post the outcome of `run`, `promote` or `rollback` to the places `notify:` names.

Best effort by design: a deploy that succeeded stays succeeded when Slack is down, and a failed
one keeps its exit code. What happened to each notification is returned as lines for the
command to print (on stderr, so `--json` stays one document on stdout).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from deployctl.adapters import webhook
from deployctl.config.model import Notify, ResolvedConfig
from deployctl.notify import Notification, ci_run_url, redacted, short_cause, sns_message, webhook_payload
from deployctl.pipeline import RunReport
from deployctl.redact import Redactor
from deployctl.releases_tags import actor

if TYPE_CHECKING:
    from deployctl.adapters.aws import AwsClients

Post = Callable[[str, Any], int]  # (url, json body) → HTTP status


def notification(cfg: ResolvedConfig, command: str, report: RunReport, *, git_sha: str = "",
                 environ: Mapping[str, str] | None = None) -> Notification:
    """What to say about `report`: the verdict, what was deployed, who did it, and why it failed."""
    environ = os.environ if environ is None else environ
    out = report.outputs
    failed = report.failed_stage
    # The stage's one-line summary when its message is a whole block (e.g. "api rolled back to
    # x:1"), else the message's first line.
    cause = short_cause(failed.summary or failed.message) if failed is not None else ""
    if report.status == "interrupted" and not cause:
        cause = "interrupted (Ctrl-C or a signal)"
    digest = out.get("digest", "")
    return Notification(command=command, app=cfg.app, env=cfg.env_name, verdict=report.status,
                        release=out.get("release", ""), git_sha=git_sha or out.get("git_sha", ""),
                        digest=digest if digest.startswith("sha256:") else "", who=actor(environ), cause=cause,
                        ci_url=ci_run_url(environ), url=out.get("url", "") if report.exit_code == 0 else "")


def wanted(cfg: ResolvedConfig, note: Notification) -> bool:
    return cfg.notify is not None and note.verdict in cfg.notify.on


def send(cfg: ResolvedConfig, note: Notification, redactor: Redactor, *, clients: AwsClients | None = None,
         environ: Mapping[str, str] | None = None, post: Post | None = None) -> list[str]:
    """Post `note` everywhere cfg.notify names; one line per destination saying what happened.
    The webhook URL is registered with `redactor` before anything can print it."""
    settings = cfg.notify
    if settings is None or note.verdict not in settings.on:
        return []
    environ = os.environ if environ is None else environ
    note = redacted(note, redactor.redact)
    lines: list[str] = []
    if settings.webhook is not None:
        lines.append(_post_webhook(cfg, settings, note, redactor, clients, environ, post or webhook.post_json))
    if settings.sns_topic is not None:
        lines.append(_publish(cfg, settings.sns_topic, note, redactor, clients))
    return [redactor.redact(line) for line in lines]


def _post_webhook(cfg: ResolvedConfig, settings: Notify, note: Notification, redactor: Redactor,
                  clients: AwsClients | None, environ: Mapping[str, str], post: Post) -> str:
    hook = settings.webhook
    assert hook is not None
    if hook.env is not None:
        url = environ.get(hook.env, "").strip()
        if not url:
            return (f"warning: notify: ${hook.env} is not set, so the webhook was not posted "
                    f"(set it from a CI secret, or use notify.webhook.secret)")
        source = f"${hook.env}"
    else:
        assert hook.secret is not None
        try:
            url = _secret_value(cfg, hook.secret, clients).strip()
        except Exception as exc:  # noqa: BLE001 - reported as a warning, never fatal
            return f"warning: notify: could not read the webhook URL from secret {hook.secret}: {_why(exc)}"
        source = f"secret {hook.secret}"
    redactor.add(url)
    try:
        post(url, webhook_payload(note))
    except webhook.WebhookError as exc:
        return f"warning: notify: the webhook ({source}) was not posted: {exc}"
    return f"notified: webhook ({source}, host {webhook.host_of(url)})"


def _publish(cfg: ResolvedConfig, topic: str, note: Notification, redactor: Redactor,
             clients: AwsClients | None) -> str:
    subject, message = sns_message(note)
    try:
        _sns_publish(cfg, clients, topic, subject, redactor.redact(message))
    except Exception as exc:  # noqa: BLE001 - reported as a warning, never fatal
        return f"warning: notify: SNS topic {topic} was not published to: {_why(exc)}"
    return f"notified: SNS topic {topic}"


def _clients(cfg: ResolvedConfig, clients: AwsClients | None) -> AwsClients:
    if clients is not None:
        return clients
    from deployctl.adapters import aws  # lazy: boto3 stays off the local path unless notify needs it

    return aws.clients(cfg.region)


def _secret_value(cfg: ResolvedConfig, ref: str, clients: AwsClients | None) -> str:
    from deployctl.adapters import aws  # lazy: boto3 stays off the local path unless notify needs it

    return aws.secret_string(_clients(cfg, clients), ref)


def _sns_publish(cfg: ResolvedConfig, clients: AwsClients | None, topic: str, subject: str, message: str) -> None:
    from deployctl.adapters import aws  # lazy: boto3 stays off the local path unless notify needs it

    aws.sns_publish(_clients(cfg, clients), topic, subject, message)


def _why(exc: BaseException) -> str:
    from deployctl.adapters import aws  # lazy: boto3 stays off the local path unless notify needs it

    return aws.error_message(exc) if aws.error_code(exc) else (str(exc) or type(exc).__name__)
