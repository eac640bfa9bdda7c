"""python -m app: start the HTTP API on $PORT (8000)."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading

from app.model import Loader, from_env
from app.server import serve


def main() -> int:
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "info").upper(), stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    server = serve(Loader(from_env()).start())

    def stop(signum: int, frame: object) -> None:
        # ECS sends SIGTERM and waits stopTimeout: finish in-flight requests, then exit.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    logging.getLogger("chat-api").info("listening on port %s", server.server_address[1])
    server.serve_forever()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
