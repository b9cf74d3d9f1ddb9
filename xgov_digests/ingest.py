"""Running one shard: clone and digest each assigned repo, ``workers`` at a time, one stats row each.

Clones wait on the network, so ``workers`` threads keep that many in flight. A digest takes milliseconds
(xgov_digests/digest.py), so it runs in the repo's own thread; removing a checkout can take as long as cloning it on
some disks, so that happens in the background.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from xgov_digests.cache import DigestCache, Entry
from xgov_digests.clone import CloneError, EmptyRepo, check_url, kill_running
from xgov_digests.clone_strategy import clone_repo
from xgov_digests.digest import Header, Limits, make_digest
from xgov_digests.feed import Repo
from xgov_digests.files import digest_path, write_atomic
from xgov_digests.logs import redact
from xgov_digests.params import IngestParams
from xgov_digests.stats import Row

log = logging.getLogger(__name__)


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
                row.digest_bytes = len(entry.data)
                return row
            tmp = Path(tempfile.mkdtemp(prefix="xgov-clone-"))
            try:
                t = time.perf_counter()
                checkout = clone_repo(repo.url, tmp / repo.name, clone_filter=s.clone_filter, timeout=s.clone_timeout,
                                      retries=s.retries, max_file_size=s.max_file_size)  # fmt: skip
                row.clone_s = time.perf_counter() - t
                row.commit = checkout.commit
                t = time.perf_counter()
                digest = make_digest(
                    checkout.path,
                    Header(repo.owner, repo.name, row.url, checkout.commit, repo.pushed_at),
                    max_file_size=s.max_file_size,
                    max_summary_bytes=s.max_summary_bytes,
                    limits=Limits(s.max_files, s.max_total_bytes),
                )
                write_atomic(out, digest.data)
                row.digest_s = time.perf_counter() - t
            finally:
                janitor.submit(shutil.rmtree, tmp, ignore_errors=True)
            row.status, row.files, row.truncated = "ok", digest.files, digest.truncated
            row.digest_bytes = len(digest.data)
            if self.cache:
                self.cache.put(repo, Entry(digest.data, checkout.commit, digest.files, digest.truncated))
        except EmptyRepo as exc:
            row.status, row.error = "empty", str(exc)
        except CloneError as exc:
            row.status, row.error = "failed", redact(str(exc))
        except Exception as exc:  # noqa: BLE001 - one repo's failure never stops the shard
            row.status, row.error = "failed", redact(f"{type(exc).__name__}: {exc}")
        finally:
            row.total_s = time.perf_counter() - start
        if row.status == "failed":
            log.warning("repo failed", extra={"url": row.url, "error": row.error})
        return row

    def run(self) -> list[Row]:
        workers = max(1, min(self.settings.workers, len(self.repos) or 1))
        rows: list[Row] = []
        with (
            ThreadPoolExecutor(1, thread_name_prefix="janitor") as janitor,
            ThreadPoolExecutor(workers, thread_name_prefix="repo") as pool,
        ):
            futures = [pool.submit(self._process, repo, janitor) for repo in self.repos]
            try:
                for future in as_completed(futures):
                    rows.append(future.result())
                    if self.on_progress:
                        self.on_progress(len(rows), len(self.repos))
            except BaseException:  # Ctrl-C or SIGTERM: stop now, not after the shard's remaining repos
                pool.shutdown(wait=False, cancel_futures=True)
                log.warning("stopping: killed the running clones", extra={"clones": kill_running()})
                raise
        return rows
