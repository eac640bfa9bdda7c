"""SQS queues, as deployctl needs them: does a queue exist, and the ARN of a dead-letter queue.

Callers get plain answers (a URL, an ARN, exists or not), never a response dict. Functions take
the SQS client. Shapes and error codes: https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_GetQueueUrl.html
and API_GetQueueAttributes.html.
"""

from __future__ import annotations

from collections.abc import Mapping

from deployctl.adapters.aws import BotoClient, ClientError, error_code, is_not_found

# What SQS answers for a queue that does not exist: the query API's code, and the JSON API's.
_MISSING = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")


def _missing(exc: ClientError) -> bool:
    return is_not_found(exc) or (error_code(exc) or "").endswith(_MISSING)


def queue_url(sqs: BotoClient, name: str) -> str | None:
    """The queue's URL, or None when there is no queue of that name."""
    try:
        return str(sqs.get_queue_url(QueueName=name)["QueueUrl"])
    except ClientError as exc:
        if _missing(exc):
            return None
        raise


def queue_exists(sqs: BotoClient, name: str) -> bool:
    return queue_url(sqs, name) is not None


def create_queue(sqs: BotoClient, name: str, attributes: Mapping[str, str]) -> str:
    """The new queue's URL."""
    return str(sqs.create_queue(QueueName=name, Attributes=dict(attributes))["QueueUrl"])


def queue_arn(sqs: BotoClient, url: str) -> str:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"]).get("Attributes") or {}
    return str(attrs["QueueArn"])
