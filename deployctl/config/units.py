"""Human units in deploy.yaml: durations ("90s", "10m", "1h30m") and sizes ("600MB", "2GiB")."""

from __future__ import annotations

import math
import re

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?i?B?)\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
               "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40, "K": 10**3, "M": 10**6, "G": 10**9}


def parse_duration(value: object) -> float:
    """Seconds from an int/float (seconds) or a string like '90s', '10m', '1h30m'."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 10m or 1h")
    if isinstance(value, int | float):
        if not math.isfinite(value):  # YAML's .nan and .inf
            raise ValueError(f"expected a duration such as 30s, 10m or 1h, got {value!r}")
        if value < 0:
            raise ValueError("duration must not be negative")
        return float(value)
    if not isinstance(value, str):
        raise ValueError("expected a duration such as 30s, 10m or 1h")
    text = value.strip().replace(" ", "")
    if text.isdigit():
        return float(text)
    pos, total = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"'{value}' is not a duration; use a number with s, m or h, e.g. 30s, 10m, 1h30m")
    return total


def parse_size(value: object) -> int:
    """Bytes from an int or a string like '600MB' (decimal) or '2GiB' (binary)."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 600MB or 2GiB")
    size: int | None = None
    if isinstance(value, int):
        size = value
    elif isinstance(value, str):
        match = _SIZE.match(value)
        if match and match.group(2).upper() in _SIZE_UNITS:
            size = int(float(match.group(1)) * _SIZE_UNITS[match.group(2).upper()])
    if size is None:
        raise ValueError(f"'{value}' is not a size; use e.g. 600MB, 1.5GB or 2GiB")
    if size <= 0:
        raise ValueError(f"size must be at least 1 byte, got {value!r}; use e.g. 600MB")
    return size


def format_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds % 1 else f"{int(seconds)}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s" if secs else f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def format_size(num: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if num < 1000 or unit == "GB":
            return f"{num:.0f} {unit}" if unit == "B" else f"{num:.1f} {unit}"
        num /= 1000
    return f"{num:.1f} GB"
