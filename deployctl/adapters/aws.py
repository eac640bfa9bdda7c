"""The one door to AWS: every boto3/botocore import in deployctl lives in this module.

Everything else receives clients (or the small wrappers below) as arguments, so tests run the
same code against moto server over HTTP, and the pure modules (rollout, diagnose, preflight's
message building) never see boto3 at all.

Endpoints: boto3 itself honours `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>`; we pass an
explicit endpoint only when a caller asks for one, so both keep working.

Sections:
  1. clients and retry configuration
  2. error helpers (codes, throttling, translation to ExternalError)
  3. ECS / ECR helpers used by the ECS target
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import boto3
import botocore.exceptions
import botocore.session
from botocore.config import Config

from deployctl.errors import ExternalError

BotoCoreError = botocore.exceptions.BotoCoreError
# boto3 builds its clients at run time and ships no types: the alias names what is meant.
BotoClient = Any
BotoCoreErrorBase: Any = botocore.exceptions.BotoCoreError

# ---------------------------------------------------------------------------------------------
# 1. clients and retry configuration
# ---------------------------------------------------------------------------------------------

# Mutating and one-off calls: botocore's "standard" mode retries throttling and transient
# errors with exponential backoff and jitter.
DEFAULT_ATTEMPTS = 5
# The rollout watcher does its own backoff (it must count calls and never fail a deploy for
# throttling), so its client makes exactly one attempt per call.
WATCH_ATTEMPTS = 1

SERVICES = ("ecs", "ecr", "sts", "secretsmanager", "ssm", "elbv2", "iam", "cloudwatch", "logs", "ec2", "sns")


def retry_config(attempts: int = DEFAULT_ATTEMPTS, *, connect_timeout: float = 10,
                 read_timeout: float = 30) -> Config:
    return Config(
        retries={"mode": "standard", "total_max_attempts": attempts},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        user_agent_extra="deployctl",
    )


class Clients:
    """Lazily created boto3 clients for one region (Bounded: calls that must end by a deadline).
    Thread-safe creation (deploys of several
    services run in threads; a boto3 Session is not safe to share while creating clients).

    `clients.ecs` etc. use the default retry config; `clients.watch("ecs")` returns a
    single-attempt client for the watcher.
    """

    def __init__(self, region: str, *, endpoint_url: str | None = None,
                 attempts: int = DEFAULT_ATTEMPTS) -> None:
        self.region = region
        self.endpoint_url = endpoint_url
        self._attempts = attempts
        self._cache: dict[tuple[str, int, float, float], BotoClient] = {}

    def client(self, service: str, *, attempts: int | None = None, connect_timeout: float = 10,
               read_timeout: float = 30) -> BotoClient:
        key = (service, attempts or self._attempts, connect_timeout, read_timeout)
        with _LOCK:
            if key not in self._cache:
                config = retry_config(key[1], connect_timeout=connect_timeout, read_timeout=read_timeout)
                kwargs: dict[str, Any] = {"config": config, "region_name": self.region}
                if self.endpoint_url:
                    kwargs["endpoint_url"] = self.endpoint_url
                self._cache[key] = _session().client(service, **kwargs)
            return self._cache[key]

    def watch(self, service: str) -> BotoClient:
        return self.client(service, attempts=WATCH_ATTEMPTS)

    def __getattr__(self, name: str) -> BotoClient:
        if name in SERVICES:
            return self.client(name)
        raise AttributeError(name)


class AwsClients(Protocol):
    """What callers need from `Clients` or `Bounded`: a client per service, the watcher's
    single-attempt clients, and `aws.ecs`-style attributes."""

    region: str

    def client(self, service: str, *, attempts: int | None = None) -> BotoClient: ...

    def watch(self, service: str) -> BotoClient: ...

    def __getattr__(self, name: str) -> BotoClient: ...


class OutOfTime(BotoCoreErrorBase):  # type: ignore[valid-type,misc]
    """A call was not made because the time budget it had to finish in is spent."""

    fmt = "no time left for {operation}: the deploy's time budget is spent"


class Bounded:
    """Clients whose every call ends by `deadline` (a time.monotonic() value).

    Each call gets connect and read timeouts of at most the time left divided by its attempts
    (never more than the usual 10 s / 30 s), so botocore's retries included it cannot outlast
    the deadline by more than a rounding step; once the time is spent a call raises OutOfTime
    without going out. A hanging endpoint therefore costs a deploy its budget, never more.
    Clients for each timeout step are cached by the underlying Clients.
    """

    STEP = 0.5  # timeouts are rounded down to this (seconds): a bounded number of cached clients
    MIN_ATTEMPT = 2.0  # seconds an attempt gets before retries are given up for time

    def __init__(self, base: Clients, deadline: float, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.base, self.deadline, self.clock = base, deadline, clock
        self.region = base.region

    def until(self, deadline: float) -> Bounded:
        return Bounded(self.base, deadline, clock=self.clock)

    def remaining(self) -> float:
        return self.deadline - self.clock()

    def client(self, service: str, *, attempts: int | None = None) -> BotoClient:
        return _BoundedClient(self, service, attempts or self.base._attempts)

    def watch(self, service: str) -> BotoClient:
        return self.client(service, attempts=WATCH_ATTEMPTS)

    def raw(self, service: str, attempts: int, operation: str) -> BotoClient:
        """The boto3 client to make one call with now (OutOfTime when no time is left). Short on
        time, a call makes fewer attempts (each gets MIN_ATTEMPT seconds where it can)."""
        remaining = self.remaining()
        if remaining <= 0.05:
            raise OutOfTime(operation=operation)
        attempts = max(1, min(attempts, int(remaining // self.MIN_ATTEMPT)))
        per_attempt = remaining / attempts
        # Rounded down (to STEP, or to 0.05 s under STEP): a small set of cached clients.
        step = self.STEP if per_attempt >= self.STEP else 0.05
        rounded = max(0.05, math.floor(per_attempt / step) * step)
        return self.base.client(service, attempts=attempts, connect_timeout=min(10.0, rounded),
                                read_timeout=min(30.0, rounded))

    def __getattr__(self, name: str) -> BotoClient:
        if name in SERVICES:
            return self.client(name)
        raise AttributeError(name)


class _BoundedClient:
    """A boto3 client look-alike: operations go through Bounded.raw at call time."""

    def __init__(self, owner: Bounded, service: str, attempts: int) -> None:
        self._owner, self._service, self._attempts = owner, service, attempts

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name in ("exceptions", "meta", "get_paginator", "can_paginate",
                                             "get_waiter"):
            # Paginators make their calls later: give them the longest timeouts allowed now.
            return getattr(self._owner.raw(self._service, self._attempts, name), name)

        def call(**kwargs: Any) -> Any:
            return getattr(self._owner.raw(self._service, self._attempts, name), name)(**kwargs)

        return call


# One botocore session per process: loading service models costs ~0.1-1 s per service, and a
# session caches them. Creating clients from it is serialised by _LOCK (botocore clients are
# thread-safe to use, sessions are not to create clients from concurrently).
_LOCK = threading.RLock()
_SESSION: boto3.session.Session | None = None
_CLIENTS: dict[tuple[str, ...], Clients] = {}


def _session() -> boto3.session.Session:
    global _SESSION
    with _LOCK:
        if _SESSION is None:
            _SESSION = boto3.session.Session(botocore_session=botocore.session.get_session())
        return _SESSION


def clients(region: str, *, endpoint_url: str | None = None, attempts: int = DEFAULT_ATTEMPTS) -> Clients:
    """Client factory. `endpoint_url` overrides; otherwise boto3 reads AWS_ENDPOINT_URL itself.

    Reuses the clients made for the same region/endpoint/credential source earlier in this process.
    """
    endpoints = ",".join(f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("AWS_ENDPOINT_URL"))
    key = (region, endpoint_url or "", str(attempts), endpoints,
           os.environ.get("AWS_PROFILE", ""), os.environ.get("AWS_ACCESS_KEY_ID", ""))
    with _LOCK:
        if key not in _CLIENTS:
            _CLIENTS[key] = Clients(region, endpoint_url=endpoint_url, attempts=attempts)
        return _CLIENTS[key]


def endpoint_from_env() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL") or None


# ---------------------------------------------------------------------------------------------
# 2. error helpers
# ---------------------------------------------------------------------------------------------

ClientError = botocore.exceptions.ClientError
NoCredentialsError = botocore.exceptions.NoCredentialsError

_THROTTLE_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
    "TooManyRequestsException", "RequestLimitExceeded", "Rate exceeded", "SlowDown",
    "ProvisionedThroughputExceededException", "RequestThrottled", "PriorRequestNotComplete",
})
_NOT_FOUND_CODES = frozenset({
    "ResourceNotFoundException", "NoSuchEntity", "ParameterNotFound", "ClusterNotFoundException",
    "ServiceNotFoundException", "TargetGroupNotFound", "RepositoryNotFoundException",
    "ImageNotFoundException", "NotFoundException", "ResourceNotFound",
})
_DENIED_CODES = frozenset({
    "AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnrecognizedClientException",
    "InvalidClientTokenId", "ExpiredToken", "ExpiredTokenException", "AuthFailure",
})


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a ClientError (e.g. "ThrottlingException"), else None."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code") or "") or None
    return None


def error_message(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Message") or exc)
    return str(exc)


def http_status(exc: BaseException) -> int:
    """The HTTP status AWS answered a ClientError with (0 when unknown)."""
    if isinstance(exc, ClientError):
        return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    return 0


def is_throttle(exc: BaseException) -> bool:
    code = error_code(exc)
    if code in _THROTTLE_CODES:
        return True
    return isinstance(exc, ClientError) and "rate exceeded" in error_message(exc).lower()


def is_not_found(exc: BaseException) -> bool:
    return error_code(exc) in _NOT_FOUND_CODES


def is_access_denied(exc: BaseException) -> bool:
    return error_code(exc) in _DENIED_CODES


def operation(exc: BaseException) -> str:
    return str(getattr(exc, "operation_name", "") or "") if isinstance(exc, ClientError) else ""


def translate(exc: BaseException, doing: str = "calling AWS") -> ExternalError | None:
    """ExternalError for failures a person must fix outside deployctl, else None."""
    if isinstance(exc, botocore.exceptions.NoCredentialsError | botocore.exceptions.PartialCredentialsError):
        return ExternalError(
            f"no usable AWS credentials while {doing}",
            hint="set AWS_PROFILE (after `aws sso login`) or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY; "
                 "in GitHub Actions use aws-actions/configure-aws-credentials with an OIDC role",
        )
    if isinstance(exc, botocore.exceptions.NoRegionError):
        return ExternalError(f"no AWS region while {doing}", hint="set `region:` in deploy.yaml")
    if isinstance(exc, botocore.exceptions.EndpointConnectionError | botocore.exceptions.ConnectTimeoutError):
        where = getattr(exc, "kwargs", {}).get("endpoint_url") or endpoint_from_env() or "the AWS endpoint"
        return ExternalError(
            f"cannot reach {where} while {doing}: {exc}",
            hint="check the network/proxy, the region, and AWS_ENDPOINT_URL if it is set",
        )
    if isinstance(exc, botocore.exceptions.ReadTimeoutError | OutOfTime):
        return ExternalError(f"AWS did not answer in time while {doing}: {exc}", hint="run again")
    if isinstance(exc, ClientError):
        code, op = error_code(exc), operation(exc)
        if code in _DENIED_CODES:
            return ExternalError(
                f"AWS refused {op or 'a call'} while {doing} ({code}): {error_message(exc)}",
                hint="the credentials in use lack this permission; `deployctl iam-policy` prints what "
                     "deployctl needs",
            )
        return ExternalError(f"AWS {op or 'call'} failed while {doing} ({code}): {error_message(exc)}")
    if isinstance(exc, BotoCoreError):
        return ExternalError(f"AWS client error while {doing}: {exc}")
    return None


@contextlib.contextmanager
def aws_errors(doing: str = "calling AWS") -> Iterator[None]:
    """Turn botocore failures into ExternalError (one paragraph, exit 1, no traceback)."""
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        err = translate(exc, doing)
        if err is None:  # pragma: no cover - translate covers both base classes
            raise
        raise err from None


# ---------------------------------------------------------------------------------------------
# 3. ECS / ECR helpers used by the ECS target
# ---------------------------------------------------------------------------------------------


def account_id(c: AwsClients) -> str:
    return str(c.sts.get_caller_identity()["Account"])


def ecr_image_digest(ecr: BotoClient, repository: str, *, tag: str | None = None,
                     digest: str | None = None, registry_id: str | None = None) -> str | None:
    """Digest of an image in ECR by tag or digest; None when the repository or image is missing."""
    image_id = {"imageDigest": digest} if digest else {"imageTag": tag or "latest"}
    kwargs: dict[str, Any] = {"repositoryName": repository, "imageIds": [image_id]}
    if registry_id:
        kwargs["registryId"] = registry_id
    try:
        resp = ecr.describe_images(**kwargs)
    except ClientError as exc:
        if is_not_found(exc):
            return None
        raise
    details = resp.get("imageDetails") or []
    return str(details[0]["imageDigest"]) if details else None


# ---------------------------------------------------------------------------------------------
# 4. notifications (deployctl.app.notify)
# ---------------------------------------------------------------------------------------------


def secret_string(c: AwsClients, ref: str) -> str:
    """The current value of one Secrets Manager secret (a name or ARN). Used for one thing only:
    the notification webhook URL (`notify.webhook.secret`); deploys never read secret values."""
    return str(c.secretsmanager.get_secret_value(SecretId=ref)["SecretString"])


def sns_publish(c: AwsClients, topic_arn: str, subject: str, message: str) -> str:
    """Publish one message; its MessageId."""
    return str(c.sns.publish(TopicArn=topic_arn, Subject=subject, Message=message)["MessageId"])
