"""Shared test support: fixtures, seams and small targets used by several test packages."""
