"""Helpers shared by the test suites (worlds, projects, mid-rollout actions); fixtures that
use them live in the conftest files."""
