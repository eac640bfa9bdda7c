"""HTTP routes the app declares (FastAPI/Starlette/Flask decorators, Django urls), and which of
them is a readiness or health check."""

from __future__ import annotations

import re

_DECORATED = re.compile(r"@\s*\w+(?:\.\w+)*\.(?:get|route|api_route|head)\(\s*[\"']([^\"']*)[\"']")
_STARLETTE = re.compile(r"\bRoute\(\s*[\"'](/[^\"']*)[\"']")
_DJANGO = re.compile(r"\b(?:re_)?path\(\s*r?[\"']\^?([^\"'$]*)\$?[\"']")
# Most specific first: a readiness route says more than a liveness one.
PREFERENCE = (
    re.compile(r"ready|readiness"),
    re.compile(r"^/?(api/)?(v\d+/)?health(z|check)?/?$"),
    re.compile(r"health"),
    re.compile(r"live|liveness|ping|status"),
)


def routes(source: str) -> list[str]:
    """GET routes declared in one module's source."""
    out = [m.group(1) for m in _DECORATED.finditer(source)] + [m.group(1) for m in _STARLETTE.finditer(source)]
    if "urlpatterns" in source:
        out += ["/" + m.group(1).lstrip("/") for m in _DJANGO.finditer(source)]
    return [r if r.startswith("/") else "/" + r for r in out if "{" not in r and "<" not in r]


def health_route(all_routes: list[str]) -> str | None:
    """The route a health check should request, None when the app declares none."""
    for pattern in PREFERENCE:
        hits = [r for r in all_routes if pattern.search(r.lower())]
        if hits:
            return min(hits, key=len)
    return None
