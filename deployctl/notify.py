"""What a notification says about the outcome of `run`, `promote` or `rollback`. Pure.

One Notification is rendered two ways: a Slack-compatible incoming-webhook payload (`text`
for clients that show only that, `blocks` for Slack) and a JSON message for an SNS topic
(schema deployctl.notification/v1, for whatever subscribes: email, a Lambda, a queue). Every
text field is passed through the run's redactor before it is rendered, so a cause that quotes
a secret is masked here as it is on the terminal.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

SCHEMA = "deployctl.notification/v1"
CAUSE_LIMIT = 300  # characters: a cause is one line in a chat message, not the whole log
SNS_SUBJECT_LIMIT = 100  # SNS Publish refuses a longer Subject

_ICONS = {"succeeded": ":white_check_mark:", "failed": ":x:", "interrupted": ":warning:"}


@dataclass(frozen=True)
class Notification:
    command: str  # run | promote | rollback
    app: str
    env: str
    verdict: str  # succeeded | failed | interrupted (the run report's status)
    release: str = ""
    git_sha: str = ""
    digest: str = ""
    who: str = ""
    cause: str = ""  # the first failed stage's message, first line; "" on success
    ci_url: str = ""  # the CI run that did it, when there is one
    url: str = ""  # where the app answers, when the target says so

    def headline(self) -> str:
        what = {"run": "deploy", "promote": "promotion", "rollback": "rollback"}.get(self.command, self.command)
        release = f" {self.release}" if self.release else ""
        return f"{self.app} {self.env}: {what}{release} {self.verdict}"

    def to_json_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, **asdict(self)}


def ci_run_url(environ: Mapping[str, str]) -> str:
    """The GitHub Actions run that is doing this, from the variables every job has; else ""."""
    server, repo, run_id = (environ.get(k, "") for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID"))
    if not (repo and run_id):
        return ""
    return f"{server or 'https://github.com'}/{repo}/actions/runs/{run_id}"


def short_cause(message: str) -> str:
    """The first non-blank line of a failure message, cut to CAUSE_LIMIT characters."""
    line = next((ln.strip() for ln in message.splitlines() if ln.strip()), "")
    return line if len(line) <= CAUSE_LIMIT else line[: CAUSE_LIMIT - 1] + "…"


def redacted(note: Notification, redact: Any) -> Notification:
    """Every text field through `redact` (a str → str function)."""
    return Notification(**{k: redact(v) if isinstance(v, str) else v for k, v in asdict(note).items()})


def webhook_payload(note: Notification) -> dict[str, Any]:
    """A Slack incoming-webhook body. `text` alone is what Slack-compatible receivers (Mattermost,
    Rocket.Chat, Teams workflows, Discord's /slack endpoint) all read; `blocks` adds the fields."""
    fields = [("Release", note.release), ("Commit", note.git_sha[:12]), ("Image", note.digest),
              ("By", note.who), ("Cause", note.cause), ("URL", note.url), ("CI run", note.ci_url)]
    shown = [(k, v) for k, v in fields if v]
    text = f"{_ICONS.get(note.verdict, '')} {note.headline()}".strip()
    lines = [text] + [f"{k}: {v}" for k, v in shown]
    return {
        "text": "\n".join(lines),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{_escape(text)}*"}},
            {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{_escape(v)}"}
                                           for k, v in shown][:10]},  # Slack allows at most 10 fields
        ] if shown else [{"type": "section", "text": {"type": "mrkdwn", "text": f"*{_escape(text)}*"}}],
    }


def sns_message(note: Notification) -> tuple[str, str]:
    """(Subject, Message) for SNS Publish: the headline as the subject, JSON as the message."""
    subject = note.headline()
    if len(subject) > SNS_SUBJECT_LIMIT:
        subject = subject[: SNS_SUBJECT_LIMIT - 1] + "…"
    # SNS subjects must be ASCII text without line breaks.
    subject = subject.encode("ascii", "replace").decode("ascii").replace("\n", " ")
    return subject, json.dumps(note.to_json_dict(), indent=2, ensure_ascii=False)


def _escape(text: str) -> str:
    """Slack mrkdwn treats &, < and > as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
