"""Model backends. `fake` answers locally (tests, dev); `openai` calls an OpenAI-compatible API.

Loading is deliberately slow-capable: real services load weights for 10-30 s, so readiness is a
separate state from liveness (/health/live vs /health/ready).
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.request
from dataclasses import dataclass


@dataclass(frozen=True)
class Reply:
    text: str
    model: str
    tokens: int


class FakeModel:
    """Deterministic: echoes the last user message. MODEL_LOAD_SECONDS simulates loading."""

    def __init__(self, name: str) -> None:
        self.name = name

    def load(self) -> None:
        time.sleep(float(os.environ.get("MODEL_LOAD_SECONDS", "0")))

    def complete(self, messages: list[dict[str, str]]) -> Reply:
        last = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
        text = f"echo: {last}"
        return Reply(text=text, model=self.name, tokens=len(text.split()))


class OpenAIModel:
    """Chat completions over HTTPS. The key comes from the environment (an ECS secret)."""

    def __init__(self, name: str, api_key: str, base_url: str) -> None:
        self.name, self._key, self._url = name, api_key, base_url.rstrip("/")

    def load(self) -> None:
        if not self._key:
            raise RuntimeError("OPENAI_API_KEY is not set")

    def complete(self, messages: list[dict[str, str]]) -> Reply:
        body = json.dumps({"model": self.name, "messages": messages}).encode()
        req = urllib.request.Request(f"{self._url}/chat/completions", data=body, method="POST", headers={
            "Authorization": f"Bearer {self._key}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            data = json.load(resp)
        text = data["choices"][0]["message"]["content"]
        return Reply(text=text, model=self.name, tokens=int(data.get("usage", {}).get("total_tokens", 0)))


def from_env() -> FakeModel | OpenAIModel:
    name = os.environ.get("MODEL_NAME", "small-chat")
    if os.environ.get("MODEL_BACKEND", "fake") == "openai":
        return OpenAIModel(name, os.environ.get("OPENAI_API_KEY", ""),
                           os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1"))
    return FakeModel(name)


class Loader:
    """Loads the model in the background so the server answers /health/live at once."""

    def __init__(self, model: FakeModel | OpenAIModel) -> None:
        self.model = model
        self.ready = threading.Event()
        self.error: str | None = None

    def start(self) -> Loader:
        threading.Thread(target=self._run, name="model-loader", daemon=True).start()
        return self

    def _run(self) -> None:
        try:
            self.model.load()
        except Exception as exc:  # noqa: BLE001 - reported on /health/ready, the process stays up
            self.error = f"{type(exc).__name__}: {exc}"
            return
        self.ready.set()
