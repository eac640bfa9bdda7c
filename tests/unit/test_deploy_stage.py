"""deployctl.app.deploy_stage.hinted: the engine's record carries the hint, the error raised by
the stage stays as it was (a caller holding it still sees its own message and hint)."""

from __future__ import annotations

from typing import Any

import pytest

from deployctl.app.deploy_stage import hinted
from deployctl.errors import DeployFailed


def test_the_hint_is_folded_into_a_copy_and_the_original_is_left_alone() -> None:
    original = DeployFailed("api did not become healthy", hint="see `deployctl status`")

    def stage(ctx: Any) -> None:
        raise original

    with pytest.raises(DeployFailed) as raised:
        hinted(stage)(None)
    assert raised.value.message == "api did not become healthy — hint: see `deployctl status`"
    assert raised.value.hint is None and raised.value.exit_code == 1
    assert (original.message, original.hint) == ("api did not become healthy", "see `deployctl status`")


def test_an_error_without_a_hint_passes_unchanged() -> None:
    original = DeployFailed("no")

    def stage(ctx: Any) -> None:
        raise original

    with pytest.raises(DeployFailed) as raised:
        hinted(stage)(None)
    assert raised.value is original
