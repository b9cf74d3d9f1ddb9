"""A time budget per digest (``ingest.digest_timeout``): each digest runs in a child process that is killed at the
deadline, since a regular expression that backtracks for days never returns to the interpreter (no signal or
thread can stop it there).

The children are forked from one ``multiprocessing`` fork server that has imported the digest code, so a digest
costs a fork only the first time a worker is needed and after a worker was killed, and two pickled messages each
time. A child dies with the shard: with the fork server gone (the shard exited or was killed, even by SIGKILL) the
kernel sends it SIGKILL (``PR_SET_PDEATHSIG``). The children inherit the environment, so ``PYTHONHASHSEED``
(pinned by the shard CLI) is theirs too.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing
import os
import signal
import threading
import time
import traceback
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from xgov_digests.digest.build import GITINGEST_LIMITS, Digest, make_digest
from xgov_digests.digest.format import Header
from xgov_digests.digest.walk import Limits

_PR_SET_PDEATHSIG = 1
_POLL_S = 0.2  # how often a waiting digest checks whether the pool is closing


class DigestTimeout(RuntimeError):
    """The digest ran past ``ingest.digest_timeout``; its process was killed."""


class DigestStopped(RuntimeError):
    """The digest's process died, or the pool closed (the shard is stopping), before it answered."""


class DigestBug(RuntimeError):
    """The digest code raised; the message carries the child's traceback."""


def _die_with_parent() -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _serve(conn: Connection) -> None:
    """A worker: digest each job received on ``conn`` and send back ``("ok", Digest)`` or ``("error", text)``.

    It ends when the shard closes ``conn`` or dies (end of file), or when the fork server dies (SIGKILL). The fork
    server exits once no process holds its "shard alive" pipe, which multiprocessing hands to every child as well:
    the worker closes every inherited descriptor but ``conn`` and stdio, so only the shard holds it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the shard decides
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    keep = conn.fileno()
    os.closerange(3, keep)
    os.closerange(keep + 1, os.sysconf("SC_OPEN_MAX"))
    _die_with_parent()
    while True:
        try:
            checkout, header, kwargs = conn.recv()
        except (EOFError, OSError):
            return
        try:
            reply: tuple[str, Any] = ("ok", make_digest(checkout, header, **kwargs))
        except Exception as exc:  # noqa: BLE001 - sent to the shard, which treats it as a bug
            reply = ("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
        conn.send(reply)


class _Worker:
    def __init__(self, process: BaseProcess, conn: Connection) -> None:
        self.process = process
        self.conn = conn

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)
        self.conn.close()


class DigestPool:
    """Up to ``size`` digests at once, each in a child process killed after ``timeout`` seconds."""

    def __init__(self, size: int, timeout: float) -> None:
        self.timeout = timeout
        self._ctx = multiprocessing.get_context("forkserver")
        self._ctx.set_forkserver_preload(["xgov_digests.digest.budget"])
        self._slots = threading.BoundedSemaphore(max(1, size))
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._all: set[_Worker] = set()
        self._closed = False

    def __enter__(self) -> DigestPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _take(self) -> _Worker:
        with self._lock:
            if self._closed:
                raise DigestStopped("digest not started: the shard is stopping")
            if self._idle:
                return self._idle.pop()
            ours, theirs = self._ctx.Pipe()
            process = self._ctx.Process(target=_serve, args=(theirs,), daemon=True, name="digest")
            process.start()
            theirs.close()
            worker = _Worker(process, ours)
            self._all.add(worker)
            return worker

    def _drop(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            self._all.discard(worker)

    def digest(
        self, checkout: Path, header: Header, *, max_file_size: int, max_summary_bytes: int,
        limits: Limits = GITINGEST_LIMITS,
    ) -> Digest:  # fmt: skip
        """:func:`make_digest` in a child process; :class:`DigestTimeout` after ``timeout`` seconds."""
        kwargs = {"max_file_size": max_file_size, "max_summary_bytes": max_summary_bytes, "limits": limits}
        with self._slots:
            worker = self._take()
            deadline = time.monotonic() + self.timeout
            try:
                worker.conn.send((checkout, header, kwargs))
                while not worker.conn.poll(max(0.0, min(_POLL_S, deadline - time.monotonic()))):
                    if self._closed:
                        raise DigestStopped("digest stopped: the shard is stopping")
                    if time.monotonic() >= deadline:
                        raise DigestTimeout(f"digest timed out after {self.timeout:g} s")
                status, value = worker.conn.recv()
            except (EOFError, OSError) as exc:
                self._drop(worker)
                raise DigestStopped(f"digest process died ({type(exc).__name__}, exit code "
                                    f"{worker.process.exitcode})") from None  # fmt: skip
            except BaseException:
                self._drop(worker)
                raise
            with self._lock:
                if self._closed:
                    self._all.discard(worker)
                    worker.kill()
                else:
                    self._idle.append(worker)
        if status != "ok":
            raise DigestBug(value)
        return value

    def close(self) -> None:
        """Kill every worker (a running digest ends as :class:`DigestStopped`); no new digest starts."""
        with self._lock:
            self._closed = True
            workers = list(self._all)
            self._all.clear()
            self._idle.clear()
        for worker in workers:
            worker.kill()

