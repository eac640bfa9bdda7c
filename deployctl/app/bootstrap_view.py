"""How `deployctl bootstrap` shows what CloudFormation will do and does: a change set in `diff`
style, property by property (from CloudFormation's Before/AfterContext, or the live template
against the new one), and one line per stack event. Pure.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from deployctl.adapters.cfn_gateway import Change, PropertyChange, StackEvent


def event_line(event: StackEvent) -> str:
    reason = f" — {event.reason}" if event.reason else ""
    return f"  {event.at:%H:%M:%S} {event.status:<28} {event.resource_type:<42} {event.logical_id}{reason}"


def with_properties(changes: list[Change], live: Mapping[str, Any] | None,
                    planned: Mapping[str, Any]) -> list[Change]:
    """Each Modify with what changes in it, property by property: from CloudFormation's
    Before/AfterContext where it gave them, else from the live template against the new one."""
    live_res = (live or {}).get("Resources") or {}
    new_res = planned.get("Resources") or {}
    out = []
    for ch in changes:
        if ch.action == "Modify" and not ch.properties:
            before = ch.before if ch.before is not None else (live_res.get(ch.logical_id) or {}).get("Properties")
            after = ch.after if ch.after is not None else (new_res.get(ch.logical_id) or {}).get("Properties")
            if before is not None and after is not None:
                ch = replace(ch, properties=tuple(property_changes(before, after)))
        out.append(ch)
    return out


def property_changes(live: Mapping[str, Any], planned: Mapping[str, Any], prefix: str = "") -> list[PropertyChange]:
    """The properties that differ; nested objects by their path (`VpcConfig.SubnetIds`), lists whole."""
    out = []
    for key in [*planned, *(k for k in live if k not in planned)]:
        old, new = live.get(key), planned.get(key)
        path = f"{prefix}{key}"
        if old == new or _scalar_text(old) == _scalar_text(new):
            continue
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            out += property_changes(old, new, f"{path}.")
        else:
            out.append(PropertyChange(path, old, new))
    return out


def _scalar_text(value: object) -> object:
    """CloudFormation reports every scalar as a string ("30" for 30, "true" for True)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return str(value)
    return value


def show(value: object, limit: int = 100) -> str:
    if value is None:
        return "(none)"
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def change_lines(changes: Iterable[Change], names: Mapping[str, str] | None = None) -> list[str]:
    """The change set in `diff` style: + add, ~ modify (with `property: live → planned` under
    it), - remove; `names` (logical id → the name the template gives) names what an Add creates,
    which has no physical id yet."""
    sign = {"Add": "+", "Modify": "~", "Remove": "-", "Import": "+", "Dynamic": "~"}
    out = []
    for ch in changes:
        replace_ = " (replaced: a new physical resource)" if ch.replacement == "True" else (
            " (may be replaced)" if ch.replacement == "Conditional" else "")
        given = ch.physical_id or (names or {}).get(ch.logical_id, "")
        name = f" {given}" if given else ""
        out.append(f"  {sign.get(ch.action, '?')} {ch.resource_type:<42} {ch.logical_id}{name}{replace_}")
        out += [f"      {pc.path}: {show(pc.live)} → {show(pc.planned)}" for pc in ch.properties]
    return out
