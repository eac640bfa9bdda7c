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

The table itself (one DynamoDB call per step, its items read into Holder) is
deployctl.adapters.lock_table; Holder, LockTable and table_name are named here too, for the
callers of the lock.
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
from typing import TYPE_CHECKING, Protocol

from deployctl import releases_tags
from deployctl.adapters import aws as awsa
from deployctl.adapters.lock_table import DEFAULT_TABLE as DEFAULT_TABLE
from deployctl.adapters.lock_table import TABLE_ENV as TABLE_ENV
from deployctl.adapters.lock_table import Holder as Holder
from deployctl.adapters.lock_table import LockTable as LockTable
from deployctl.adapters.lock_table import table_name as table_name
from deployctl.config.units import parse_duration
from deployctl.errors import ExternalError, LockHeld, UsageError
from deployctl.pipeline import Cancelled, StageContext

if TYPE_CHECKING:
    from deployctl.plan import Plan

DEFAULT_LEASE = 60.0
LEASE_ENV = "DEPLOYCTL_LOCK_LEASE"


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


def lock_key(app: str, env: str) -> str:
    return f"{app}/{env}"


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
    with table.doing("breaking the deploy lock"):
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
def deploy_lock(plan: Plan, options: LockOptions, ctx: StageContext | None = None) -> Iterator[Holder]:
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
