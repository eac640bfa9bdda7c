"""How a deploy's end is said: once, as a block (failure) or one line (interruption). Pure.

The deploy stage fails with one message that says everything a person needs, once: which
services failed and why (the verdict and the likely cause from the diagnosis), what is live now,
and the next command. Tables show a one-line summary of it; the block is printed once at the
end of the run (deployctl.ui). An interrupted watch says what was done and what goes on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from deployctl import diagnose

# How a service's deploy ended, as far as the summary cares.
OK = "ok"
ROLLED_BACK = "rolled_back"
FAILED = "failed"
NOT_DEPLOYED = "not_deployed"
INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class Ended:
    """One service's end. `live`: the revision that serves now ("family:rev"; "" = unknown)."""

    service: str
    outcome: str
    message: str
    live: str = ""
    diagnosis: tuple[str, ...] = ()  # diagnose.render lines: "likely cause: …", "  what to try: …", …
    rolling_back: bool = False  # interrupted while deployctl's own rollback was rolling out


def failure(app: str, env: str, ended: Sequence[Ended]) -> tuple[str, str]:
    """(block, short) for a failed deploy. The block's first line names the deploy; then, per
    service that did not succeed, its verdict and likely cause; what is live; the next command."""
    bad = [e for e in ended if e.outcome not in (OK,)]
    which = [e.service for e in bad if e.outcome != NOT_DEPLOYED] or [e.service for e in bad]
    lines = [f"deploy of {app} to {env} failed ({', '.join(which)}):"]
    for e in bad:
        if e.outcome == NOT_DEPLOYED:
            lines.append(f"  {e.service} not deployed ({e.message})")
            continue
        lines.append(f"  {e.service}: {e.message}")
        # The whole diagnosis, here only (the deploy's log does not say it as well).
        lines += [f"    {line.rstrip()}" for line in e.diagnosis if line.strip()]
    live = [f"{e.service} {e.live}" if e.live else f"{e.service} unknown" for e in ended
            if e.outcome != NOT_DEPLOYED]
    live += [f"{e.service} unchanged" for e in ended if e.outcome == NOT_DEPLOYED]
    lines.append(f"  live now: {', '.join(live)}")
    lines.append(f"  next: {next_step(env, bad)}")
    shown = [e for e in bad if e.outcome != NOT_DEPLOYED] or bad
    short = "; ".join(_short(e) for e in shown)
    return "\n".join(lines), short


def with_app_logs(block: Sequence[str], app_logs: Sequence[Mapping[str, Any]]) -> list[str]:
    """The failure block with each failing container's last lines (a stage's `app_logs` detail)
    under its service's stop reason and diagnosis: what a terminal prints at the end of the run.
    (The step summary shows them from the detail itself, in a fenced block.)"""
    out = list(block)
    for log in app_logs:
        rendered = [f"    {line}" for line in diagnose.render_app_log(diagnose.AppLog.from_json(log))]
        head = f"  {log.get('service')}: "
        at = next((i for i, line in enumerate(out) if line.startswith(head)), None)
        if at is None:  # no section of its own: before "live now"
            at = next((i - 1 for i, line in enumerate(out) if line.startswith("  live now:")), len(out) - 1)
        else:
            while at + 1 < len(out) and out[at + 1].startswith("    "):
                at += 1  # past its diagnosis
        out[at + 1:at + 1] = rendered
    return out


def _short(e: Ended) -> str:
    if e.outcome == ROLLED_BACK and e.live:
        return f"{e.service} rolled back to {e.live}"
    if e.outcome == NOT_DEPLOYED:
        return f"{e.service} not deployed"
    first = e.message.split(";", 1)[0].split(" (", 1)[0]
    return f"{e.service} failed: {first}"


def next_step(env: str, bad: Sequence[Ended]) -> str:
    status = f"`deployctl status --env {env}`"
    if any(e.outcome == FAILED and not e.live for e in bad):
        return f"{status} shows what runs now (it could not be confirmed)"
    if any(e.outcome == FAILED for e in bad):
        return (f"{status} shows what runs; `deployctl rollback --env {env}` returns to the last good release, "
                f"or fix the cause and deploy again")
    return f"fix the cause above, then deploy again (`deployctl run --env {env}`)"


def interrupted(env: str, ended: Sequence[Ended]) -> str:
    """What an interrupted deploy had done, and that ECS goes on: the run's last line."""
    parts = []
    for e in ended:
        if e.outcome == INTERRUPTED:
            what = (f"deployctl's rollback to {e.live} rolling out" if e.rolling_back
                    else f"revision {e.live} registered and rolling out" if e.live else "update rolling out")
            parts.append(f"{e.service}: {what}")
        elif e.outcome == OK:
            parts.append(f"{e.service}: {e.live} live" if e.live else f"{e.service}: done")
        elif e.outcome == ROLLED_BACK:
            parts.append(f"{e.service}: rolled back to {e.live}" if e.live else f"{e.service}: rolled back")
        elif e.outcome == FAILED:
            parts.append(f"{e.service}: failed")
        else:
            parts.append(f"{e.service}: not deployed")
    return (f"{'; '.join(parts)}; ECS continues the deployment — check with "
            f"`deployctl status --env {env} --watch`")
