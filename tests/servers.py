"""Real HTTP servers on 127.0.0.1 for the tests: a feed server with scripted answers."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    delay: float = 0.0  # seconds before answering (a hanging server)
    cut_after: int | None = None  # send only this many bytes of body, then close (a cut-off body)


@dataclass
class FeedServer:
    """Serves ``body`` at every path; ``script`` answers the first requests in order."""

    body: bytes = b"[]"
    script: list[Answer] = field(default_factory=list)
    requests: int = 0
    url: str = ""

    def next_answer(self) -> Answer:
        self.requests += 1
        return self.script.pop(0) if self.script else Answer(200, self.body)


@contextmanager
def serve_feed(feed: FeedServer) -> Iterator[FeedServer]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's API
            answer = feed.next_answer()
            if answer.delay:
                time.sleep(answer.delay)
            body = answer.body or (feed.body if answer.status == 200 else b"error")
            self.send_response(answer.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                self.wfile.write(body[: answer.cut_after] if answer.cut_after is not None else body)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    feed.url = f"http://127.0.0.1:{server.server_address[1]}/repos.json"
    try:
        yield feed
    finally:
        server.shutdown()
        server.server_close()
