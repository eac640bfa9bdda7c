"""HTTP server: GET /health/live, GET /health/ready, POST /v1/chat."""

from __future__ import annotations

import json
import logging
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from app.model import Loader

log = logging.getLogger("chat-api")
MAX_BODY = 64 * 1024


def make_handler(loader: Loader) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "chat-api"

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path == "/health/live":
                self._send(200, {"status": "alive"})
            elif self.path == "/health/ready":
                if loader.ready.is_set():
                    self._send(200, {"status": "ready", "model": loader.model.name})
                else:
                    self._send(503, {"status": "loading" if loader.error is None else "failed",
                                     "error": loader.error})
            else:
                self._send(404, {"error": "not found"})

        def do_POST(self) -> None:  # noqa: N802
            if self.path != "/v1/chat":
                self._send(404, {"error": "not found"})
                return
            if not loader.ready.is_set():
                self._send(503, {"error": "model is loading"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._send(413, {"error": "request too large"})
                return
            try:
                data = json.loads(self.rfile.read(length) or b"{}")
                messages = data["messages"]
                if not isinstance(messages, list) or not messages:
                    raise ValueError("messages must be a non-empty list")
            except (ValueError, KeyError, TypeError) as exc:
                self._send(400, {"error": f"bad request: {exc}"})
                return
            try:
                reply = loader.model.complete(messages)
            except Exception as exc:  # noqa: BLE001 - one failed completion is a 502, not a crash
                log.warning("completion failed: %s", exc)
                self._send(502, {"error": "model backend failed"})
                return
            self._send(200, {"reply": reply.text, "model": reply.model, "tokens": reply.tokens})

        def log_message(self, fmt: str, *args: Any) -> None:
            log.info("%s %s", self.address_string(), fmt % args)

    return Handler


def serve(loader: Loader, host: str = "0.0.0.0", port: int | None = None) -> ThreadingHTTPServer:
    port = int(os.environ.get("PORT", "8000")) if port is None else port
    return ThreadingHTTPServer((host, port), make_handler(loader))
