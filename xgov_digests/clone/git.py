"""Cloning: the URL policy, and a shallow ``git clone`` with a timeout that kills git's whole process group."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import selectors
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from xgov_digests.core.backoff import attempts
from xgov_digests.core.diskfull import says_disk_full
from xgov_digests.core.logs import redact
from xgov_digests.core.params import CloneSettings
from xgov_digests.core.watchdog import Watchdog

log = logging.getLogger(__name__)
# kills a clone's process group with its helpers if the shard dies, even by SIGKILL (core.watchdog)
REAPER = Watchdog()
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


def git_words(stderr: str) -> str:
    """git's own words, lower-cased, without the URLs and paths it quotes (a repo named "openssl" says nothing)."""
    lines = [ln for ln in stderr.lower().splitlines() if not ln.startswith("cloning into")]
    return _QUOTED_RE.sub("''", "\n".join(lines))


def failure_kind(stderr: str) -> str:
    """``transient`` when git got no complete answer from the server, ``permanent`` when the answer was an error.

    A failure git words in no known way counts as transient: it counts against ``ingest.max_failure_ratio``, which
    errs towards failing a shard (DVC records nothing) rather than recording a network outage as results.
    """
    text = git_words(stderr)
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


def check_url(url: str, allowed_hosts: tuple[str, ...], allow_file_urls: bool) -> None:
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


# The user's git config that a clone keeps: how to reach a host (URL rewriting, proxies, TLS, HTTP options),
# credentials, which protocols are allowed, and which local repositories owned by others may be read (file://).
# Nothing else of it applies (see PINNED).
_CARRIED_CONFIG = re.compile(
    r"url\..+\.insteadof|http\..+|credential\..+|protocol\.(.+\.)?allow|safe\.directory", re.DOTALL
)
# Environment variables of git's that only reach the network (curl's TLS and HTTP options, the protocol allow
# list). Every other GIT_* variable is dropped: each names another repository, index, object store or config, a
# program to run (hooks' templates, ssh, an exec path), a trace file, or changes how paths and objects are read.
_CARRIED_VARS = re.compile(r"GIT_(SSL|HTTP|PROXY_SSL)_[A-Z0-9_]+|GIT_ALLOW_PROTOCOL")
# Settings pinned on every git command (after the carried config, so they win): those that change which objects
# are fetched, which bytes a checkout writes and where, how paths are printed, or that run a program. With the
# user's own config files shut out these are git's defaults (on Linux); pinned all the same, as -c options.
PINNED: tuple[tuple[str, str], ...] = (
    ("core.autocrlf", "false"),
    ("core.eol", "lf"),
    ("core.safecrlf", "false"),
    ("core.quotePath", "true"),  # paths are read with -z (never quoted) in any case
    ("core.attributesFile", "/dev/null"),
    ("core.ignoreCase", "false"),
    ("core.precomposeUnicode", "false"),
    ("core.protectNTFS", "true"),
    ("core.protectHFS", "false"),
    ("core.symlinks", "true"),
    ("core.fileMode", "true"),
    ("core.longpaths", "true"),
    ("core.hooksPath", "/dev/null"),
    ("core.fsmonitor", "false"),
    ("core.sparseCheckout", "false"),
    ("core.sparseCheckoutCone", "false"),
    ("core.bare", "false"),
    ("index.sparse", "false"),
    ("init.templateDir", ""),
    ("checkout.workers", "1"),
    ("submodule.recurse", "false"),
    ("fetch.recurseSubmodules", "false"),
    ("fetch.writeCommitGraph", "false"),
    ("fetch.unpackLimit", "1"),  # every download stays a pack as it arrives: its size on disk is what came in
    ("transfer.unpackLimit", "1"),
    ("transfer.fsckObjects", "false"),
    ("protocol.ext.allow", "never"),
    ("clone.defaultRemoteName", "origin"),
    ("clone.rejectShallow", "false"),
    ("clone.filterSubmodules", "false"),
    ("maintenance.auto", "false"),
    ("gc.auto", "0"),
    ("color.ui", "false"),
)
_PINNED_ARGS = tuple(arg for key, value in PINNED for arg in ("-c", f"{key}={value}"))


def _base_env() -> dict[str, str]:
    """The process's environment without git's own variables (except the network ones)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("GIT_") or _CARRIED_VARS.fullmatch(k)}


def carried_config() -> tuple[tuple[str, str], ...]:
    """The user's git config that clones keep (system, global and ``GIT_CONFIG_COUNT``/``git -c`` entries, in
    git's order), read once per process, and again when the variables or files that hold it change."""
    where = tuple(
        sorted(
            (k, v)
            for k, v in os.environ.items()
            if k.startswith("GIT_CONFIG") or k in ("HOME", "XDG_CONFIG_HOME", "PATH")
        )
    )
    return _read_carried_config(where, tuple(_stamp(f) for f in _config_files()))


def _config_files() -> list[str]:
    """The config files git reads outside a repository (their includes aside)."""
    home, xdg = os.environ.get("HOME", ""), os.environ.get("XDG_CONFIG_HOME", "")
    return [
        os.environ.get("GIT_CONFIG_SYSTEM", "/etc/gitconfig"),
        os.environ.get("GIT_CONFIG_GLOBAL", f"{home}/.gitconfig"),
        f"{xdg or home + '/.config'}/git/config",
    ]


def _stamp(path: str) -> tuple[float, int]:
    try:
        st = os.stat(path)
    except OSError:
        return (0.0, -1)
    return (st.st_mtime, st.st_size)


@lru_cache(maxsize=4)
def _read_carried_config(where: tuple[tuple[str, str], ...], stamps: object) -> tuple[tuple[str, str], ...]:
    """:func:`carried_config` for the environment ``where``, read outside any repository."""
    env = {**_base_env(), **dict(where), "GIT_CEILING_DIRECTORIES": "/", "LC_ALL": "C.UTF-8"}
    env.pop("GIT_CONFIG", None)  # names a file for `git config` to write: not the user's config
    found = subprocess.run(
        ["git", "config", "-z", "--includes", "--show-scope", "--get-regexp", "."],
        cwd="/",
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
    )
    fields = found.stdout.decode("utf-8", "surrogateescape").split("\0")
    out = []
    for scope, item in zip(fields[0::2], fields[1::2], strict=False):
        key, _, value = item.partition("\n")
        if scope in ("system", "global", "command") and _CARRIED_CONFIG.fullmatch(key):
            out.append((key, value))
    return tuple(out)


def git_env() -> dict[str, str]:
    """A clean environment for git: no inherited repository, index, object store, config files or trace; the
    user's carried config (:func:`carried_config`) as ``GIT_CONFIG_COUNT`` entries; never prompt, never smudge LFS,
    no system attributes file, English messages."""
    env = _base_env()
    carried = carried_config()
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL="/dev/null",
        GIT_ATTR_NOSYSTEM="1",
        GIT_NO_REPLACE_OBJECTS="1",
        GIT_TERMINAL_PROMPT="0",
        GIT_ASKPASS="true",
        SSH_ASKPASS="true",
        GIT_LFS_SKIP_SMUDGE="1",
        LC_ALL="C.UTF-8",
        GIT_CONFIG_COUNT=str(len(carried)),
    )
    for i, (key, value) in enumerate(carried):
        env[f"GIT_CONFIG_KEY_{i}"] = key
        env[f"GIT_CONFIG_VALUE_{i}"] = value
    return env


def git_command(*args: str, repo: Path | None = None) -> list[str]:
    """``git`` with the pinned settings, for the repository ``repo`` named explicitly (never found by searching
    from the working directory), then ``args``."""
    where = ("--git-dir", str(repo / ".git"), "--work-tree", str(repo)) if repo is not None else ()
    return ["git", *_PINNED_ARGS, *where, *args]


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


def stopping() -> bool:
    """Has :func:`kill_running` been called (the shard is stopping)?"""
    return _STOPPING.is_set()


@dataclass
class GitResult:
    """A finished git command: ``stdout`` as bytes (paths are bytes), ``stderr`` as text. ``cut`` is True when
    the command was stopped at ``max_records`` records of output."""

    returncode: int
    stdout: bytes
    stderr: str
    cut: bool = False
    over: bool = False  # stopped because the repository's packs passed ``max_bytes``


def _packs(repo: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(repo / ".git" / "objects" / "pack") as it:
            return list(it)
    except (FileNotFoundError, NotADirectoryError):
        return []


def pack_bytes(repo: Path) -> int:
    """Bytes of ``repo``'s packs, finished and still arriving: what its clone and fetches have downloaded."""
    total = 0
    for entry in _packs(repo):
        with contextlib.suppress(FileNotFoundError):
            total += entry.stat(follow_symlinks=False).st_size
    return total


def sweep_partial_packs(repo: Path) -> None:
    """Remove what a killed download left: packs and indexes still being written."""
    for entry in _packs(repo):
        if entry.name.startswith("tmp_"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)


def run_git(
    args: list[str] | tuple[str, ...],
    timeout: float,
    *,
    repo: Path | None = None,
    cwd: Path | None = None,
    max_records: int | None = None,
    stdin: bytes = b"",
    watch: Path | None = None,
    max_bytes: int | None = None,
) -> GitResult:
    """Run ``git <pinned settings> args`` (for ``repo``, when given) in its own session with :func:`git_env`; on
    timeout kill the whole process group (git forks helpers). With ``max_records``, the command is killed once its
    output holds more NUL-terminated records than that (``cut``): memory stays bounded whatever the tree holds.
    With ``max_bytes``, it is killed once the packs of the repository ``watch`` (default ``repo``) hold more bytes
    than that (``over``), checked as often as :func:`watch_interval` says: a download stops near the limit, whatever
    the server sends."""
    cmd = git_command(*args, repo=repo)
    with _LIVE_LOCK:
        if _STOPPING.is_set():
            raise CloneError("not started: the shard is stopping")
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=git_env(),
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        _LIVE.add(proc.pid)
        REAPER.watch(proc.pid)  # killed with its helpers if the shard dies, even by SIGKILL
    watched = (watch or repo) if max_bytes is not None else None
    try:
        out, err, cut, over = _collect(proc, time.monotonic() + timeout, max_records, stdin, watched, max_bytes)
    except subprocess.TimeoutExpired:
        raise CloneError(f"timed out after {timeout:g}s (git process group killed)") from None
    finally:
        with contextlib.suppress(ProcessLookupError):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        with _LIVE_LOCK:
            _LIVE.discard(proc.pid)
        REAPER.forget(proc.pid)
    return GitResult(proc.returncode, out, err.decode("utf-8", "replace"), cut, over)


WATCH_MIN_S, WATCH_MAX_S = 0.02, 0.5
FAST_LINK = 1 << 30  # bytes a second: faster than a download reaches a clone here (loopback included)


def watch_interval(room: int) -> float:
    """Seconds until the next look at a download that may take ``room`` more bytes before its limit: the time a
    download at :data:`FAST_LINK` needs to fill the room, between 20 ms and 0.5 s. Near the limit a download is
    watched fifty times a second, so it passes the limit by no more than at that rate; far from it (the usual case:
    gigabytes of room) twice a second, since with up to 16 clones in each of 10 shards, fifty looks a second at each
    cost about a twentieth of the run's CPU."""
    return min(WATCH_MAX_S, max(WATCH_MIN_S, room / FAST_LINK))


def _collect(
    proc: subprocess.Popen[bytes],
    deadline: float,
    max_records: int | None,
    stdin: bytes,
    watched: Path | None = None,
    max_bytes: int | None = None,
) -> tuple[bytes, bytes, bool, bool]:
    """Read ``proc``'s output until it ends, the deadline passes (TimeoutExpired), ``max_records`` is passed (cut)
    or the packs of ``watched`` pass ``max_bytes`` (over)."""
    assert proc.stdout is not None and proc.stderr is not None
    chunks: dict[int, list[bytes]] = {proc.stdout.fileno(): [], proc.stderr.fileno(): []}
    out_fd, records = proc.stdout.fileno(), 0
    tick, next_look = 1.0, 0.0

    def ended(cut: bool, over: bool) -> tuple[bytes, bytes, bool, bool]:
        return b"".join(chunks[out_fd]), b"".join(chunks[proc.stderr.fileno()]), cut, over  # type: ignore[union-attr]

    pending = memoryview(stdin)
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        sel.register(proc.stderr, selectors.EVENT_READ)
        if stdin:  # written as git reads it, in this loop: no thread a command
            assert proc.stdin is not None
            os.set_blocking(proc.stdin.fileno(), False)
            sel.register(proc.stdin, selectors.EVENT_WRITE)
        while sel.get_map():
            now = time.monotonic()
            left = deadline - now
            if left <= 0:
                os.killpg(proc.pid, signal.SIGKILL)
                raise subprocess.TimeoutExpired(proc.args, 0)
            # the packs are looked at on the watch's own clock, not again on every read of git's output (which
            # made about half the listings of a shard's git commands)
            if watched is not None and max_bytes is not None and now >= next_look:
                packs = pack_bytes(watched)
                if packs > max_bytes:
                    os.killpg(proc.pid, signal.SIGKILL)
                    return ended(False, True)
                tick = watch_interval(max_bytes - packs)
                next_look = now + tick
            wait = min(left, tick if watched is None or max_bytes is None else max(0.0, next_look - now))
            for key, _ in sel.select(timeout=wait):
                if proc.stdin is not None and key.fileobj is proc.stdin:
                    try:
                        pending = pending[os.write(key.fd, pending[: 1 << 16]) :]
                    except BlockingIOError:
                        continue
                    except OSError:  # git exited without reading it all
                        pending = pending[:0]
                    if not pending:
                        sel.unregister(proc.stdin)
                        with contextlib.suppress(OSError):
                            proc.stdin.close()
                    continue
                data = os.read(key.fd, 1 << 16)
                if not data:
                    sel.unregister(key.fileobj)
                    continue
                chunks[key.fd].append(data)
                if key.fd == out_fd and max_records is not None:
                    records += data.count(b"\0")
                    if records > max_records:
                        os.killpg(proc.pid, signal.SIGKILL)
                        return ended(True, False)
    if watched is not None and max_bytes is not None and proc.wait() == 0 and pack_bytes(watched) > max_bytes:
        return ended(False, True)  # finished between two looks, over the limit all the same
    return ended(False, False)


def _pkt(line: str) -> bytes:
    data = line.encode()
    return b"%04x" % (len(data) + 4) + data


def effective_url(url: str) -> str:
    """``url`` after the carried ``url.<base>.insteadOf`` rules, as git rewrites it (the longest prefix wins)."""
    best, base = "", ""
    for key, value in carried_config():
        if key.startswith("url.") and key.endswith(".insteadof") and url.startswith(value) and len(value) > len(best):
            best, base = value, key[4 : -len(".insteadof")]
    return base + url[len(best) :] if best else url


_NO_OBJECT_INFO: set[str] = set()  # hosts that refused object-info: not asked again by this process


def object_sizes(url: str, oids: list[str], timeout: float) -> dict[str, int] | None:
    """The sizes of ``oids`` from the server's protocol v2 ``object-info`` command, one HTTP request, nothing
    downloaded; None when the server does not answer it (GitHub does not advertise it; git's own upload-pack
    answered it by default from 2.31 until 2.44) or anything fails: the caller then fetches the blobs for their
    sizes. Only plain http(s) without credentials (the carried ``insteadOf`` rules apply). A host that refuses it
    is not asked again by this process (a round trip a repo saved on GitHub)."""
    import urllib.error
    import urllib.request

    target = effective_url(url).rstrip("/")
    host = urlsplit(target).netloc
    if not oids or not target.startswith(("http://", "https://")) or "@" in host or host in _NO_OBJECT_INFO:
        return None
    body = b"".join(
        [_pkt("command=object-info\n"), b"0001", _pkt("size\n"), *(_pkt(f"oid {oid}\n") for oid in oids), b"0000"]
    )
    request = urllib.request.Request(
        f"{target}/git-upload-pack",
        data=body,
        method="POST",
        headers={
            "Git-Protocol": "version=2",
            "Content-Type": "application/x-git-upload-pack-request",
            "Accept": "application/x-git-upload-pack-result",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:  # noqa: S310 - http(s) only, checked above
            data = reply.read(len(oids) * 64 + 4096)
    except urllib.error.HTTPError as exc:  # the server answered, with an error: it does not serve object-info
        if exc.code < 500 and exc.code != 429:  # (a 5xx or 429 may pass: asked again next time)
            _NO_OBJECT_INFO.add(host)
        return None
    except (OSError, ValueError):
        return None
    if data[4:8] == b"ERR ":  # an error line in git's protocol: the command is not served here
        _NO_OBJECT_INFO.add(host)
        return None
    sizes: dict[str, int] = {}
    pos = 0
    while pos + 4 <= len(data):
        try:
            length = int(data[pos : pos + 4], 16)
        except ValueError:
            return None
        if length < 4:
            pos += 4
            continue
        fields = data[pos + 4 : pos + length].decode("ascii", "replace").split()
        pos += length
        if len(fields) == 2 and fields[1].isdigit():
            sizes[fields[0]] = int(fields[1])
    if set(sizes) != set(oids):  # an answer, but not this one: do not ask this host again
        _NO_OBJECT_INFO.add(host)
        return None
    return sizes


def too_large(max_bytes: int) -> str:
    """Why a repo failed that would take more than ``max_bytes`` under TMPDIR."""
    return (
        f"the repository takes more than {max_bytes} bytes to download and check out (ingest.max_repo_bytes): "
        "stopped there, not digested"
    )


def last_line(stderr: str) -> str:
    """git's own reason: the last ``fatal:``/``error:`` line (its advice lines come after it), else the last line.
    A line saying the disk is full wins: git's last words then are often a consequence ("could not set core.x")."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    reasons = [ln for ln in lines if says_disk_full(ln)] or [ln for ln in lines if ln.startswith(("fatal:", "error:"))]
    return redact((reasons or lines or ["no output"])[-1])


def _remote_has_branches(dest: Path, timeout: float) -> list[str]:
    """The branches the clone's remote has (after a clone that checked out nothing)."""
    found = run_git(["ls-remote", "--heads", "origin"], timeout, repo=dest)
    if found.returncode != 0:
        return []
    lines = found.stdout.decode("utf-8", "replace").splitlines()
    return [ln.split("refs/heads/", 1)[1] for ln in lines if "refs/heads/" in ln]


@dataclass(frozen=True)
class Checkout:
    path: Path
    commit: str
    tree: str = ""  # HEAD's tree
    unfiltered: bool = False  # git said the server ignored the clone's filter (it sent every blob)


def clone(url: str, dest: Path, settings: CloneSettings, extra_args: tuple[str, ...] = ()) -> Checkout:
    """Shallow-clone ``url`` into ``dest`` (which must not exist) and return its HEAD commit.

    Transient failures are retried ``settings.retries`` times; a missing or private repo fails at once; a download
    of more than ``settings.max_repo_bytes`` is stopped there and fails at once. ``extra_args`` go to ``git clone``
    (the partial clone's filter: xgov_digests/clone/strategy.py).
    """
    timeout, retries, max_bytes = settings.clone_timeout, settings.retries, settings.max_repo_bytes
    args = [
        "clone",
        "--quiet",
        "--template=",
        "--origin",
        "origin",
        "--depth",
        "1",
        "--single-branch",
        "--no-tags",
        "--no-recurse-submodules",
        *extra_args,
        "--",
        url,
        str(dest),
    ]
    error, kind = "", TRANSIENT
    for attempt in attempts(retries, settings.backoff):
        result = run_git(args, timeout, watch=dest, max_bytes=max_bytes)  # a timeout raises: not retried
        if result.over:
            raise CloneError(too_large(max_bytes), PERMANENT)
        if result.returncode == 0:
            break
        if _STOPPING.is_set():
            raise CloneError("git clone killed: the shard is stopping")
        error, kind = last_line(result.stderr), failure_kind(result.stderr)
        if any(p in git_words(result.stderr) for p in _PERMANENT):
            raise CloneError(f"git clone failed: {error}", PERMANENT)
        if attempt < retries:
            log.warning("clone failed, retrying", extra={"url": redact(url), "attempt": attempt + 1, "error": error})
        shutil.rmtree(dest, ignore_errors=True)
    else:
        raise CloneError(f"git clone failed after {retries + 1} attempts: {error}", kind)
    head = run_git(["rev-parse", "HEAD", "HEAD^{tree}"], timeout, repo=dest)  # one process for both
    names = head.stdout.decode().split()
    if head.returncode != 0 or len(names) != 2:
        branches = _remote_has_branches(dest, timeout)
        if branches:
            raise CloneError(
                "the repository's HEAD names a branch that does not exist, so nothing was checked out; "
                f"it has commits on {', '.join(sorted(branches)[:5])}: its owner must fix the default branch",
                PERMANENT,
            )
        raise EmptyRepo("repository has no commits")
    return Checkout(dest, names[0], names[1], "filtering not recognized by server" in result.stderr)
