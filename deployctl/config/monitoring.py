"""The `monitoring:` section (models live in model.py with the rest of deploy.yaml)."""

from deployctl.config.model import Latency, Monitoring, Queue, Tokens

__all__ = ["Latency", "Monitoring", "Queue", "Tokens"]
