"""The `monitoring:` section (models live in model.py with the rest of deploy.yaml)."""

from deployctl.config.model import (
    Endpoints,
    Latency,
    LogFields,
    Monitoring,
    Queue,
    RouteSettings,
    Tokens,
    route_slug,
    routes_clause,
)

__all__ = ["Endpoints", "Latency", "LogFields", "Monitoring", "Queue", "RouteSettings", "Tokens", "route_slug",
           "routes_clause"]
