"""The deploy lock: one deploy (run, promote, rollback) of an environment at a time.

Where: one item per app/environment in a DynamoDB table (default `deployctl-locks`, or
$DEPLOYCTL_LOCK_TABLE; created on first use, on-demand billing). Why DynamoDB rather than an
S3 object written with If-None-Match:
- taking the lock is ONE conditional put that also covers a dead holder:
  `attribute_not_exists(pk) OR expires_at < :now`. S3's If-None-Match only says "does not
  exist", so taking over an expired lock would need a read, then a write conditional on the
  ETag: two steps and a second code path;
- the heartbeat is a conditional update of one attribute (`token = :mine`), so a holder whose
  lock was broken finds out instead of silently overwriting the new holder's item;
- reads are strongly consistent on request, and there is no bucket (name, region, versioning,
  lifecycle) to choose or create.

The item says who holds it (user@host, pid), the command, when it started, the release id and
`expires_at` (a lease, 60 s by default, $DEPLOYCTL_LOCK_LEASE). A heartbeat thread extends the
lease every lease/4 seconds while the holder lives, so a holder killed with SIGKILL (or a lost
machine) stops blocking others one lease later. The lock is released by the context manager on
success, failure and cancellation (the stage engine turns Ctrl-C/SIGTERM into cancellation and
the deploy job unwinds through it), and, for a job the engine had to abandon, at interpreter
exit. Wall clocks of different machines must agree to within the lease (NTP does that).

The local target (`target: docker`) is not locked here: it takes a flock of its own, which
the kernel drops when the process dies.

AWS is reached only through the clients passed in (deployctl.adapters.aws).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from deployctl import releases_tags
from deployctl.adapters import aws as awsa
from deployctl.config.units import parse_duration
from deployctl.errors import ExternalError, LockHeld, UsageError
from deployctl.pipeline import Cancelled

DEFAULT_TABLE = "deployctl-locks"
DEFAULT_LEASE = 60.0
TABLE_ENV = "DEPLOYCTL_LOCK_TABLE"
LEASE_ENV = "DEPLOYCTL_LOCK_LEASE"


def table_name(environ: dict[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return env.get(TABLE_ENV) or DEFAULT_TABLE


def lease_seconds(environ: dict[str, str] | None = None) -> float:
    env = os.environ if environ is None else environ
    text = env.get(LEASE_ENV)
    if not text:
        return DEFAULT_LEASE
    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"{LEASE_ENV}={text!r}: {exc}") from None
    if value < 1:
        raise UsageError(f"{LEASE_ENV} must be at least 1s, got {text!r}")
    return value


def who() -> str:
    """The lock holder: the same `who` as the release records (releases_tags.actor)."""
    return releases_tags.actor()


def command_line() -> str:
    return " ".join(["deployctl", *sys.argv[1:]])[:300]


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

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Holder:
        def s(name: str) -> str:
            return str((item.get(name) or {}).get("S", ""))

        def n(name: str) -> float:
            return float((item.get(name) or {}).get("N", "0") or 0)

        return cls(key=s("pk"), token=s("token"), who=s("who"), host=s("host"), pid=int(n("pid")),
                   command=s("command"), started_at=n("started_at"), expires_at=n("expires_at"),
                   release=s("release"))


def lock_key(app: str, env: str) -> str:
    return f"{app}/{env}"


# ------------------------------------------------------------------------------------------
# The table
# ------------------------------------------------------------------------------------------


class LockTable:
    """The lock table over one DynamoDB client."""

    def __init__(self, dynamodb: Any, name: str | None = None) -> None:
        self.db = dynamodb
        self.name = name or table_name()
        self._ready = False

    def _doing(self, what: str) -> Any:
        return awsa.aws_errors(f"{what} (DynamoDB table {self.name})")

    def ensure(self) -> None:
        """Create the table when it is missing, and wait until it is ACTIVE."""
        if self._ready:
            return
        with self._doing("checking the deploy lock table"):
            status = self._status()
            if status is None:
                try:
                    self.db.create_table(
                        TableName=self.name, BillingMode="PAY_PER_REQUEST",
                        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
                except awsa.ClientError as exc:
                    if awsa.error_code(exc) != "ResourceInUseException":  # created by a concurrent deploy
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
            return str(self.db.describe_table(TableName=self.name)["Table"]["TableStatus"])
        except awsa.ClientError as exc:
            if awsa.error_code(exc) == "ResourceNotFoundException":
                return None
            raise

    def read(self, key: str) -> Holder | None:
        with self._doing("reading the deploy lock"):
            try:
                item = self.db.get_item(TableName=self.name, Key={"pk": {"S": key}}, ConsistentRead=True).get("Item")
            except awsa.ClientError as exc:
                if awsa.error_code(exc) == "ResourceNotFoundException":
                    return None
                raise
        return Holder.from_item(item) if item else None

    def try_put(self, holder: Holder) -> bool:
        """Take the lock when it is free or its lease ran out. True when taken."""
        item = {
            "pk": {"S": holder.key}, "token": {"S": holder.token}, "who": {"S": holder.who},
            "host": {"S": holder.host}, "pid": {"N": str(holder.pid)}, "command": {"S": holder.command},
            "started_at": {"N": f"{holder.started_at:.3f}"}, "expires_at": {"N": f"{holder.expires_at:.3f}"},
        }
        if holder.release:
            item["release"] = {"S": holder.release}
        with self._doing("taking the deploy lock"):
            try:
                self.db.put_item(TableName=self.name, Item=item,
                                 ConditionExpression="attribute_not_exists(pk) OR expires_at < :now",
                                 ExpressionAttributeValues={":now": {"N": f"{time.time():.3f}"}})
            except awsa.ClientError as exc:
                if awsa.error_code(exc) == "ConditionalCheckFailedException":
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
        except awsa.ClientError as exc:
            if awsa.error_code(exc) == "ConditionalCheckFailedException":
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
        except awsa.ClientError as exc:
            if awsa.error_code(exc) in ("ConditionalCheckFailedException", "ResourceNotFoundException"):
                return False
            raise
        return True


# ------------------------------------------------------------------------------------------
# Holding it
# ------------------------------------------------------------------------------------------

# Locks this process holds: released at interpreter exit if the job holding one was abandoned.
_HELD: dict[str, tuple[LockTable, str]] = {}
_HELD_LOCK = threading.Lock()


def _release_all_at_exit() -> None:
    with _HELD_LOCK:
        held = list(_HELD.items())
        _HELD.clear()
    for key, (table, token) in held:
        with contextlib.suppress(Exception):  # exiting anyway: the lease covers what this misses
            table.delete(key, token)


atexit.register(_release_all_at_exit)


@contextlib.contextmanager
def hold(table: LockTable, app: str, env: str, *, wait: float = 0.0, lease: float | None = None,
         release: str = "", command: str | None = None,
         cancelled: threading.Event | None = None, log: Callable[[str], None] = lambda s: None) -> Iterator[Holder]:
    """Hold the lock of app/env for the duration of the block.

    Busy: with `wait` > 0, poll until it frees up (or the lease of a dead holder runs out) for
    at most `wait` seconds; then (or at once without `wait`) LockHeld (exit 1) naming the holder.
    `cancelled` (the stage's event) stops the wait early.
    """
    lease = lease_seconds() if lease is None else lease
    key = lock_key(app, env)
    table.ensure()
    deadline = time.monotonic() + max(0.0, wait)
    poll = max(0.05, min(2.0, lease / 10))
    announced = False
    while True:
        now = time.time()
        me = Holder(key=key, token=uuid.uuid4().hex, who=who(), host=socket.gethostname(), pid=os.getpid(),
                    command=command or command_line(), started_at=now, expires_at=now + lease, release=release)
        if table.try_put(me):
            break
        other = table.read(key)
        if other is None:  # released between our put and our read: try again at once
            continue
        if time.monotonic() >= deadline:
            waited = f" (waited {wait:g}s)" if wait > 0 else ""
            raise LockHeld(
                f"{app}/{env} is locked by another deploy{waited}: {other.describe()}",
                hint=("wait longer with --lock-wait, e.g. --lock-wait 10m" if wait > 0 else
                      "wait for it with --lock-wait DURATION (e.g. --lock-wait 10m)")
                + f"; if that deploy is dead, its lease runs out by itself, or break it with "
                  f"`deployctl unlock --env {env}`")
        if not announced:
            log(f"waiting for the deploy lock of {app}/{env}: {other.describe()}")
            announced = True
        if cancelled is not None:
            if cancelled.wait(poll):
                raise Cancelled("cancelled while waiting for the deploy lock")
        else:
            time.sleep(poll)

    with _HELD_LOCK:
        _HELD[key] = (table, me.token)
    log(f"deploy lock of {app}/{env} taken (DynamoDB table {table.name}, lease {lease:g}s)")
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(table, me, lease, stop, log), name=f"lock-{key}",
                            daemon=True)
    beat.start()
    try:
        yield me
    finally:
        stop.set()
        beat.join(timeout=5)
        with _HELD_LOCK:
            _HELD.pop(key, None)
        try:
            table.delete(key, me.token)
        except (awsa.ClientError, awsa.BotoCoreError, ExternalError) as exc:
            log(f"warning: could not release the deploy lock of {app}/{env} ({exc}); it expires within "
                f"{lease:g}s, or run `deployctl unlock --env {env}`")
        else:
            log(f"deploy lock of {app}/{env} released")


def _heartbeat(table: LockTable, me: Holder, lease: float, stop: threading.Event,
               log: Callable[[str], None]) -> None:
    every = lease / 4
    while not stop.wait(every):
        try:
            ours = table.extend(me.key, me.token, time.time() + lease)
        except (awsa.ClientError, awsa.BotoCoreError) as exc:
            # Keep trying: one failed beat still leaves three quarters of the lease.
            log(f"warning: deploy lock heartbeat failed ({awsa.error_code(exc) or exc}); retrying")
            continue
        if not ours:
            log(f"warning: the deploy lock of {me.key} was broken by someone else (deployctl unlock?); "
                "this deploy goes on, but another one may now start")
            return


def break_lock(table: LockTable, holder: Holder) -> None:
    """Remove `holder`'s lock (the one the person was shown). LockHeld when it changed hands
    in between: the new holder is not broken without being shown first."""
    with table._doing("breaking the deploy lock"):
        if table.delete(holder.key, holder.token):
            return
    now = table.read(holder.key)
    if now is not None:
        raise LockHeld(f"the lock changed hands meanwhile and was left alone: now {now.describe()}",
                       hint="run `deployctl unlock` again if this one is stale too")


class LockOptions(Protocol):
    """What the lock reads of a deploy's options (deployctl.targets.base.DeployOptions, which
    sits above this module)."""

    @property
    def preview_name(self) -> str | None: ...

    @property
    def lock_wait(self) -> float: ...


@contextlib.contextmanager
def deploy_lock(plan: Any, options: LockOptions, ctx: Any = None) -> Iterator[Holder]:
    """The lock around one deploy of `plan` (the seam each target's lock() calls).

    With a stage `ctx`: the release id is made now and published in ctx.outputs["release"]
    (the ECS target then uses it), so the lock item names the release it protects."""
    outputs = getattr(ctx, "outputs", None)
    release = ""
    if outputs is not None:
        release = outputs.get("release") or releases_tags.new_release_id(git_sha=plan.git.sha)
        outputs["release"] = release
    log = getattr(ctx, "log", None) or (lambda s: None)
    table = LockTable(awsa.clients(plan.region).client("dynamodb"))
    preview = options.preview_name  # each preview copy deploys on its own
    env = f"{plan.env}/{preview}" if preview else plan.env
    with hold(table, plan.app, env, wait=float(options.lock_wait or 0.0),
              release=release, cancelled=getattr(ctx, "cancelled", None), log=log) as holder:
        yield holder
