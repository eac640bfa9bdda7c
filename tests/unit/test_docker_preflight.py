"""The base images the local preflight checks: FROM lines as the builder reads them."""

from __future__ import annotations

from deployctl.targets.docker_preflight import base_images

MULTI = """\
# syntax=docker/dockerfile:1
ARG PY=3.11
ARG DISTRO
FROM --platform=linux/amd64 python:${PY}-slim AS base
RUN pip install -r requirements.txt
FROM base AS test
RUN pytest
FROM \\
  gcr.io/distroless/python3:${TAG:-nonroot} AS runtime
COPY --from=base /app /app
FROM scratch AS empty
FROM debian:$DISTRO
"""


def test_stages_scratch_and_unknown_variables_are_not_pulled() -> None:
    # `base` is a stage of this file, scratch is nothing, and $DISTRO has no value: the build
    # would say what is wrong with that one, the preflight does not guess.
    assert base_images(MULTI, {}) == ["python:3.11-slim", "gcr.io/distroless/python3:nonroot"]


def test_build_args_win_over_arg_defaults() -> None:
    assert base_images(MULTI, {"PY": "3.12", "DISTRO": "bookworm", "TAG": "debug"}) == [
        "python:3.12-slim", "gcr.io/distroless/python3:debug", "debian:bookworm"]


def test_a_stage_named_like_an_image_later_is_still_that_stage() -> None:
    text = "FROM python:3.11-slim AS python\nFROM python\nFROM Python:3.11-slim\n"
    assert base_images(text, {}) == ["python:3.11-slim", "Python:3.11-slim"]

