"""Cloning: the URL policy, and a shallow ``git clone`` with a timeout that kills git's whole process group."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import subprocess
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from xgov_digests import reaper
from xgov_digests.backoff import attempts
from xgov_digests.logs import redact

log = logging.getLogger(__name__)
_SEGMENT_RE = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9._-]{0,99}", re.ASCII)

# Failures that another attempt cannot fix: fail at once instead of retrying.
_PERMANENT = (
    "not found",
    "does not exist",
    "does not appear to be a git repository",
    "authentication failed",
    "could not read username",
    "terminal prompts disabled",
    "access denied",
    "returned error: 401",
    "returned error: 403",
    "returned error: 404",
    "dubious ownership",
)
# git's words (through curl) for a server that gave no complete answer: no connection, DNS, TLS, a cut-off transfer,
# 429 and 5xx. These are retried, and stay transient when every attempt fails. Checked before _BROKEN: a cut-off
# transfer also ends in "early EOF".
_TRANSIENT = (
    "rpc failed",
    "could not resolve",
    "failed to connect",
    "couldn't connect",
    "connection refused",
    "connection reset",
    "timed out",
    "empty reply from server",
    "recv failure",
    "send failure",
    "transfer closed",
    "ssl",
    "tls",
    "certificate",
    "returned error: 429",
    "returned error: 5",
)
# A complete answer holding a broken repository: an incomplete or corrupt pack. Retried (a server may heal), then
# permanent.
_BROKEN = (
    "early eof",
    "index-pack",
    "unexpected disconnect",
    "bytes of body are still expected",
    "bad pack",
    "did not send all necessary objects",
    "protocol error",
    "bad object",
    "remote: fatal",
    "unpack",
)
TRANSIENT, PERMANENT = "transient", "permanent"
_QUOTED_RE = re.compile(r"'[^'\n]*'")


def _git_words(stderr: str) -> str:
    """git's own words, lower-cased, without the URLs and paths it quotes (a repo named "openssl" says nothing)."""
    lines = [ln for ln in stderr.lower().splitlines() if not ln.startswith("cloning into")]
    return _QUOTED_RE.sub("''", "\n".join(lines))


def failure_kind(stderr: str) -> str:
    """``transient`` when git got no complete answer from the server, ``permanent`` when the answer was an error.

    A failure git words in no known way counts as transient: it counts against ``ingest.max_failure_ratio``, which
    errs towards failing a shard (DVC records nothing) rather than recording a network outage as results.
    """
    text = _git_words(stderr)
    if any(p in text for p in _TRANSIENT):
        return TRANSIENT
    if any(p in text for p in _PERMANENT + _BROKEN):
        return PERMANENT
    return TRANSIENT


class CloneError(RuntimeError):
    """The repo could not be cloned; the message is safe to log (credentials redacted).

    ``kind`` is the stats' ``failure_kind``: ``transient`` (no complete answer from the server after the retries)
    or ``permanent`` (the server answered, and the answer was an error).
    """

    def __init__(self, message: str, kind: str = TRANSIENT) -> None:
        super().__init__(message)
        self.kind = kind


class EmptyRepo(CloneError):
    """The repository exists but has no commits."""

    def __init__(self, message: str) -> None:
        super().__init__(message, PERMANENT)


class UrlRejected(CloneError):
    """The URL is not allowed by ``ingest.allowed_hosts`` / ``ingest.allow_file_urls``."""

    def __init__(self, message: str) -> None:
        super().__init__(message, PERMANENT)


def check_url(url: str, allowed_hosts: tuple[str, ...], allow_file_urls: bool = False) -> None:
    """Accept only ``https://<allowed host>/...`` (or ``file://`` when allowed); raise :class:`UrlRejected`."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        if not allow_file_urls:
            raise UrlRejected("file:// URLs are not allowed (set ingest.allow_file_urls: true for local repos)")
        if parts.netloc not in ("", "localhost"):
            raise UrlRejected(f"file:// URL with a host ({parts.netloc!r}) is not allowed")
        return
    if parts.scheme != "https":
        raise UrlRejected(
            f"scheme {parts.scheme or url.split(':', 1)[0]!r} is not allowed: only https:// URLs are cloned"
        )
    if parts.username is not None or parts.password is not None:
        raise UrlRejected("URL carries credentials; feed URLs must not contain user:token@")
    host = (parts.hostname or "").lower()
    if host not in {h.lower() for h in allowed_hosts}:
        raise UrlRejected(f"host {host!r} is not in ingest.allowed_hosts {list(allowed_hosts)}")
    segments = parts.path.strip("/").removesuffix(".git").split("/")
    if len(segments) != 2 or not all(_SEGMENT_RE.fullmatch(seg) for seg in segments) or parts.query or parts.fragment:
        raise UrlRejected("URL must be https://<host>/<owner>/<name> (plain names, no query or fragment)")


def git_env() -> dict[str, str]:
    """Environment for git: never prompt, never smudge LFS, English messages."""
    env = dict(os.environ)
    env.update(
        GIT_TERMINAL_PROMPT="0",
        GIT_ASKPASS="true",
        SSH_ASKPASS="true",
        GIT_LFS_SKIP_SMUDGE="1",
        LC_ALL="C.UTF-8",
    )
    return env


_LIVE: set[int] = set()  # process groups of the git commands running now
_LIVE_LOCK = threading.Lock()
_STOPPING = threading.Event()


def kill_running() -> int:
    """The shard is stopping: start no more git commands and kill every git process group still running."""
    with _LIVE_LOCK:
        _STOPPING.set()
        groups = list(_LIVE)
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    return len(groups)


def _run(cmd: list[str], timeout: float, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` in its own session; on timeout kill the whole process group (git forks helpers). Every git
    command runs with the machine's filter drivers switched off: a checkout, a fetch or a sparse checkout alike."""
    if cmd[:1] == ["git"]:
        cmd = ["git", *_no_filter_drivers(), *cmd[1:]]
    with _LIVE_LOCK:
        if _STOPPING.is_set():
            raise CloneError("not started: the shard is stopping")
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=git_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            start_new_session=True,
        )
        _LIVE.add(proc.pid)
        reaper.watch(proc.pid)  # killed with its helpers if the shard dies, even by SIGKILL
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise CloneError(f"timed out after {timeout:g}s (git process group killed)") from None
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    finally:
        with _LIVE_LOCK:
            _LIVE.discard(proc.pid)
        reaper.forget(proc.pid)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _last_line(stderr: str) -> str:
    """git's own reason: the last ``fatal:``/``error:`` line (its advice lines come after it), else the last line."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    reasons = [ln for ln in lines if ln.startswith(("fatal:", "error:"))]
    return redact((reasons or lines or ["no output"])[-1])


@lru_cache(maxsize=1)
def _no_filter_drivers() -> tuple[str, ...]:
    """``-c`` options that switch off every filter driver configured on this machine (system, global or
    environment config): a repository's ``.gitattributes`` may name one, and a clone must run no program of its
    choosing. Checked once per process."""
    found = subprocess.run(
        ["git", "config", "--name-only", "--get-regexp", r"^filter\..*\.(smudge|clean|process|required)$"],
        env=git_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace", check=False,
    )  # fmt: skip
    drivers = sorted({name.rsplit(".", 1)[0] for name in found.stdout.split()})
    return tuple(
        opt for d in drivers for opt in ("-c", f"{d}.smudge=", "-c", f"{d}.process=", "-c", f"{d}.required=false")
    )


def _remote_has_branches(dest: Path, timeout: float) -> list[str]:
    """The branches the clone's remote has (after a clone that checked out nothing)."""
    found = _run(["git", "ls-remote", "--heads", "origin"], timeout, cwd=dest)
    if found.returncode != 0:
        return []
    return [ln.split("refs/heads/", 1)[1] for ln in found.stdout.splitlines() if "refs/heads/" in ln]


@dataclass(frozen=True)
class Checkout:
    path: Path
    commit: str


def clone(
    url: str, dest: Path, *, timeout: float = 300.0, retries: int = 2, backoff: float = 1.0,
    extra_args: tuple[str, ...] = (),
) -> Checkout:  # fmt: skip
    """Shallow-clone ``url`` into ``dest`` (which must not exist) and return its HEAD commit.

    Transient failures are retried ``retries`` times; a missing or private repo fails at once. ``extra_args`` go to
    ``git clone`` (the partial clone's filter: xgov_digests/clone_strategy.py).
    """
    cmd = [
        "git", "-c", "credential.helper=", "-c", "core.symlinks=true", "-c", "core.longpaths=true",
        "clone", "--quiet", "--depth", "1", "--single-branch", "--no-tags", *extra_args, "--", url, str(dest),
    ]  # fmt: skip
    error, kind = "", TRANSIENT
    for attempt in attempts(retries, backoff):
        result = _run(cmd, timeout)  # a timeout raises: a hanging server is not retried
        if result.returncode == 0:
            break
        if _STOPPING.is_set():
            raise CloneError("git clone killed: the shard is stopping")
        error, kind = _last_line(result.stderr), failure_kind(result.stderr)
        if any(p in _git_words(result.stderr) for p in _PERMANENT):
            raise CloneError(f"git clone failed: {error}", PERMANENT)
        if attempt < retries:
            log.warning("clone failed, retrying", extra={"url": redact(url), "attempt": attempt + 1, "error": error})
        shutil.rmtree(dest, ignore_errors=True)
    else:
        raise CloneError(f"git clone failed after {retries + 1} attempts: {error}", kind)
    head = _run(["git", "rev-parse", "--verify", "--quiet", "HEAD"], timeout, cwd=dest)
    if head.returncode != 0:
        branches = _remote_has_branches(dest, timeout)
        if branches:
            raise CloneError(
                "the repository's HEAD names a branch that does not exist, so nothing was checked out; "
                f"it has commits on {', '.join(sorted(branches)[:5])}: its owner must fix the default branch",
                PERMANENT,
            )
        raise EmptyRepo("repository has no commits")
    return Checkout(dest, head.stdout.strip())
