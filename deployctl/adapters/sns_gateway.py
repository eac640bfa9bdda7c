"""SNS topics and their subscriptions, typed (the cost cap's topic).

Callers get Subscription and plain answers, never a response dict. Functions take the SNS
client. Shapes: https://docs.aws.amazon.com/sns/latest/api/API_Subscription.html;
publishing a notification is deployctl.adapters.aws.sns_publish.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from deployctl.adapters.aws import BotoClient, ClientError, error_code

# The SubscriptionArn of an email/https subscription not yet confirmed.
PENDING = "PendingConfirmation"


@dataclass(frozen=True)
class Subscription:
    protocol: str
    endpoint: str
    arn: str | None = None  # None or PENDING until the endpoint confirms

    @property
    def confirmed(self) -> bool:
        """Only a confirmed subscription can be unsubscribed (a pending one lapses after 3 days)."""
        return self.arn not in (None, PENDING)

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> Subscription:
        arn = raw.get("SubscriptionArn")
        return cls(protocol=str(raw.get("Protocol")), endpoint=str(raw.get("Endpoint")),
                   arn=str(arn) if arn is not None else None)


def topic_exists(sns: BotoClient, arn: str) -> bool:
    try:
        sns.get_topic_attributes(TopicArn=arn)
    except ClientError as exc:
        if error_code(exc) in ("NotFound", "NotFoundException"):
            return False
        raise
    return True


def create_topic(sns: BotoClient, name: str, tags: Mapping[str, str]) -> str:
    """The new (or, SNS being idempotent here, the existing) topic's ARN."""
    resp = sns.create_topic(Name=name, Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
    return str(resp["TopicArn"])


def delete_topic(sns: BotoClient, arn: str) -> None:
    """Its subscriptions go with it."""
    sns.delete_topic(TopicArn=arn)


def subscriptions(sns: BotoClient, arn: str) -> list[Subscription]:
    """Every subscription of the topic (every page)."""
    out: list[Subscription] = []
    kwargs: dict[str, Any] = {"TopicArn": arn}
    while True:
        page = sns.list_subscriptions_by_topic(**kwargs)
        out += [Subscription.from_api(s) for s in page.get("Subscriptions") or []]
        if not page.get("NextToken"):
            return out
        kwargs["NextToken"] = page["NextToken"]


def subscribe(sns: BotoClient, arn: str, protocol: str, endpoint: str) -> None:
    sns.subscribe(TopicArn=arn, Protocol=protocol, Endpoint=endpoint, ReturnSubscriptionArn=True)


def unsubscribe(sns: BotoClient, subscription: Subscription) -> None:
    sns.unsubscribe(SubscriptionArn=subscription.arn)
