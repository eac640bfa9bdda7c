"""POST a JSON body to an incoming-webhook URL (Slack and compatibles), on urllib only.

The URL is a credential: whoever holds a Slack webhook URL can post to the channel. So no
error raised here ever contains it; a failure names the host only.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

TIMEOUT_S = 10.0
RETRIES = 2  # after the first attempt; a chat message is best effort, a deploy never waits long


class WebhookError(Exception):
    """A message that says what went wrong, without the URL."""


def host_of(url: str) -> str:
    return urllib.parse.urlsplit(url).hostname or "?"


def check_url(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise WebhookError("the webhook URL is not an http(s) URL")


def post_json(url: str, body: Any, *, timeout: float = TIMEOUT_S, retries: int = RETRIES,
              opener: Any = None) -> int:
    """POST `body` as JSON; the HTTP status. Retries connection errors, 429 and 5xx (honouring a
    short Retry-After); WebhookError when every attempt failed or the receiver refused it."""
    check_url(url)
    data = json.dumps(body).encode("utf-8")
    open_url = opener or urllib.request.urlopen
    host = host_of(url)
    last = ""
    for attempt in range(retries + 1):
        req = urllib.request.Request(url, data=data, method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "deployctl"})
        try:
            with open_url(req, timeout=timeout) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            last = f"{host} answered HTTP {exc.code}"
            if exc.code != 429 and exc.code < 500:
                raise WebhookError(last) from None  # 4xx: a wrong or revoked URL; retrying won't help
            wait = _retry_after(exc.headers.get("Retry-After") if exc.headers else None)
        except OSError as exc:  # URLError, timeouts and refused connections are all OSError
            reason = getattr(exc, "reason", exc)
            last = f"could not reach {host}: {reason}"
            wait = 0.5
        if attempt < retries:
            _sleep(wait * (attempt + 1))
    raise WebhookError(last)


def _retry_after(value: str | None) -> float:
    try:
        return min(max(float(value or 1), 0.0), 5.0)
    except ValueError:
        return 1.0


def _sleep(seconds: float) -> None:
    time.sleep(seconds)
