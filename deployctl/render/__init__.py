"""Pure request builders: they turn config into the exact dicts sent to AWS APIs."""
