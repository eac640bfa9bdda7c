"""The classic builder's lost-cache race: a step on `FROM scratch` probes every parentless
image for a cache hit, and fails with 'unable to find image "sha256:…"' when another client on
the same engine removes one of them meanwhile (seen on this suite's shared engine). The build
is made again, saying so; any other failure is not retried."""

from __future__ import annotations

import io
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from deployctl.adapters import engine
from deployctl.errors import StageFailed

LOST = 'unable to find image "sha256:' + "d3" * 32 + '"'


class FakeApi:
    """Answers /build with the scripted streams, one per request, and records each context."""

    def __init__(self, *streams: list[dict[str, Any]]) -> None:
        self.streams = list(streams)
        self.contexts: list[bytes] = []

    def build(self, *, fileobj: Any, **_: Any) -> Iterator[dict[str, Any]]:
        self.contexts.append(fileobj.read())
        return iter(self.streams.pop(0))


def failing(message: str) -> list[dict[str, Any]]:
    return [{"stream": "Step 1/3 : FROM scratch\n"}, {"stream": "Step 2/3 : COPY busybox /bin/busybox\n"},
            {"error": message, "errorDetail": {"message": message}}]


SUCCESS = [{"stream": "Step 1/3 : FROM scratch\n"}, {"aux": {"ID": "sha256:" + "ab" * 32}},
           {"stream": "Successfully built abab\n"}]


def build(api: FakeApi) -> tuple[str, list[str]]:
    lines: list[str] = []
    image = engine.build(SimpleNamespace(api=api), io.BytesIO(b"the context tar"),  # type: ignore[arg-type]
                         dockerfile="Dockerfile", tag="t:1", on_line=lines.append)
    return image, lines


def test_a_step_that_lost_a_probed_image_is_built_again_with_the_whole_context() -> None:
    api = FakeApi(failing(LOST), SUCCESS)
    image, lines = build(api)
    assert image == "sha256:" + "ab" * 32
    assert api.contexts == [b"the context tar", b"the context tar"]  # rewound, sent whole again
    assert any("the engine lost an image it was probing for cache" in line and "building again (1 of 2)" in line
               for line in lines), lines


def test_the_retries_are_bounded_and_the_last_error_is_reported() -> None:
    api = FakeApi(*[failing(LOST)] * (engine.LOST_CACHE_RETRIES + 1))
    with pytest.raises(StageFailed) as err:
        build(api)
    assert "unable to find image" in err.value.message and "COPY busybox" in err.value.message
    assert len(api.contexts) == engine.LOST_CACHE_RETRIES + 1


def test_any_other_failure_is_not_retried() -> None:
    api = FakeApi(failing("COPY failed: file not found in build context"), SUCCESS)
    with pytest.raises(StageFailed):
        build(api)
    assert len(api.contexts) == 1
