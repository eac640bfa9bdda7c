"""What a notification says, how it is delivered to a webhook, and what IAM it needs."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from deployctl.adapters import webhook
from deployctl.config import load_env, read
from deployctl.notify import Notification, ci_run_url, redacted, short_cause, sns_message, webhook_payload
from deployctl.redact import Redactor
from deployctl.render.iam import Request, allows, ci_policy

NOTE = Notification(command="run", app="chat-api", env="staging", verdict="failed", release="20261207T1-abc",
                    git_sha="0123456789abcdef0123", digest="sha256:" + "a" * 64, who="github:octocat",
                    cause="api: tasks failed to start", ci_url="https://github.com/acme/chat/actions/runs/9")


def test_the_webhook_text_leads_with_the_verdict_and_names_what_was_deployed() -> None:
    body = webhook_payload(NOTE)
    lines = body["text"].splitlines()
    assert lines[0] == ":x: chat-api staging: deploy 20261207T1-abc failed"
    assert "Commit: 0123456789ab" in lines and "By: github:octocat" in lines
    assert "Cause: api: tasks failed to start" in lines
    fields = body["blocks"][1]["fields"]
    assert {"type": "mrkdwn", "text": "*Cause*\napi: tasks failed to start"} in fields


def test_slack_control_characters_in_a_cause_are_escaped_in_blocks() -> None:
    note = Notification(command="rollback", app="a", env="prod", verdict="succeeded", cause="<!channel> & co")
    fields = webhook_payload(note)["blocks"][1]["fields"]
    assert fields == [{"type": "mrkdwn", "text": "*Cause*\n&lt;!channel&gt; &amp; co"}]


def test_the_sns_message_is_json_named_by_its_schema_with_a_short_ascii_subject() -> None:
    long = Notification(command="promote", app="chat-api", env="prod", verdict="succeeded", release="r" * 120)
    subject, message = sns_message(long)
    assert len(subject) <= 100 and subject.isascii() and subject.startswith("chat-api prod: promotion r")
    data = json.loads(message)
    assert data["schema"] == "deployctl.notification/v1" and data["command"] == "promote"
    assert data["release"] == "r" * 120  # the message keeps what the subject had to cut


def test_a_cause_is_its_first_line_cut_to_300_characters() -> None:
    assert short_cause("\n  first line  \nsecond") == "first line"
    cut = short_cause("x" * 1000)
    assert len(cut) == 300 and cut.endswith("…")


def test_every_field_goes_through_the_redactor() -> None:
    red = Redactor()
    red.add("s3cr3t-value-123456")
    note = Notification(command="run", app="a", env="e", verdict="failed", cause="DB_PASSWORD=s3cr3t-value-123456")
    assert "s3cr3t-value-123456" not in json.dumps(redacted(note, red.redact).to_json_dict())


def test_the_ci_run_link_comes_from_the_github_variables() -> None:
    assert ci_run_url({"GITHUB_REPOSITORY": "acme/chat", "GITHUB_RUN_ID": "7"}) == \
        "https://github.com/acme/chat/actions/runs/7"
    assert ci_run_url({"GITHUB_SERVER_URL": "https://ghe.acme.io", "GITHUB_REPOSITORY": "a/b",
                       "GITHUB_RUN_ID": "1"}) == "https://ghe.acme.io/a/b/actions/runs/1"
    assert ci_run_url({}) == ""


# --- the webhook adapter, against a real HTTP server ------------------------------------------


class Server:
    def __init__(self, statuses: list[int]) -> None:
        self.statuses, self.hits = statuses, 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.hits += 1
                self.send_response(outer.statuses.pop(0) if outer.statuses else 200)
                self.send_header("Retry-After", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/services/T0/B0/SECRETPART"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    srv = Server(list(getattr(request, "param", [])))
    yield srv
    srv.http.shutdown()


@pytest.mark.parametrize("server", [[503, 429]], indirect=True)
def test_a_busy_receiver_is_retried(server: Server) -> None:
    assert webhook.post_json(server.url, {"text": "hi"}) == 200
    assert server.hits == 3


@pytest.mark.parametrize("server", [[404]], indirect=True)
def test_a_refused_url_is_not_retried_and_the_error_hides_the_url(server: Server) -> None:
    with pytest.raises(webhook.WebhookError) as err:
        webhook.post_json(server.url, {"text": "hi"})
    assert server.hits == 1
    assert str(err.value) == "127.0.0.1 answered HTTP 404" and "SECRETPART" not in str(err.value)


def test_an_unreachable_receiver_is_an_error_without_the_url() -> None:
    with pytest.raises(webhook.WebhookError) as err:
        webhook.post_json("http://127.0.0.1:9/services/SECRETPART", {"text": "hi"}, retries=0)
    assert str(err.value).startswith("could not reach 127.0.0.1:") and "SECRETPART" not in str(err.value)


def test_a_url_that_is_not_http_is_refused() -> None:
    with pytest.raises(webhook.WebhookError, match="not an http"):
        webhook.post_json("file:///etc/passwd", {})


# --- IAM: exactly the topic and the one secret ---------------------------------------------

CONFIG = """\
version: 1
app: chat-api
region: us-east-1
image: {{repository: chat-api, registry: ecr}}
services:
  api: {{port: 8000}}
notify:
  {notify}
environments:
  staging:
    target: ecs
    cluster: ai-staging
    network: {{subnets: [subnet-1]}}
    roles: {{execution: arn:aws:iam::123456789012:role/exec}}
"""
TOPIC = "arn:aws:sns:us-east-1:123456789012:deploys"


def policy(tmp_path: Any, notify: str) -> dict[str, Any]:
    path = tmp_path / "deploy.yaml"
    path.write_text(CONFIG.format(notify=notify))
    return ci_policy(load_env(read(path, environ={}), "staging"), "123456789012")


def test_the_ci_role_may_publish_to_the_named_topic_only(tmp_path: Any) -> None:
    pol = policy(tmp_path, f"sns_topic: {TOPIC}")
    assert allows(pol, Request("sns:Publish", TOPIC))
    assert not allows(pol, Request("sns:Publish", "arn:aws:sns:us-east-1:123456789012:other"))
    assert not allows(pol, Request("secretsmanager:GetSecretValue",
                                   "arn:aws:secretsmanager:us-east-1:123456789012:secret:x-AbCdEf"))


def test_the_webhook_secret_is_the_one_secret_value_the_ci_role_reads(tmp_path: Any) -> None:
    pol = policy(tmp_path, "webhook: {secret: chat-api/webhook}")
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:chat-api/webhook-AbCdEf"
    assert allows(pol, Request("secretsmanager:GetSecretValue", arn))
    assert not allows(pol, Request("secretsmanager:GetSecretValue", arn.replace("webhook", "openai-key")))
    assert not any("sns:Publish" in json.dumps(s) for s in pol["Statement"])
