"""deployctl: from a git commit to a healthy deploy."""

__version__ = "0.1.0"
