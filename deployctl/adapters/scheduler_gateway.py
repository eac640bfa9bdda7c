"""EventBridge Scheduler, as `jobs:` uses it: one schedule group per environment, a schedule
per job. Callers get names, never a response dict. Functions take the "scheduler" client.
Shapes: https://docs.aws.amazon.com/scheduler/latest/APIReference/API_ListSchedules.html.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from deployctl.adapters.aws import BotoClient, ClientError, error_code


def schedule_names(scheduler: BotoClient, group: str) -> set[str] | None:
    """Names of the group's schedules (every page); None when the group does not exist."""
    try:
        scheduler.get_schedule_group(Name=group)
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return None
        raise
    names: set[str] = set()
    token: str | None = None
    while True:
        page = scheduler.list_schedules(GroupName=group, **({"NextToken": token} if token else {}))
        names.update(str(s["Name"]) for s in page.get("Schedules") or [])
        token = page.get("NextToken")
        if not token:
            return names


def create_group(scheduler: BotoClient, group: str, tags: Mapping[str, str]) -> None:
    scheduler.create_schedule_group(Name=group, Tags=[{"Key": k, "Value": v} for k, v in tags.items()])


def create_schedule(scheduler: BotoClient, request: Mapping[str, Any]) -> None:
    scheduler.create_schedule(**request)


def update_schedule(scheduler: BotoClient, request: Mapping[str, Any]) -> None:
    scheduler.update_schedule(**request)


def delete_schedule(scheduler: BotoClient, group: str, name: str) -> None:
    scheduler.delete_schedule(Name=name, GroupName=group)
