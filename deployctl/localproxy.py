"""The stable local port of a service: a small TCP proxy that deployctl runs as a host process.

Why a proxy at all: a container's published port is fixed when the container is created, so two
containers (old and new release) can never share 127.0.0.1:8080. Something has to own the stable
port and decide, per connection, which container gets it. A switch then means "new connections go
to the new backend", while connections already open to the old one carry on until they finish.

Why this shape:
- A host process, not a container: a proxy container would need an image, and none can be pulled
  here (nor should a dev deploy depend on one); the Python running deployctl is always at hand.
- TCP, not HTTP: it works for any protocol a service speaks (HTTP, gRPC, websockets) and cannot
  mangle requests. The price: a long-lived keep-alive connection stays on the old backend until
  the drain period ends and the old container is stopped.
- Standard library only, run by file path (`python localproxy.py serve ...`): it needs no installed
  package, imports in milliseconds and keeps running whatever happens to the deployctl install.
- Detached (own session, reparented to init) so it outlives the deploy command; a later deploy
  finds it through its state directory and reuses it, or starts a new one if it has died.
- Control over a unix socket in a 0700 directory, one JSON line per request: only this user can
  switch traffic, and a switch is acknowledged only once it is in effect. So when deployctl is
  told "switched", no new connection will reach the old backend, which makes draining exact. The
  proxy also counts open connections per backend, so draining ends as soon as they are done.
- The backend list is saved to a file on every switch, so a restarted proxy serves the last
  release straight away.

State per port (runtime plumbing, not release history: that lives in Docker labels):
  <state dir>/proxy/<port>/  control.sock  proxy.json (pid, port, owner)  backends.json  proxy.log
The state dir is $DEPLOYCTL_STATE_DIR or ~/.deployctl; it is per machine because ports are.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import json
import os
import signal
import socket
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

if __name__ == "__main__" and not __package__:
    # Run by file path with a bare environment: import the deployctl this file belongs to, not
    # whatever copy (or none) the interpreter's site-packages hold.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deployctl.adapters import shell  # noqa: E402

CONNECT_TIMEOUT = 5.0
REPLAY_LIMIT = 64 * 1024  # bytes of a connection's start kept to send again to another backend
# macOS allows 104 bytes in a unix socket path, Linux 108; stay under both.
_MAX_SOCKET_PATH = 100
_CHUNK = 64 * 1024


class ProxyError(RuntimeError):
    """The proxy could not be started or reached; the message says why, for people."""


# --- paths --------------------------------------------------------------------------------------


def state_root() -> Path:
    return Path(os.environ.get("DEPLOYCTL_STATE_DIR") or Path.home() / ".deployctl")


def proxy_dir(port: int, root: Path | None = None) -> Path:
    return (root or state_root()) / "proxy" / str(port)


def _socket_path(directory: Path) -> Path:
    return directory / "control.sock"


# --- the proxy process --------------------------------------------------------------------------


class _Server:
    def __init__(self, directory: Path, port: int, owner: str) -> None:
        self.dir = directory
        self.port = port
        self.owner = owner
        self.backends: list[tuple[str, int]] = _read_backends(directory)
        self.standby: list[tuple[str, int]] = _read_backends(directory, "standby.json")
        self.generation = 0
        self.next_index = 0
        self.active: Counter[str] = Counter()
        self.accepted = 0
        self.failed = 0
        self.retried = 0
        self.stopping = asyncio.Event()

    # Data path ----------------------------------------------------------------------------------

    async def client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        # Snapshot: a switch during this connect must not change where this connection goes
        # half-way through trying its candidates. The standby (the previous release, kept
        # running while a new one settles) is tried only once every backend has failed.
        backends = list(self.backends)
        candidates: list[tuple[str, int]] = []
        if backends:
            start = self.next_index % len(backends)
            self.next_index += 1
            candidates = backends[start:] + backends[:start]
        candidates += [b for b in self.standby if b not in candidates]
        relay = _Relay(reader, writer)
        answered = False
        for host, port in candidates:
            try:
                up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(host, port), CONNECT_TIMEOUT)
            except (TimeoutError, OSError):
                continue
            chosen = f"{host}:{port}"
            self.active[chosen] += 1
            try:
                answered = await relay.run(up_reader, up_writer)
            finally:
                self.active[chosen] -= 1
                if self.active[chosen] <= 0:
                    del self.active[chosen]
                up_writer.close()
            if answered or not relay.replayable:
                break
            # Closed without a byte of answer while the client still waits: the backend was
            # going away (a crashing container, or Docker's port proxy accepting for one that
            # is gone). The next candidate gets the same bytes.
            self.retried += 1
        if not answered:
            self.failed += 1
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()

    # Control path -------------------------------------------------------------------------------

    async def control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5.0)
            request = json.loads(line or b"{}")
            reply = self.handle(request)
        except Exception as exc:  # noqa: BLE001 - a bad request must never take the proxy down
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        with contextlib.suppress(Exception):
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
            writer.close()

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "set":
            backends = [_parse_address(b) for b in request.get("backends", [])]
            standby = [_parse_address(b) for b in request.get("standby", [])]
            _write_json(self.dir / "standby.json", [f"{h}:{p}" for h, p in standby])
            _write_json(self.dir / "backends.json", [f"{h}:{p}" for h, p in backends])
            self.backends, self.standby = backends, standby
            self.generation += 1
            _log(f"backends -> {', '.join(f'{h}:{p}' for h, p in backends) or '(none)'}"
                 + (f"; standby {', '.join(f'{h}:{p}' for h, p in standby)}" if standby else ""))
        elif op == "stop":
            self.stopping.set()
        elif op != "ping":
            return {"ok": False, "error": f"unknown op {op!r}"}
        return {"ok": True, **self.status()}

    def status(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "port": self.port,
            "owner": self.owner,
            "backends": [f"{h}:{p}" for h, p in self.backends],
            "standby": [f"{h}:{p}" for h, p in self.standby],
            "generation": self.generation,
            "active": dict(self.active),
            "accepted": self.accepted,
            "failed": self.failed,
            "retried": self.retried,
        }


class _Relay:
    """Pipes one client connection to a backend, keeping what the client sent so far (up to
    REPLAY_LIMIT) so that it can be sent again to the next backend if this one closes without
    answering. Like HAProxy's `retry-on empty-response conn-failure`: a TCP proxy cannot tell
    whether a request is safe to repeat, so it repeats only what no backend answered, and only
    while the client keeps its side open and waits (after an end-of-file from the client, or
    once any answer came, nothing is ever sent twice)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.sent = bytearray()
        self.replayable = True

    async def run(self, up_reader: asyncio.StreamReader, up_writer: asyncio.StreamWriter) -> bool:
        """True once the backend answered (the connection is then done, however it ended)."""
        if self.sent:
            up_writer.write(bytes(self.sent))
        upward = asyncio.ensure_future(self._upward(up_writer))
        answered = await self._downward(up_reader)
        if not answered and self.replayable:
            upward.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await upward
            return False
        with contextlib.suppress(Exception):
            await upward
        return answered

    async def _upward(self, up_writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                data = await self.reader.read(_CHUNK)
            except (OSError, asyncio.IncompleteReadError):
                self.replayable = False
                up_writer.close()  # the client is gone: end the backend's side too
                return
            if not data:
                self.replayable = False
                with contextlib.suppress(OSError):
                    if up_writer.can_write_eof():
                        # Pass the half-close on: HTTP/1.0 clients and many protocols signal
                        # "request done" so.
                        up_writer.write_eof()
                return
            if self.replayable:
                if len(self.sent) + len(data) <= REPLAY_LIMIT:
                    self.sent += data
                else:
                    self.replayable = False
                    self.sent = bytearray()
            try:
                up_writer.write(data)
                await up_writer.drain()
            except OSError:
                return  # the backend went away: the downward side sees it and decides

    async def _downward(self, up_reader: asyncio.StreamReader) -> bool:
        answered = False
        try:
            while data := await up_reader.read(_CHUNK):
                if not answered:
                    answered = True
                    self.replayable = False
                    self.sent = bytearray()
                self.writer.write(data)
                await self.writer.drain()
            if answered and self.writer.can_write_eof():
                self.writer.write_eof()
        except (OSError, asyncio.IncompleteReadError):
            if answered:  # one side went away mid-answer: end the other too
                self.writer.close()
        return answered


async def _serve(directory: Path, port: int, owner: str) -> int:
    server = _Server(directory, port, owner)
    try:
        listener = await asyncio.start_server(server.client, "127.0.0.1", port, reuse_address=True,
                                              backlog=512)
    except OSError as exc:
        why = "another program is using it" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
        reason = f"cannot listen on 127.0.0.1:{port}: {why}"
        _log(reason)
        # Tells the waiting deploy at once, rather than after its start-up timeout.
        _write_json(directory / "proxy.error", {"pid": os.getpid(), "error": reason})
        return 1
    sock_path = _socket_path(directory)
    with contextlib.suppress(FileNotFoundError):
        sock_path.unlink()
    control = await asyncio.start_unix_server(server.control, str(sock_path))
    os.chmod(sock_path, 0o600)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, server.stopping.set)
    # Written last: its presence plus an answering socket means "ready".
    _write_json(directory / "proxy.json", {"pid": os.getpid(), "port": port, "owner": owner,
                                           "started": time.time()})
    _log(f"listening on 127.0.0.1:{port} for {owner}; backends: "
         f"{', '.join(f'{h}:{p}' for h, p in server.backends) or '(none)'}")
    await server.stopping.wait()
    listener.close()
    control.close()
    for path in (sock_path, directory / "proxy.json"):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    _log("stopped")
    return 0


def _parse_address(text: str) -> tuple[str, int]:
    host, _, port = str(text).rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"backend {text!r} is not host:port")
    return host, int(port)


def _read_backends(directory: Path, name: str = "backends.json") -> list[tuple[str, int]]:
    try:
        return [_parse_address(b) for b in json.loads((directory / name).read_text())]
    except (OSError, ValueError):
        return []


def _write_json(path: Path, data: Any) -> None:
    # Atomic replace: a proxy restarting mid-write must never read half a file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} proxy[{os.getpid()}] {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="deployctl local TCP proxy (started by deployctl)")
    sub = parser.add_subparsers(dest="cmd", required=True)
    serve = sub.add_parser("serve")
    serve.add_argument("--dir", required=True, type=Path)
    serve.add_argument("--port", required=True, type=int)
    serve.add_argument("--owner", default="")
    args = parser.parse_args(argv)
    return asyncio.run(_serve(args.dir, args.port, args.owner))


# --- the deployctl side -------------------------------------------------------------------------


def request(directory: Path, payload: dict[str, Any], timeout: float = 3.0) -> dict[str, Any]:
    """Send one control request; raises ProxyError if no proxy answers there."""
    path = _socket_path(directory)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall(json.dumps(payload).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError as exc:
        raise ProxyError(f"no proxy answers on {path}: {exc.strerror or exc}") from None
    try:
        reply = json.loads(data)
    except ValueError:
        raise ProxyError(f"the proxy on {path} sent a garbled reply: {data[:200]!r}") from None
    if not reply.get("ok"):
        raise ProxyError(f"the proxy on {path} refused {payload.get('op')}: {reply.get('error')}")
    return dict(reply)


def status(port: int, root: Path | None = None) -> dict[str, Any] | None:
    """The running proxy's status for `port`, or None if none is alive."""
    try:
        return request(proxy_dir(port, root), {"op": "ping"}, timeout=2.0)
    except ProxyError:
        return None


def ensure(port: int, owner: str, root: Path | None = None, wait: float = 5.0) -> dict[str, Any]:
    """Reuse the live proxy for `port` or start one; return its status.

    Raises ProxyError if the port's proxy belongs to another app/env/service or cannot start
    (the port is taken by another program, say), with the proxy's own last log lines.
    """
    directory = proxy_dir(port, root)
    current = status(port, root)
    if current is not None:
        if current.get("owner") != owner:
            raise ProxyError(
                f"127.0.0.1:{port} is already the stable port of {current.get('owner')} "
                f"(proxy pid {current.get('pid')}); give {owner} another local_port"
            )
        return current
    sock = _socket_path(directory)
    if len(str(sock)) > _MAX_SOCKET_PATH:
        raise ProxyError(f"state directory path too long for a unix socket: {sock}; "
                         "set DEPLOYCTL_STATE_DIR to a shorter directory")
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    for stale in (sock, directory / "proxy.json", directory / "proxy.error"):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
    log = directory / "proxy.log"
    _spawn([sys.executable, str(Path(__file__).resolve()), "serve", "--dir", str(directory),
            "--port", str(port), "--owner", owner], log)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        failed = _read_json(directory / "proxy.error")
        if failed:
            raise ProxyError(str(failed.get("error")))
        if (directory / "proxy.json").exists():
            current = status(port, root)
            if current is not None:
                return current
        time.sleep(0.05)
    tail = _tail(log, 5)
    raise ProxyError(f"the local proxy for 127.0.0.1:{port} did not start within {wait:g}s"
                     + (":\n  " + "\n  ".join(tail) if tail else ""))


def _spawn(argv: list[str], log: Path) -> None:
    """Start argv detached: its own session, reparented to init, output appended to `log`.

    `sh -c '... &'` exits at once, so the proxy is nobody's child: no zombie is left in the
    deploy command (or a test process) when it dies, and nothing waits on it.
    """
    script = 'log=$1; shift; "$@" </dev/null >>"$log" 2>&1 &'
    # A bare environment: the deploy's may hold secrets and registry passwords, which a
    # long-lived process has no business keeping in its /proc/<pid>/environ.
    # PYTHONPATH: the proxy runs this file as a script, which imports the deployctl that holds it
    # (the same copy as the deploy's, installed or not).
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8",
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    code, _out, err = shell.run_capture(["/bin/sh", "-c", script, "sh", str(log), *argv], timeout=10,
                                        cwd=log.parent, env=env)
    if code != 0:
        raise ProxyError(f"could not start the local proxy: {err.strip() or f'exit {code}'}")


def switch(port: int, backends: list[str], root: Path | None = None,
           standby: list[str] | None = None) -> dict[str, Any]:
    """Point new connections at `backends`; returns once the proxy has switched. `standby`
    backends get a connection only when none of `backends` accepts or answers it."""
    return request(proxy_dir(port, root), {"op": "set", "backends": list(backends),
                                           "standby": list(standby or [])})


def wait_drained(port: int, backends: list[str], timeout: float, root: Path | None = None) -> int:
    """Wait up to `timeout` s until no connection to `backends` is open; return those still open."""
    deadline = time.monotonic() + timeout
    while True:
        current = status(port, root)
        if current is None:
            return 0  # proxy gone: nothing of ours is in flight through it
        open_ = sum(int(current.get("active", {}).get(b, 0)) for b in backends)
        if open_ == 0 or time.monotonic() >= deadline:
            return open_
        time.sleep(0.05)


def stop(port: int, root: Path | None = None, wait: float = 5.0) -> bool:
    """Stop the proxy for `port` if one is running; True if one was stopped."""
    directory = proxy_dir(port, root)
    try:
        request(directory, {"op": "stop"})
    except ProxyError:
        return False
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and _socket_path(directory).exists():
        time.sleep(0.05)
    return True


def _tail(path: Path, n: int) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()[-n:]
    except OSError:
        return []


if __name__ == "__main__":
    sys.exit(main())
