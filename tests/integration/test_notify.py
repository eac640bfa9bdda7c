"""`notify:` posts the outcome of run, promote and rollback: to a Slack-compatible webhook (a
real HTTP server on 127.0.0.1 here) and to an SNS topic (moto server; an SQS queue subscribed
to the topic receives what SNS delivers). ECS is moto with the rollout SIMULATION.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import yaml

from tests.integration.conftest import git
from tests.support.aws_world import ACCOUNT, API, CLUSTER, RELEASE_PHASES
from tests.support.release_project import Project

SIM_PHASES = RELEASE_PHASES
TOKEN = "T0000000/B0000000/XyzSecretWebhookToken0123456789"  # the part of a Slack URL that is a credential
TOPIC = f"arn:aws:sns:us-east-1:{ACCOUNT}:chat-api-deploys"


class Receiver:
    """An incoming-webhook endpoint: records JSON bodies; answers with the queued statuses first."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                if status == 200:
                    receiver.bodies.append(body)
                    receiver.paths.append(self.path)
                self.send_response(status)
                self.send_header("Retry-After", "0")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/{TOKEN}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    yield rec
    rec.server.shutdown()


@pytest.fixture
def queue(project: Project) -> Any:
    """An SQS queue subscribed to the topic: what SNS published, as delivered."""
    sns, sqs = project.world.c("sns"), project.world.c("sqs")
    topic = sns.create_topic(Name="chat-api-deploys")["TopicArn"]
    assert topic == TOPIC
    url = sqs.create_queue(QueueName="deploys")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})

    def received() -> list[dict[str, Any]]:
        msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(m["Body"]) for m in msgs]

    return received


def with_notify(project: Project, notify: dict[str, Any], **env_overrides: Any) -> None:
    doc = yaml.safe_load(project.path.joinpath("deploy.yaml").read_text())
    doc["notify"] = notify
    for env, value in env_overrides.items():
        doc["environments"][env]["notify"] = value
    project.path.joinpath("deploy.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    git(project.path, "commit", "-qam", "notify")


def test_run_promote_and_rollback_are_posted_to_the_webhook_and_sns(
        project: Project, receiver: Receiver, queue: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPLOY_WEBHOOK", receiver.url)
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/chat-api")
    monkeypatch.setenv("GITHUB_RUN_ID", "4242")
    monkeypatch.setenv("GITHUB_ACTOR", "octocat")
    with_notify(project, {"webhook": {"env": "DEPLOY_WEBHOOK"}, "sns_topic": TOPIC})
    sha = git(project.path, "rev-parse", "HEAD").strip()

    ref1, rel1 = project.deployed("staging", "v1")
    ref2, rel2 = project.deployed("staging", "v2")
    promoted = project.cli("promote", "staging", "prod", "-f", project.file, "--yes")
    assert promoted.code == 0, promoted.text
    rolled = project.cli("rollback", "-f", project.file, "--env", "staging", "--yes")
    assert rolled.code == 0, rolled.text

    # One post per outcome, in order, each saying what a teammate needs to know.
    commands = [(b["text"].splitlines()[0]) for b in receiver.bodies]
    assert commands == [f":white_check_mark: chat-api staging: deploy {rel1} succeeded",
                        f":white_check_mark: chat-api staging: deploy {rel2} succeeded",
                        commands[2], commands[3]]
    assert commands[2].startswith(":white_check_mark: chat-api prod: promotion ") and "succeeded" in commands[2]
    assert commands[3].startswith(":white_check_mark: chat-api staging: rollback ") and "succeeded" in commands[3]
    first = receiver.bodies[0]["text"]
    assert f"Commit: {sha[:12]}" in first and f"Image: {ref1.split('@')[1]}" in first
    assert "By: github:octocat" in first and "CI run: https://github.com/acme/chat-api/actions/runs/4242" in first
    assert f"Image: {ref2.split('@')[1]}" in receiver.bodies[2]["text"]  # prod got exactly staging's digest
    assert f"Image: {ref1.split('@')[1]}" in receiver.bodies[3]["text"]  # the rollback went back to v1
    assert receiver.bodies[0]["blocks"][0]["type"] == "section"

    # SNS got the same outcomes as JSON, named by its schema.
    messages = queue()
    assert [(m["command"], m["env"], m["verdict"]) for m in messages] == [
        ("run", "staging", "succeeded"), ("run", "staging", "succeeded"),
        ("promote", "prod", "succeeded"), ("rollback", "staging", "succeeded")]
    assert all(m["schema"] == "deployctl.notification/v1" and m["app"] == "chat-api" for m in messages)
    assert messages[0]["release"] == rel1 and messages[0]["digest"] == ref1.split("@")[1]
    assert messages[0]["git_sha"] == sha

    # The webhook URL is a credential: never printed, whatever the command said.
    for res in (promoted, rolled):
        assert TOKEN not in res.text and "notified: webhook ($DEPLOY_WEBHOOK, host 127.0.0.1)" in res.err
        assert f"notified: SNS topic {TOPIC}" in res.err


def test_a_failed_deploy_is_posted_with_its_cause(project: Project, receiver: Receiver, sim: Any,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPLOY_WEBHOOK", receiver.url)
    with_notify(project, {"webhook": {"env": "DEPLOY_WEBHOOK"}, "on": ["failed"]})
    project.deployed("staging", "v1")  # succeeded: not posted (on: [failed])
    sim.script(API, "tasks_fail_to_start", cluster=CLUSTER)

    res = project.run("staging", project.world.push("v2"), "--json")

    assert res.code == 1
    assert json.loads(res.out)["status"] == "failed"  # stdout stays one JSON document
    (body,) = receiver.bodies
    lines = body["text"].splitlines()
    assert lines[0].startswith(":x: chat-api staging: deploy ") and lines[0].endswith(" failed")
    cause = next(line for line in lines if line.startswith("Cause: "))
    assert "rolled back" in cause and len(cause) <= len("Cause: ") + 300


def test_a_webhook_that_is_down_never_changes_the_outcome(project: Project, receiver: Receiver,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPLOY_WEBHOOK", receiver.url)
    with_notify(project, {"webhook": {"env": "DEPLOY_WEBHOOK"}, "sns_topic": TOPIC})  # topic never created
    receiver.statuses = [503, 503, 503]  # every attempt refused: the first and two retries

    res = project.run("staging", project.world.push("v1"))

    assert res.code == 0, res.text
    assert receiver.bodies == []
    assert "warning: notify: the webhook ($DEPLOY_WEBHOOK) was not posted: 127.0.0.1 answered HTTP 503" in res.err
    assert f"warning: notify: SNS topic {TOPIC} was not published to:" in res.err
    assert TOKEN not in res.text


def test_the_webhook_url_can_come_from_secrets_manager(project: Project, receiver: Receiver) -> None:
    project.world.c("secretsmanager").create_secret(Name="chat-api/deploy-webhook", SecretString=receiver.url)
    with_notify(project, {"webhook": {"secret": "chat-api/deploy-webhook"}})

    project.deployed("staging", "v1")

    assert len(receiver.bodies) == 1 and receiver.paths == [f"/services/{TOKEN}"]


def test_an_environment_can_turn_notify_off(project: Project, receiver: Receiver,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPLOY_WEBHOOK", receiver.url)
    with_notify(project, {"webhook": {"env": "DEPLOY_WEBHOOK"}}, staging=None)

    res = project.run("staging", project.world.push("v1"))

    assert res.code == 0 and receiver.bodies == [] and "notif" not in res.err


def test_a_missing_webhook_variable_is_a_warning(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEPLOY_WEBHOOK", raising=False)
    with_notify(project, {"webhook": {"env": "DEPLOY_WEBHOOK"}})

    res = project.run("staging", project.world.push("v1"))

    assert res.code == 0, res.text
    assert "warning: notify: $DEPLOY_WEBHOOK is not set, so the webhook was not posted" in res.err
