"""A git smart-HTTP server on 127.0.0.1 (``git http-backend``) that can misbehave on purpose.

The first path segment (the owner) picks the behaviour: ``hang`` accepts and never answers, ``missing`` is a 404,
``private`` asks for a password, ``reset`` cuts every pack mid-way, ``flaky`` cuts the first two packs of each repo;
any other owner serves the bare repository ``<root>/<owner>/<name>``.
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit


class GitServer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.stop = threading.Event()
        self.packs = Counter()  # pack responses per repo path
        self.base = ""

    def insteadof_env(self) -> dict[str, str]:
        """Env for git: https://github.com/... is served by this server."""
        return {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": f"url.{self.base}/.insteadOf",
                "GIT_CONFIG_VALUE_0": "https://github.com/"}

    def backend(self, handler: BaseHTTPRequestHandler, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        parts = urlsplit(handler.path)
        env = {
            "PATH": os.environ["PATH"], "GIT_PROJECT_ROOT": str(self.root), "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": parts.path, "QUERY_STRING": parts.query, "REQUEST_METHOD": handler.command,
            "CONTENT_TYPE": handler.headers.get("Content-Type", ""), "CONTENT_LENGTH": str(len(body)),
            "GIT_PROTOCOL": handler.headers.get("Git-Protocol", ""), "REMOTE_ADDR": "127.0.0.1",
        }  # fmt: skip
        out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True, timeout=60).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        status, headers = 200, []
        for line in head.decode("latin-1").split("\r\n"):
            key, _, value = line.partition(":")
            if key.lower() == "status":
                status = int(value.strip().split()[0])
            elif key:
                headers.append((key, value.strip()))
        return status, headers, payload


def _handler(server: GitServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, *args: object) -> None:
            pass

        def _reply(self, status: int, headers: list[tuple[str, str]], body: bytes, cut: bool = False) -> None:
            self.send_response(status)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if cut:  # half the pack, then a TCP reset
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
                return
            self.wfile.write(body)

        def _serve(self) -> None:
            owner = self.path.strip("/").split("/")[0]
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if owner == "hang":
                server.stop.wait(120)
                return
            if owner == "missing":
                return self._reply(404, [("Content-Type", "text/plain")], b"not found")
            if owner == "private":
                return self._reply(401, [("WWW-Authenticate", 'Basic realm="git"')], b"auth required")
            status, headers, payload = server.backend(self, body)
            cut = False
            if self.command == "POST" and b"PACK" in payload:  # the response that carries the pack
                repo = "/".join(self.path.strip("/").split("/")[:2])
                server.packs[repo] += 1
                cut = owner == "reset" or (owner == "flaky" and server.packs[repo] <= 2)
            self._reply(status, headers, payload, cut)

        do_GET = do_POST = _serve  # noqa: N815 - http.server's API

    return Handler


@contextmanager
def serve_git(root: Path) -> Iterator[GitServer]:
    git_server = GitServer(root)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(git_server))
    httpd.daemon_threads = True
    git_server.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield git_server
    finally:
        git_server.stop.set()
        httpd.shutdown()
        httpd.server_close()


def publish_bare(src: Path, root: Path, owner: str, name: str) -> Path:
    """A bare copy of ``src`` served as ``<base>/<owner>/<name>``."""
    dest = root / owner / name
    dest.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(src), str(dest)], check=True)
    return dest
