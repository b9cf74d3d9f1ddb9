"""Running one shard: clone and digest each assigned repo, ``workers`` at a time, one stats row each.

Clones wait on the network, so ``workers`` threads keep that many in flight. A digest takes milliseconds
(xgov_digests/digest/) but runs in a child process killed at ``ingest.digest_timeout`` (xgov_digests/digest/budget.py);
removing a checkout can take as long as cloning it on some disks, so that happens in the background.
The clone and digest code (and gitingest under it) is imported on the first cache miss: a shard whose repos all
come from the digest cache never loads it.
An exception this module does not expect is a bug, not a property of the repo: its row is ``failure_kind: internal``
and the shard fails.
"""

from __future__ import annotations

import contextlib
import faulthandler
import hashlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from xgov_digests.clone.cleanup import remove_tree
from xgov_digests.clone.git import CloneError, EmptyRepo, check_url, kill_running
from xgov_digests.core.diskfull import DiskFull, enospc, failed_path, out_of_room, says_disk_full
from xgov_digests.core.files import digest_path, write_atomic
from xgov_digests.core.futures import finish_order
from xgov_digests.core.logs import redact
from xgov_digests.core.params import IngestParams
from xgov_digests.core.repo import Repo
from xgov_digests.digest.errors import DigestStopped, DigestTimeout
from xgov_digests.digest.tokens import count_tokens, encoder
from xgov_digests.schemas.stats import Row
from xgov_digests.shard.cache import DigestCache, Entry

if TYPE_CHECKING:
    from xgov_digests.digest.budget import DigestPool

log = logging.getLogger(__name__)


def digest_processes(workers: int, repos: int) -> int:
    """How many digests a shard runs at once: one a usable core, at most one a repo in flight. A digest is CPU work
    of milliseconds while a clone waits on the network for a second or more, so a core's digest process keeps up
    with many clones; each further process costs its fork and its first digest's warm-up (its pages copied as it
    touches them), which on a 24-repo shard with 8 of them on 2 cores was most of the digest processes' CPU. A
    digest that hangs (a pattern that backtracks) holds its process until ``ingest.digest_timeout``; the others
    go on in the rest."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(workers, repos or 1, cores))


def _load_encoder(name: str) -> None:
    with contextlib.suppress(Exception):  # met again, and reported, by the first count
        encoder(name)


@dataclass
class ShardRun:
    """Everything one shard run needs; :meth:`run` returns a row per repo."""

    repos: list[Repo]
    batch_size: int
    offset: int
    out_dir: Path
    settings: IngestParams
    on_progress: Callable[[int, int, Row], None] | None = None  # (done, total, the row just finished)
    cache: DigestCache | None = None
    _pool: DigestPool | None = field(default=None, init=False, repr=False)
    _pool_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _stopping: bool = field(default=False, init=False, repr=False)

    def _digest_pool(self) -> DigestPool:
        """The digest pool, opened on the first cache miss (its fork server imports the digest code, not the shard)."""
        with self._pool_lock:
            if self._pool is None:
                from xgov_digests.digest.budget import DigestPool

                if self._stopping:
                    raise DigestStopped("digest not started: the shard is stopping")
                self._pool = DigestPool(
                    digest_processes(self.settings.workers, len(self.repos)), self.settings.digest_timeout
                )
                # the fork server's imports and the token vocabulary (about 0.15 and 0.4 s of CPU) load while the
                # first clones wait on the network, not after them
                self._pool.start()
                threading.Thread(target=_load_encoder, args=(self.settings.token_encoding,), daemon=True).start()
            return self._pool

    def _close_pool(self) -> None:
        with self._pool_lock:
            self._stopping = True
            if self._pool is not None:
                self._pool.close()

    def _process(self, repo: Repo, janitor: ThreadPoolExecutor) -> Row:
        s = self.settings
        row = Row(redact(repo.url), repo.owner, repo.name, self.offset, self.batch_size, repo.pushed_at)
        start = time.perf_counter()
        try:
            check_url(repo.url, s.allowed_hosts, s.allow_file_urls)
            out = digest_path(self.out_dir, repo.owner, repo.name)
            if self.cache and (entry := self.cache.get(repo)):
                write_atomic(out, entry.data)
                row.status, row.commit, row.files, row.truncated = "cached", entry.commit, entry.files, entry.truncated
                row.digest_bytes, row.walk_limit, row.warnings = len(entry.data), entry.walk_limit, entry.warnings
                row.tokens = entry.tokens.get(s.token_encoding, 0)
                if not row.tokens:  # an entry written before it kept this encoding's count: count once, keep it
                    row.tokens = count_tokens(entry.data, s.token_encoding)
                    self.cache.put(repo, replace(entry, tokens={**entry.tokens, s.token_encoding: row.tokens}))
                row.sha256 = entry.sha256 or hashlib.sha256(entry.data).hexdigest()  # decode checked it: not again
                return row
            pool = self._digest_pool()
            from xgov_digests.clone.strategy import clone_repo, digest_cut
            from xgov_digests.digest.format import Header

            tmp = Path(tempfile.mkdtemp(prefix="xgov-clone-"))
            try:
                t = time.perf_counter()
                checkout = clone_repo(repo.url, tmp / repo.name, s.clone_settings())
                row.clone_s = time.perf_counter() - t
                row.commit = checkout.commit
                t = time.perf_counter()
                header = Header(repo.owner, repo.name, row.url, checkout.commit, repo.pushed_at)
                digest, bringing = digest_cut(
                    checkout,
                    s.max_summary_bytes,
                    lambda absent: pool.digest(checkout.path, header, s.digest_settings(), absent),
                )
                row.clone_s += bringing
                t += bringing
                write_atomic(out, digest.data)
                row.digest_s = time.perf_counter() - t
            finally:
                janitor.submit(remove_tree, tmp)
            row.status, row.files, row.truncated = "ok", digest.files, digest.truncated
            row.digest_bytes, row.walk_limit = len(digest.data), digest.walk_limit
            row.tokens = count_tokens(digest.data, s.token_encoding)
            row.sha256 = hashlib.sha256(digest.data).hexdigest()
            row.warnings = "; ".join(digest.warnings) or None
            if row.walk_limit:
                log.warning("walk stopped early: files left out", extra={"url": row.url, "walk_limit": row.walk_limit})
            if self.cache:
                self.cache.put(
                    repo,
                    Entry(
                        digest.data,
                        checkout.commit,
                        digest.files,
                        digest.truncated,
                        row.walk_limit,
                        row.warnings,
                        {s.token_encoding: row.tokens},
                    ),
                )
        except EmptyRepo as exc:
            row.status, row.error = "empty", str(exc)
        except CloneError as exc:  # UrlRejected too: permanent
            if says_disk_full(str(exc)) or out_of_room(tempfile.gettempdir()):  # the machine's problem, not the repo's
                raise DiskFull(tempfile.gettempdir()) from None
            row.status, row.error, row.failure_kind = "failed", redact(str(exc)), exc.kind
        except DiskFull:
            raise
        except DigestTimeout as exc:  # a hostile repo (a pattern that backtracks for ever) that will time out again
            row.status, row.error, row.failure_kind = "failed", str(exc), "permanent"
        except DigestStopped as exc:  # the digest's process died (out of memory?) or the shard is stopping
            row.status, row.error, row.failure_kind = "failed", str(exc), "transient"
        except Exception as exc:
            if enospc(exc):  # disk full: named by stages/shard.py, not a bug
                raise DiskFull(failed_path(exc, self.out_dir)) from None
            # a bug (DigestBug too): logged with its traceback; the shard fails (see stages/shard.py)
            log.exception("internal error", extra={"url": row.url})
            first = f"{type(exc).__name__}: {exc}".splitlines()[0]  # a digest's bug carries the child's traceback
            row.status, row.error, row.failure_kind = "failed", redact(first), "internal"
        finally:
            row.total_s = time.perf_counter() - start
        if row.status == "failed":
            log.warning("repo failed", extra={"url": row.url, "error": row.error, "failure_kind": row.failure_kind})
        return row

    def run(self) -> list[Row]:
        workers = max(1, min(self.settings.workers, len(self.repos) or 1))
        rows: list[Row] = []
        with (
            ThreadPoolExecutor(1, thread_name_prefix="janitor") as janitor,
            ThreadPoolExecutor(workers, thread_name_prefix="repo") as pool,
        ):
            try:
                # not as_completed: an interrupt while it holds a future's lock leaves the pool unable to shut down
                for done in finish_order(pool, lambda repo: self._process(repo, janitor), self.repos):
                    rows.append(done.result())
                    if self.on_progress:
                        self.on_progress(len(rows), len(self.repos), rows[-1])
            except BaseException:  # Ctrl-C or SIGTERM: stop now, not after the shard's remaining repos
                # still running 15 s from now: every thread's stack on stderr, to name what the stop waits for
                faulthandler.dump_traceback_later(15)
                pool.shutdown(wait=False, cancel_futures=True)
                if self.cache:
                    self.cache.close()  # repos waiting on a hanging cache endpoint return at once
                log.warning("stopping: killed the running clones", extra={"clones": kill_running()})
                self._close_pool()
                raise
            finally:
                if not self._stopping:
                    pool.shutdown(wait=True)
                    self._close_pool()
        return rows
