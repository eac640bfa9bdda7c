"""The `monitoring:` section (models live in model.py with the rest of deploy.yaml)."""

from deployctl.config.model import (
    ApiCalls,
    CostCap,
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

__all__ = ["ApiCalls", "CostCap", "Endpoints", "Latency", "LogFields", "Monitoring", "Queue", "RouteSettings",
           "Tokens", "route_slug", "routes_clause"]
