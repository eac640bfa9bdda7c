"""The redactor against the corpus: at least 60 secret shapes (provider tokens, ANSI-wrapped and
multi-line ones) masked, at least 30 look-alikes left readable, through `redact()` (whole texts)
and `stream()` (one line at a time, as stage output arrives)."""

from __future__ import annotations

import pytest

from deployctl.redact import MASK, Redactor
from tests.unit.redaction_corpus import (
    LOOKALIKES,
    SECRETS,
    LookAlike,
    Secret,
    assert_masked,
    lookalike_params,
    secret_params,
)


def test_the_corpus_is_as_large_as_promised() -> None:
    assert len(SECRETS) >= 60
    assert len(LOOKALIKES) >= 30
    assert sum("\x1b" in s.text for s in SECRETS) >= 8  # ANSI-wrapped
    assert sum("\n" in s.text for s in SECRETS) >= 8  # multi-line
    assert sum("\x1b" in x.text for x in LOOKALIKES) >= 2


@pytest.mark.parametrize("entry", secret_params())
def test_secret_shapes_are_masked_in_whole_texts(entry: Secret) -> None:
    out = Redactor().redact(entry.text)
    assert MASK in out
    assert_masked(entry, out, "redact()")


@pytest.mark.parametrize("entry", secret_params())
def test_secret_shapes_are_masked_line_by_line(entry: Secret) -> None:
    stream = Redactor().stream()
    out = "\n".join(stream(line) for line in entry.text.split("\n"))
    assert_masked(entry, out, "stream()")


@pytest.mark.parametrize("entry", lookalike_params())
def test_look_alikes_stay_readable(entry: LookAlike) -> None:
    assert Redactor().redact(entry.text) == entry.text
    stream = Redactor().stream()
    assert [stream(line) for line in entry.text.split("\n")] == entry.text.split("\n")


def test_a_masked_coloured_line_leaves_no_escape_half_open() -> None:
    token = "ghp_" + "aB3" * 12
    out = Redactor().redact(f"\x1b[1mtoken\x1b[0m \x1b[31m{token}\x1b[0m and \x1b[32mok\x1b[0m")
    assert out == "token *** and ok"
    # Lines of a text with nothing to mask keep their colours.
    text = f"\x1b[32mall good\x1b[0m\nsecret {token}"
    assert Redactor().redact(text) == "\x1b[32mall good\x1b[0m\nsecret ***"


def test_a_credential_inside_a_terminal_hyperlink_is_masked() -> None:
    # OSC 8: the URL is not shown, but it is in the output (and in a saved log).
    line = "\x1b]8;;https://ci:S3cretPass@example.com/x\x1b\\open\x1b]8;;\x1b\\"
    out = Redactor().stream()(line)
    assert "S3cretPass" not in out
    assert "open" in out
