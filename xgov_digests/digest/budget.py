"""A time budget per digest (``ingest.digest_timeout``): each digest runs in a child process that is killed at the
deadline, since a regular expression that backtracks for days never returns to the interpreter (no signal or
thread can stop it there).

The children are forked from one ``multiprocessing`` fork server that has imported the digest code (the shard
process itself does not), so a digest costs a fork only the first time a worker is needed and after a worker was
killed, and two pickled messages each time. A child dies with the shard: with the fork server gone (the shard exited
or was killed, even by SIGKILL) the kernel sends it SIGKILL (``PR_SET_PDEATHSIG``). The children inherit the
environment, so ``PYTHONHASHSEED`` (pinned by the shard CLI) is theirs too.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import fcntl
import multiprocessing
import os
import shutil
import signal
import tempfile
import threading
import time
import traceback
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xgov_digests.digest.build import Digest, make_digest
from xgov_digests.digest.errors import DigestBug, DigestStopped, DigestTimeout
from xgov_digests.digest.format import Header
from xgov_digests.digest.rules import Limits

if TYPE_CHECKING:
    from xgov_digests.core.params import DigestSettings

_PR_SET_PDEATHSIG = 1
_POLL_S = 0.2  # how often a waiting digest checks whether the pool is closing
_SHORT_TMPDIR = 60  # TMPDIR + "/pymp-xxxxxxxx/listener-xxxxxxxx" must stay under 108 bytes
_PIPE_BYTES = 1 << 20  # Linux's default /proc/sys/fs/pipe-max-size: what an unprivileged process may ask for


def _die_with_parent() -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _close_all_but(*keep: int) -> None:
    low = 3
    for fd in sorted(keep):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, os.sysconf("SC_OPEN_MAX"))


def _grow(conn: Connection) -> None:
    """A pipe that holds a whole capped digest: the worker writes its answer in one go, the shard reads it in one."""
    with contextlib.suppress(OSError, AttributeError):
        fcntl.fcntl(conn.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_BYTES)


def _serve(jobs: Connection, answers: Connection) -> None:
    """A worker: digest each job received on ``jobs``; answer ``("ok", Digest)`` or ``("error", text)``.

    It ends when the shard closes ``jobs`` or dies (end of file), or when the fork server dies (SIGKILL). The fork
    server exits once no process holds its "shard alive" pipe, which multiprocessing hands to every child as well:
    the worker closes every inherited descriptor but its two pipes and stdio, so only the shard holds it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the shard decides
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _close_all_but(jobs.fileno(), answers.fileno())
    _die_with_parent()
    while True:
        try:
            checkout, header, kwargs = jobs.recv()
        except (EOFError, OSError):
            return
        try:
            reply: tuple[str, Any] = ("ok", make_digest(checkout, header, **kwargs))
        except Exception as exc:  # noqa: BLE001 - sent to the shard, which treats it as a bug
            reply = ("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
        answers.send(reply)


class _Worker:
    def __init__(self, process: BaseProcess, jobs: Connection, answers: Connection) -> None:
        self.process = process
        self.jobs = jobs
        self.answers = answers

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)
        self.jobs.close()
        self.answers.close()


def _short_temp_dir() -> None:
    """multiprocessing puts the fork server's socket in a folder under ``TMPDIR``, and an AF_UNIX path holds at most
    107 bytes: under a long ``TMPDIR`` use a folder in /tmp instead (what Python 3.12's multiprocessing does)."""
    from multiprocessing import process, util

    config = process.current_process()._config  # type: ignore[attr-defined]
    if "tempdir" in config or len(tempfile.gettempdir()) <= _SHORT_TMPDIR:
        return
    tempdir = tempfile.mkdtemp(prefix="pymp-", dir="/tmp")
    util.Finalize(None, shutil.rmtree, args=(tempdir, True), exitpriority=-100)
    config["tempdir"] = tempdir


class DigestPool:
    """Up to ``size`` digests at once, each in a child process killed after ``timeout`` seconds."""

    def __init__(self, size: int, timeout: float) -> None:
        self.timeout = timeout
        self._ctx = multiprocessing.get_context("forkserver")
        # the walk and the parts of gitingest it runs are imported once, in the fork server: each child starts with
        # them (the shard itself never imports them, see xgov_digests/digest/rules.py)
        self._ctx.set_forkserver_preload(["xgov_digests.digest.server_preload"])
        self._slots = threading.BoundedSemaphore(max(1, size))
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._all: set[_Worker] = set()
        self._closed = False

    def __enter__(self) -> DigestPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Start the fork server now, in the background: its imports (the walk and gitingest, about half a second)
        then overlap the first clone instead of delaying the first digest. A failure here is met again, and
        reported, by the first digest."""
        threading.Thread(target=self._start_server, name="digest-server", daemon=True).start()

    def _start_server(self) -> None:
        from multiprocessing import forkserver

        with self._lock, contextlib.suppress(Exception):
            if not self._closed:
                _short_temp_dir()
                forkserver.ensure_running()

    def _take(self) -> _Worker:
        with self._lock:
            if self._closed:
                raise DigestStopped("digest not started: the shard is stopping")
            if self._idle:
                return self._idle.pop()
            _short_temp_dir()
            job_r, job_w = self._ctx.Pipe(duplex=False)
            answer_r, answer_w = self._ctx.Pipe(duplex=False)
            _grow(answer_w)
            process = self._ctx.Process(target=_serve, args=(job_r, answer_w), daemon=True, name="digest")
            process.start()
            job_r.close()
            answer_w.close()
            worker = _Worker(process, job_w, answer_r)
            self._all.add(worker)
            return worker

    def _drop(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            self._all.discard(worker)

    def digest(
        self,
        checkout: Path,
        header: Header,
        settings: DigestSettings,
        absent: frozenset[str] = frozenset(),
    ) -> Digest:
        """:func:`make_digest` with ``settings`` in a child process; :class:`DigestTimeout` after ``timeout``
        seconds."""
        kwargs = {
            "max_file_size": settings.max_file_size,
            "max_summary_bytes": settings.max_summary_bytes,
            "limits": Limits(settings.max_files, settings.max_total_bytes),
            "absent": absent,
        }
        with self._slots:
            worker = self._take()
            deadline = time.monotonic() + self.timeout
            try:
                worker.jobs.send((checkout, header, kwargs))
                while not worker.answers.poll(max(0.0, min(_POLL_S, deadline - time.monotonic()))):
                    if self._closed:
                        raise DigestStopped("digest stopped: the shard is stopping")
                    if time.monotonic() >= deadline:
                        raise DigestTimeout(f"digest timed out after {self.timeout:g} s")
                status, value = worker.answers.recv()
            except (EOFError, OSError) as exc:
                self._drop(worker)
                raise DigestStopped(
                    f"digest process died ({type(exc).__name__}, exit code {worker.process.exitcode})"
                ) from None
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
