"""A git smart-HTTP server on 127.0.0.1 (``git http-backend``) that can misbehave on purpose.

The first path segment (the owner) picks the behaviour: ``hang`` accepts and never answers, ``missing`` is a 404,
``private`` asks for a password, ``reset`` cuts every pack mid-way, ``flaky`` cuts the first two packs of each repo;
any other owner serves the bare repository ``<root>/<owner>/<name>``.

The http-backend plumbing (CGI, request bodies, replies) is ``bench/gitserver.py``'s; this module only adds the
faults, through its ``before``/``after`` hooks.
"""

from __future__ import annotations

import subprocess
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from bench.gitserver import DROP, Reply, Request
from bench.gitserver import GitServer as _BaseGitServer

HANG_S = 120.0  # a 'hang' request is held this long at most (or until the server stops)


class GitServer(_BaseGitServer):
    def __init__(self, root: Path) -> None:
        super().__init__(root, protocol="HTTP/1.0", cgi_timeout=60.0, lifetime=1800.0)
        self.root = root
        self.packs: Counter[str] = Counter()  # pack responses per repo path

    @property
    def base(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        return self.url.rstrip("/")

    def insteadof_env(self) -> dict[str, str]:
        """Env for git: https://github.com/... is served by this server."""
        return {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": f"url.{self.base}/.insteadOf",
                "GIT_CONFIG_VALUE_0": "https://github.com/"}  # fmt: skip

    def before(self, request: Request) -> Reply | None:
        owner = request.owner
        if owner == "hang":
            self.stopped.wait(HANG_S)
            return DROP
        if owner == "missing":
            return Reply(404, [("Content-Type", "text/plain")], b"not found")
        if owner == "private":
            return Reply(401, [("WWW-Authenticate", 'Basic realm="git"')], b"auth required")
        return None

    def after(self, request: Request, reply: Reply) -> Reply:
        if request.method != "POST" or b"PACK" not in reply.payload:  # only the response that carries the pack
            return reply
        with self.lock:
            self.packs[request.repo] += 1
            count = self.packs[request.repo]
        cut = request.owner == "reset" or (request.owner == "flaky" and count <= 2)
        return replace(reply, cut=cut)


@contextmanager
def serve_git(root: Path) -> Iterator[GitServer]:
    git_server = GitServer(root).start()
    try:
        yield git_server
    finally:
        git_server.stop()


def publish_bare(src: Path, root: Path, owner: str, name: str) -> Path:
    """A bare copy of ``src`` served as ``<base>/<owner>/<name>``."""
    dest = root / owner / name
    dest.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(src), str(dest)], check=True)
    return dest
