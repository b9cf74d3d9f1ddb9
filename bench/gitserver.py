"""A git smart-HTTP server on 127.0.0.1: ``git http-backend`` (CGI) behind a small threaded Python HTTP server.

Every request waits ``latency`` seconds before it is answered and every response body is paced to at most
``bandwidth`` bytes a second (per response; 0 = unlimited), which is how a far-away GitHub looks to a clone.
The server binds 127.0.0.1 only, answers at most ``max_requests`` requests and shuts itself down after
``lifetime`` seconds, whatever its caller does.

Clones of ``https://github.com/<owner>/<name>`` reach it through git's ``url.<base>.insteadOf``, set by
:meth:`GitServer.git_env` as ``GIT_CONFIG_COUNT``/``GIT_CONFIG_KEY_<n>``/``GIT_CONFIG_VALUE_<n>`` variables, so the
pipeline runs unmodified with ``ingest.allowed_hosts: [github.com]``.

This module is the one copy of the http-backend plumbing (CGI environment, request bodies, response parsing,
paced replies). Misbehaving servers subclass :class:`GitServer` and override its two hooks: :meth:`GitServer.before`
answers a request instead of git (or drops it), :meth:`GitServer.after` changes git's reply (for example cuts the
pack mid-way with :attr:`Reply.cut`). ``tests/gitserver.py`` is such a subclass.
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

CGI_TIMEOUT = 300.0  # seconds for one git http-backend run
_CHUNK = 16 * 1024


@dataclass(frozen=True)
class Request:
    """One HTTP request as the hooks see it."""

    method: str
    path: str  # as sent, with the query string
    headers: dict[str, str]  # names in lower case
    body: bytes

    def header(self, name: str) -> str:
        """A header's value ('' when absent), whatever the case of its name."""
        return self.headers.get(name.lower(), "")

    @property
    def segments(self) -> list[str]:
        """The URL path's segments: ``/owner/name/info/refs`` -> ``['owner', 'name', 'info', 'refs']``."""
        return unquote(urlsplit(self.path).path).strip("/").split("/")

    @property
    def owner(self) -> str:
        return self.segments[0]

    @property
    def repo(self) -> str:
        """``owner/name``."""
        return "/".join(self.segments[:2])


@dataclass(frozen=True)
class Reply:
    """What the server sends back. ``status`` 0 sends nothing and closes the connection; ``cut`` sends half of the
    body, then resets the connection (a pack cut off mid-way)."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    payload: bytes = b""
    cut: bool = False


DROP = Reply(0)


def http_backend(project_root: Path, request: Request, *, timeout: float = CGI_TIMEOUT) -> Reply:
    """Run ``git http-backend`` as a CGI for ``request`` on the repos under ``project_root``; 504 on a timeout."""
    parts = urlsplit(request.path)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "GIT_PROJECT_ROOT": str(project_root),
        "GIT_HTTP_EXPORT_ALL": "1",
        "GIT_CONFIG_NOSYSTEM": "1",
        "HOME": str(project_root),
        "REQUEST_METHOD": request.method,
        "PATH_INFO": unquote(parts.path),
        "QUERY_STRING": parts.query,
        "CONTENT_TYPE": request.header("Content-Type"),
        "CONTENT_LENGTH": str(len(request.body)),
        "REMOTE_ADDR": "127.0.0.1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "GATEWAY_INTERFACE": "CGI/1.1",
    }
    for header, var in (("Content-Encoding", "HTTP_CONTENT_ENCODING"), ("Git-Protocol", "GIT_PROTOCOL")):
        if request.header(header):
            env[var] = request.header(header)
    try:
        out = subprocess.run(
            ["git", "http-backend"], input=request.body, env=env, capture_output=True, timeout=timeout
        ).stdout
    except subprocess.TimeoutExpired:
        return Reply(504, [("Content-Type", "text/plain")], b"git http-backend timed out\n")
    head, sep, payload = out.partition(b"\r\n\r\n")
    if not sep:
        head, sep, payload = out.partition(b"\n\n")
    status, headers = 200, []
    for line in head.decode("latin-1").splitlines():
        key, _, value = line.partition(":")
        if key.lower() == "status":
            status = int(value.strip().split()[0])
        elif key and key.lower() not in ("content-length", "transfer-encoding", "connection"):
            headers.append((key.strip(), value.strip()))
    return Reply(status, headers, payload)


class GitServer:
    def __init__(
        self,
        project_root: Path,
        *,
        latency: float = 0.0,
        bandwidth: float = 0.0,
        max_requests: int = 200_000,
        lifetime: float = 3600.0,
        protocol: str = "HTTP/1.1",
        cgi_timeout: float = CGI_TIMEOUT,
    ) -> None:
        self.project_root = Path(project_root).resolve()
        self.latency = latency
        self.bandwidth = bandwidth
        self.max_requests = max_requests
        self.lifetime = lifetime
        self.protocol = protocol  # HTTP/1.1 keeps connections alive, as GitHub does; HTTP/1.0 closes each one
        self.cgi_timeout = cgi_timeout
        self.requests = 0
        self.bytes_sent = 0
        self.errors = 0
        self.lock = threading.Lock()
        self.stopped = threading.Event()  # set on stop: a hook that waits should wait on it
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self.url = ""

    # -- client side ----------------------------------------------------------------------------------------------

    def git_env(self, prefix: str = "https://github.com/") -> dict[str, str]:
        """Environment variables that send git's ``prefix`` URLs to this server (and nowhere else)."""
        return {
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": f"url.{self.url}.insteadOf",
            "GIT_CONFIG_VALUE_0": prefix,
        }

    # -- hooks ----------------------------------------------------------------------------------------------------

    def before(self, request: Request) -> Reply | None:
        """Answer ``request`` instead of git (a :class:`Reply`, or :data:`DROP`), or None to let git answer."""
        return None

    def after(self, request: Request, reply: Reply) -> Reply:
        """Change git's ``reply`` to ``request`` before it is sent."""
        return reply

    # -- server side ----------------------------------------------------------------------------------------------

    def _count(self) -> bool:
        with self.lock:
            self.requests += 1
            return self.requests <= self.max_requests

    def answer(self, request: Request) -> Reply:
        """The reply to one request: the request budget, the latency, the hooks and git http-backend."""
        if not self._count():
            return Reply(503, [("Content-Type", "text/plain")], b"request budget exhausted\n")
        if self.latency:
            time.sleep(self.latency)
        reply = self.before(request)
        if reply is None:
            reply = self.after(request, http_backend(self.project_root, request, timeout=self.cgi_timeout))
        if reply.status >= 400:
            with self.lock:
                self.errors += 1
        return reply

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = server.protocol
            timeout = 120  # an idle or stuck client connection is dropped

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's API
                self._serve(b"")

            def do_POST(self) -> None:  # noqa: N802 - http.server's API
                self._serve(self._read_body())

            def _read_body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    parts = []
                    while True:  # bounded by the client's body: a 0-size chunk ends it, EOF raises
                        line = self.rfile.readline()
                        if not line:
                            raise ConnectionError("request body cut off")
                        size = int(line.strip().split(b";")[0], 16)
                        if size == 0:
                            self.rfile.readline()
                            return b"".join(parts)
                        parts.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _serve(self, body: bytes) -> None:
                headers = {name.lower(): value for name, value in self.headers.items()}
                request = Request(self.command, self.path, headers, body)
                self._send(server.answer(request))

            def _send(self, reply: Reply) -> None:
                if reply.status == 0:
                    self.close_connection = True
                    return
                try:
                    self.send_response(reply.status)
                    for key, value in reply.headers:
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(reply.payload)))
                    self.end_headers()
                    payload = reply.payload[: len(reply.payload) // 2] if reply.cut else reply.payload
                    start, sent = time.monotonic(), 0
                    for i in range(0, len(payload), _CHUNK):
                        block = payload[i : i + _CHUNK]
                        self.wfile.write(block)
                        sent += len(block)
                        if server.bandwidth:
                            ahead = start + sent / server.bandwidth - time.monotonic()
                            if ahead > 0:
                                time.sleep(ahead)
                    with server.lock:
                        server.bytes_sent += sent
                    if reply.cut:  # then a TCP reset: SO_LINGER 0 makes close() send RST
                        self.wfile.flush()
                        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        self.connection.close()
                        self.close_connection = True
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

        return Handler

    def start(self) -> GitServer:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/"
        serve = threading.Thread(target=self._server.serve_forever, name="git-http", daemon=True)
        watchdog = threading.Thread(target=self._watchdog, name="git-http-watchdog", daemon=True)
        self._threads = [serve, watchdog]
        for t in self._threads:
            t.start()
        return self

    def _watchdog(self) -> None:
        if not self.stopped.wait(self.lifetime):
            self.stop()

    def stop(self) -> None:
        if self.stopped.is_set():
            return
        self.stopped.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> GitServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stats(self) -> dict[str, float | int]:
        return {
            "requests": self.requests,
            "bytes_sent": self.bytes_sent,
            "errors": self.errors,
            "latency_s": self.latency,
            "bandwidth_bytes_per_s": self.bandwidth,
        }
