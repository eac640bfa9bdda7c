"""Small text helpers shared by the `status` and `history` reports of every target. Pure."""

from __future__ import annotations


def outcome_text(outcome: str) -> str:
    return outcome.replace("-", " ")


def short(digest: str | None) -> str:
    return (digest or "")[:19]


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.1f}m"


def table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=False)]
    return ["  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=False)).rstrip()
            for row in [headers, *rows]]
