"""The redaction corpus (tests/unit/data/redaction_corpus.json) and the checks every output channel
is held to: no secret of an entry in the output, each `keep` text of it still there, and each
look-alike unchanged."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

CORPUS_FILE = Path(__file__).parent / "data" / "redaction_corpus.json"


@dataclass(frozen=True)
class Secret:
    id: str
    text: str
    secrets: tuple[str, ...]
    keep: tuple[str, ...]


@dataclass(frozen=True)
class LookAlike:
    id: str
    text: str


_DATA = json.loads(CORPUS_FILE.read_text(encoding="utf-8"))
SECRETS = tuple(Secret(e["id"], e["text"], tuple(e["secrets"]), tuple(e["keep"])) for e in _DATA["secrets"])
LOOKALIKES = tuple(LookAlike(e["id"], e["text"]) for e in _DATA["lookalikes"])


def secret_params() -> list[object]:
    return [pytest.param(s, id=s.id) for s in SECRETS]


def lookalike_params() -> list[object]:
    return [pytest.param(x, id=x.id) for x in LOOKALIKES]


def assert_masked(entry: Secret, output: str, channel: str) -> None:
    leaked = [s for s in entry.secrets if s in output]
    assert not leaked, f"{channel} leaked {entry.id}: {leaked}"
    missing = [k for k in entry.keep if k not in output]
    assert not missing, f"{channel} lost the readable part of {entry.id}: {missing}"


def assert_readable(entry: LookAlike, output: str, channel: str) -> None:
    assert entry.text in output, f"{channel} changed the look-alike {entry.id}"
