"""Helpers shared by the test suites (worlds, projects, mid-rollout actions, the in-memory
target); fixtures that use them live in the conftest files."""
