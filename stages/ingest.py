"""Running one shard: clone and digest each assigned repo, ``workers`` at a time, one stats row each.

Clones wait on the network, so ``workers`` threads keep that many in flight; digesting is CPU-bound
Python, so it runs in a pool of at most one process per core.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from stages.cache import DigestCache, Entry
from stages.clone import CloneError, EmptyRepo, check_url, clone
from stages.digest import Header, make_digest
from stages.feed import Repo
from stages.files import write_atomic
from stages.logs import redact, setup_logging
from stages.params import IngestParams
from stages.stats import Row

log = logging.getLogger(__name__)


def digest_path(out_dir: Path, repo: Repo) -> Path:
    return out_dir / repo.owner / f"{repo.name}.txt"


@dataclass(frozen=True)
class DigestResult:
    files: int
    digest_bytes: int
    truncated: bool
    seconds: float


def digest_to_file(
    checkout: Path, header: Header, out: Path, max_file_size: int, max_summary_bytes: int
) -> DigestResult:
    """Digest ``checkout`` and write it atomically to ``out`` (runs in a worker process)."""
    start = time.perf_counter()
    digest = make_digest(checkout, header, max_file_size=max_file_size, max_summary_bytes=max_summary_bytes)
    write_atomic(out, digest.data)
    return DigestResult(digest.files, len(digest.data), digest.truncated, time.perf_counter() - start)


class _Inline(Executor):
    """Runs submitted work in the calling thread (``workers: 1``)."""

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[override]
        from concurrent.futures import Future

        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
            future.set_exception(exc)
        return future


def _init_worker(level: int) -> None:
    setup_logging(level)


@dataclass
class ShardRun:
    """Everything one shard run needs; :meth:`run` returns a row per repo."""

    repos: list[Repo]
    batch_size: int
    offset: int
    out_dir: Path
    settings: IngestParams
    on_progress: Callable[[int, int], None] | None = None
    cache: DigestCache | None = None

    def _process(self, repo: Repo, digests: Executor) -> Row:
        s = self.settings
        row = Row(redact(repo.url), repo.owner, repo.name, self.offset, self.batch_size, repo.pushed_at)
        start = time.perf_counter()
        tmp: Path | None = None
        try:
            check_url(repo.url, s.allowed_hosts, s.allow_file_urls)
            out = digest_path(self.out_dir, repo)
            if self.cache and (entry := self.cache.get(repo)):
                write_atomic(out, entry.data)
                row.status, row.commit, row.files, row.truncated = "cached", entry.commit, entry.files, entry.truncated
                row.digest_bytes = len(entry.data)
                return row
            tmp = Path(tempfile.mkdtemp(prefix="xgov-clone-"))
            t = time.perf_counter()
            checkout = clone(repo.url, tmp / repo.name, timeout=s.clone_timeout, retries=s.retries)
            row.clone_s = time.perf_counter() - t
            row.commit = checkout.commit
            header = Header(repo.owner, repo.name, row.url, checkout.commit, repo.pushed_at)
            job = digests.submit(digest_to_file, checkout.path, header, out, s.max_file_size, s.max_summary_bytes)
            result = job.result()
            row.status = "ok"
            row.files, row.digest_bytes, row.truncated = result.files, result.digest_bytes, result.truncated
            row.digest_s = result.seconds
            if self.cache:
                self.cache.put(repo, Entry(out.read_bytes(), checkout.commit, result.files, result.truncated))
        except EmptyRepo as exc:
            row.status, row.error = "empty", str(exc)
        except CloneError as exc:
            row.status, row.error = "failed", redact(str(exc))
        except Exception as exc:  # noqa: BLE001 - one repo's failure never stops the shard
            row.status, row.error = "failed", redact(f"{type(exc).__name__}: {exc}")
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
            row.total_s = time.perf_counter() - start
        if row.status == "failed":
            log.warning("repo failed", extra={"url": row.url, "error": row.error})
        return row

    def run(self) -> list[Row]:
        workers = max(1, min(self.settings.workers, len(self.repos) or 1))
        procs = min(workers, os.cpu_count() or 1)
        if workers == 1 or procs == 1:
            digests: Executor = _Inline()
        else:
            digests = ProcessPoolExecutor(
                procs, mp_context=get_context("spawn"), initializer=_init_worker,
                initargs=(logging.getLogger().level,),
            )  # fmt: skip
        rows: list[Row] = []
        try:
            with ThreadPoolExecutor(workers, thread_name_prefix="repo") as pool:
                futures = [pool.submit(self._process, repo, digests) for repo in self.repos]
                for future in as_completed(futures):
                    rows.append(future.result())
                    if self.on_progress:
                        self.on_progress(len(rows), len(self.repos))
        finally:
            digests.shutdown(cancel_futures=True)
        return rows
