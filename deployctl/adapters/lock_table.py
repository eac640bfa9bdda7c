"""The deploy lock's DynamoDB table, typed: the one place that reads its items and answers.

deployctl.lock decides when to take, wait for, extend and release the lock; this module does
each of those as one DynamoDB call (conditional where two deploys may race) and gives back a
Holder, never an item dict. Shapes: https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_AttributeValue.html.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from deployctl.adapters.aws import BotoClient, ClientError, aws_errors, error_code
from deployctl.errors import ExternalError

DEFAULT_TABLE = "deployctl-locks"
TABLE_ENV = "DEPLOYCTL_LOCK_TABLE"


def table_name(environ: dict[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return env.get(TABLE_ENV) or DEFAULT_TABLE



def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Holder:
    """What the lock item says."""

    key: str
    token: str
    who: str
    host: str
    pid: int
    command: str
    started_at: float
    expires_at: float
    release: str

    def describe(self, now: float | None = None) -> str:
        now = time.time() if now is None else now
        left = self.expires_at - now
        lease = f"lease expires in {left:.0f}s" if left >= 0 else f"lease expired {-left:.0f}s ago"
        rel = f", release {self.release}" if self.release else ""
        return (f"{self.who} (pid {self.pid} on {self.host}) running `{self.command}` since "
                f"{_iso(self.started_at)}{rel}; {lease}")

    def item(self) -> dict[str, dict[str, str]]:
        """The item PutItem writes (DynamoDB's typed attribute values)."""
        out = {
            "pk": {"S": self.key}, "token": {"S": self.token}, "who": {"S": self.who},
            "host": {"S": self.host}, "pid": {"N": str(self.pid)}, "command": {"S": self.command},
            "started_at": {"N": f"{self.started_at:.3f}"}, "expires_at": {"N": f"{self.expires_at:.3f}"},
        }
        if self.release:
            out["release"] = {"S": self.release}
        return out

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Holder:
        """From a GetItem `Item` (DynamoDB's typed attribute values: {"S": …}, {"N": …})."""
        def s(name: str) -> str:
            return str((item.get(name) or {}).get("S", ""))

        def n(name: str) -> float:
            return float((item.get(name) or {}).get("N", "0") or 0)

        return cls(key=s("pk"), token=s("token"), who=s("who"), host=s("host"), pid=int(n("pid")),
                   command=s("command"), started_at=n("started_at"), expires_at=n("expires_at"),
                   release=s("release"))



class LockTable:
    """The lock table over one DynamoDB client."""

    def __init__(self, dynamodb: BotoClient, name: str | None = None) -> None:
        self.db = dynamodb
        self.name = name or table_name()
        self._ready = False

    def doing(self, what: str) -> contextlib.AbstractContextManager[None]:
        """AWS errors of the block said as ExternalError naming `what` and the table."""
        return aws_errors(f"{what} (DynamoDB table {self.name})")

    def ensure(self) -> None:
        """Create the table when it is missing, and wait until it is ACTIVE."""
        if self._ready:
            return
        with self.doing("checking the deploy lock table"):
            status = self._status()
            if status is None:
                try:
                    self.db.create_table(
                        TableName=self.name, BillingMode="PAY_PER_REQUEST",
                        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
                except ClientError as exc:
                    if error_code(exc) != "ResourceInUseException":  # created by a concurrent deploy
                        raise
            deadline = time.monotonic() + 120
            while status != "ACTIVE":
                if time.monotonic() > deadline:
                    raise ExternalError(f"DynamoDB table {self.name} did not become ACTIVE within 120s")
                time.sleep(0.2 if status is None else 1.0)
                status = self._status()
        self._ready = True

    def _status(self) -> str | None:
        try:
            return str((self.db.describe_table(TableName=self.name).get("Table") or {}).get("TableStatus", ""))
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return None
            raise

    def read(self, key: str) -> Holder | None:
        with self.doing("reading the deploy lock"):
            try:
                item = self.db.get_item(TableName=self.name, Key={"pk": {"S": key}}, ConsistentRead=True).get("Item")
            except ClientError as exc:
                if error_code(exc) == "ResourceNotFoundException":
                    return None
                raise
        return Holder.from_item(item) if item else None

    def try_put(self, holder: Holder) -> bool:
        """Take the lock when it is free or its lease ran out. True when taken."""
        with self.doing("taking the deploy lock"):
            try:
                self.db.put_item(TableName=self.name, Item=holder.item(),
                                 ConditionExpression="attribute_not_exists(pk) OR expires_at < :now",
                                 ExpressionAttributeValues={":now": {"N": f"{time.time():.3f}"}})
            except ClientError as exc:
                if error_code(exc) == "ConditionalCheckFailedException":
                    return False
                raise
        return True

    def extend(self, key: str, token: str, expires_at: float) -> bool:
        """Heartbeat. False when the lock is no longer ours (broken with `deployctl unlock`)."""
        try:
            self.db.update_item(TableName=self.name, Key={"pk": {"S": key}},
                                UpdateExpression="SET expires_at = :e",
                                ConditionExpression="#t = :mine",
                                ExpressionAttributeNames={"#t": "token"},
                                ExpressionAttributeValues={":e": {"N": f"{expires_at:.3f}"},
                                                           ":mine": {"S": token}})
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def delete(self, key: str, token: str) -> bool:
        """Remove the item if `token` still holds it. False when someone else holds it now."""
        try:
            self.db.delete_item(TableName=self.name, Key={"pk": {"S": key}},
                                ConditionExpression="#t = :mine",
                                ExpressionAttributeNames={"#t": "token"},
                                ExpressionAttributeValues={":mine": {"S": token}})
        except ClientError as exc:
            if error_code(exc) in ("ConditionalCheckFailedException", "ResourceNotFoundException"):
                return False
            raise
        return True
