"""A recording, fault-injecting HTTP proxy in front of moto's S3 server (127.0.0.1 only)."""

from __future__ import annotations

import http.client
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection", "upgrade"}


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # /bucket/key, unquoted
    query: str


class S3Proxy:
    """Forwards every request to moto and records it. ``fail`` paths answer 500 to PUTs; with ``hold_after`` set,
    PUTs beyond that many are held unanswered (and never forwarded) until ``release`` is set."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.lock = threading.Lock()
        self.requests: list[Request] = []
        self.fail: set[str] = set()
        self.hold_after: int | None = None
        self.held = 0
        self.forwarded_puts = 0
        self.release = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                req = Request(self.command, unquote(parts.path), parts.query)
                action = proxy._decide(req)
                if action == "fail":
                    return self._reply(500, {"Content-Type": "application/xml"}, _s3_error("InternalError"))
                if action == "hold":
                    proxy.release.wait(120)
                    return self._reply(503, {"Content-Type": "application/xml"}, _s3_error("SlowDown"))
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP | {"expect"}}
                conn.request(self.command, self.path, body=body if length else None, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                out = {k: v for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP}
                if self.command == "HEAD":
                    out["Content-Length"] = resp.getheader("Content-Length", "0")
                    data = b""
                conn.close()
                if self.command == "PUT":
                    with proxy.lock:
                        proxy.forwarded_puts += 1
                self._reply(resp.status, out, data, head=self.command == "HEAD")

            def _reply(self, status: int, headers: dict[str, str], data: bytes, head: bool = False) -> None:
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    if not head:
                        self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client is gone (killed)
                    self.close_connection = True

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle  # noqa: N815 - http.server's API

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _decide(self, req: Request) -> str:
        with self.lock:
            self.requests.append(req)
            if req.method != "PUT":
                return "forward"
            if req.path in self.fail:
                return "fail"
            if self.hold_after is not None:
                passed = sum(1 for r in self.requests if r.method == "PUT") - self.held - 1
                if passed >= self.hold_after:
                    self.held += 1
                    return "hold"
            return "forward"

    def take(self) -> list[Request]:
        """The requests since the last call."""
        with self.lock:
            out, self.requests = self.requests, []
            self.held = self.forwarded_puts = 0
            return out

    def reset(self) -> None:
        self.release.set()
        with self.lock:
            self.requests, self.fail, self.hold_after, self.held, self.forwarded_puts = [], set(), None, 0, 0
        self.release = threading.Event()

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()


def _s3_error(code: str) -> bytes:
    return f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>x</Message></Error>".encode()
