"""A git smart-HTTP server on 127.0.0.1: ``git http-backend`` (CGI) behind a small threaded Python HTTP server.

Every request waits ``latency`` seconds before it is answered and every response body is paced to at most
``bandwidth`` bytes a second (per response; 0 = unlimited), which is how a far-away GitHub looks to a clone.
The server binds 127.0.0.1 only, answers at most ``max_requests`` requests and shuts itself down after
``lifetime`` seconds, whatever its caller does.

Clones of ``https://github.com/<owner>/<name>`` reach it through git's ``url.<base>.insteadOf``, set by
:meth:`GitServer.git_env` as ``GIT_CONFIG_COUNT``/``GIT_CONFIG_KEY_<n>``/``GIT_CONFIG_VALUE_<n>`` variables, so the
pipeline runs unmodified with ``ingest.allowed_hosts: [github.com]``.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

CGI_TIMEOUT = 300.0  # seconds for one git http-backend run
_CHUNK = 16 * 1024


class GitServer:
    def __init__(
        self,
        project_root: Path,
        *,
        latency: float = 0.0,
        bandwidth: float = 0.0,
        max_requests: int = 200_000,
        lifetime: float = 3600.0,
    ) -> None:
        self.project_root = Path(project_root).resolve()
        self.latency = latency
        self.bandwidth = bandwidth
        self.max_requests = max_requests
        self.lifetime = lifetime
        self.requests = 0
        self.bytes_sent = 0
        self.errors = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._stopped = threading.Event()
        self.url = ""

    # -- client side ----------------------------------------------------------------------------------------------

    def git_env(self, prefix: str = "https://github.com/") -> dict[str, str]:
        """Environment variables that send git's ``prefix`` URLs to this server (and nowhere else)."""
        return {
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": f"url.{self.url}.insteadOf",
            "GIT_CONFIG_VALUE_0": prefix,
        }

    # -- server side ----------------------------------------------------------------------------------------------

    def _count(self) -> bool:
        with self._lock:
            self.requests += 1
            return self.requests <= self.max_requests

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as GitHub
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
                    while True:
                        size = int(self.rfile.readline().strip().split(b";")[0], 16)
                        if size == 0:
                            self.rfile.readline()
                            return b"".join(parts)
                        parts.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _serve(self, body: bytes) -> None:
                if not server._count():
                    self._send(503, [("Content-Type", "text/plain")], b"request budget exhausted\n")
                    return
                if server.latency:
                    time.sleep(server.latency)
                parts = urlsplit(self.path)
                env = {
                    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                    "GIT_PROJECT_ROOT": str(server.project_root),
                    "GIT_HTTP_EXPORT_ALL": "1",
                    "GIT_CONFIG_NOSYSTEM": "1",
                    "HOME": str(server.project_root),
                    "REQUEST_METHOD": self.command,
                    "PATH_INFO": unquote(parts.path),
                    "QUERY_STRING": parts.query,
                    "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                    "CONTENT_LENGTH": str(len(body)),
                    "REMOTE_ADDR": self.client_address[0],
                    "SERVER_PROTOCOL": "HTTP/1.1",
                    "GATEWAY_INTERFACE": "CGI/1.1",
                }
                for header, var in (("Content-Encoding", "HTTP_CONTENT_ENCODING"), ("Git-Protocol", "GIT_PROTOCOL")):
                    if self.headers.get(header):
                        env[var] = self.headers[header]
                try:
                    out = subprocess.run(
                        ["git", "http-backend"], input=body, env=env, capture_output=True, timeout=CGI_TIMEOUT
                    ).stdout
                except subprocess.TimeoutExpired:
                    with server._lock:
                        server.errors += 1
                    self._send(504, [("Content-Type", "text/plain")], b"git http-backend timed out\n")
                    return
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
                if status >= 400:
                    with server._lock:
                        server.errors += 1
                self._send(status, headers, payload)

            def _send(self, status: int, headers: list[tuple[str, str]], payload: bytes) -> None:
                try:
                    self.send_response(status)
                    for key, value in headers:
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    start, sent = time.monotonic(), 0
                    for i in range(0, len(payload), _CHUNK):
                        block = payload[i : i + _CHUNK]
                        self.wfile.write(block)
                        sent += len(block)
                        if server.bandwidth:
                            ahead = start + sent / server.bandwidth - time.monotonic()
                            if ahead > 0:
                                time.sleep(ahead)
                    with server._lock:
                        server.bytes_sent += sent
                except (BrokenPipeError, ConnectionResetError):
                    pass

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
        if not self._stopped.wait(self.lifetime):
            self.stop()

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
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
