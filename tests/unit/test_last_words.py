"""The line a crashed local container's failure message quotes: the app's own last words."""

from __future__ import annotations

from deployctl.targets.docker import last_words

TRACEBACK = """INFO:     Started server process [1]
Traceback (most recent call last):
  File "/app/ragsvc/server.py", line 19, in <module>
    raise RuntimeError("could not load model weights")
RuntimeError: could not load model weights
"""


def test_a_python_traceback_is_quoted_by_its_exception_line() -> None:
    assert last_words(TRACEBACK) == "RuntimeError: could not load model weights"


def test_without_an_error_word_the_last_line_is_quoted() -> None:
    assert last_words("starting\nlistening on :8000\n\n") == "listening on :8000"
    assert last_words("") == ""


def test_a_secret_in_the_last_words_is_masked() -> None:
    key = "sk-proj-Ab3dEf9hIjKlMnOpQrStUvWxYz0123456789abcdEFGH"
    said = last_words(f"booting\nopenai.AuthenticationError: Incorrect API key provided: {key}\n")
    assert said.startswith("openai.AuthenticationError: Incorrect API key provided:")
    assert key not in said and key[:12] not in said


def test_a_long_line_is_cut() -> None:
    said = last_words("Error: " + "x" * 500)
    assert len(said) == 200 and said.endswith("…")
