"""deploy.yaml: loading, overlays, validation with located errors, JSON Schema."""

from deployctl.config.model import ResolvedConfig
from deployctl.config.resolve import Loaded, deep_merge, load_env, read, validate_all

__all__ = ["Loaded", "ResolvedConfig", "deep_merge", "load_env", "read", "validate_all"]
