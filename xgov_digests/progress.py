"""A shard's progress: a tqdm bar when stderr is a terminal, JSON log lines otherwise (CI, ``dvc repro`` in a pipe)."""

from __future__ import annotations

import logging
import os
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from xgov_digests.stats import Row

log = logging.getLogger("stages.shard")


def _columns(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError):
        return 0


class ShardProgress:
    """Called once a repo with its row: a bar (repos done, ok/cached/failed, ETA) or every ~5% a log line."""

    def __init__(self, batch_size: int, offset: int, total: int, stream: TextIO | None = None) -> None:
        self.batch_size, self.offset, self.total = batch_size, offset, total
        self.counts: Counter[str] = Counter()
        self.step = max(1, total // 20)
        stream = stream or sys.stderr
        self.bar = None
        if stream.isatty():
            from tqdm import tqdm

            sized = _columns(stream) > 0  # a pseudo-terminal may report 0 columns: then a fixed width
            self.bar = tqdm(total=total, desc=f"shard {offset}/{batch_size}", unit="repo", file=stream,
                            dynamic_ncols=sized, ncols=None if sized else 100, postfix=self._postfix())  # fmt: skip

    def _postfix(self) -> str:
        c = self.counts
        empty = f" empty={c['empty']}" if c["empty"] else ""
        return f"ok={c['ok']} cached={c['cached']} failed={c['failed']}{empty}"

    def __call__(self, done: int, total: int, row: Row) -> None:
        self.counts[row.status] += 1
        if self.bar is not None:
            self.bar.set_postfix_str(self._postfix(), refresh=False)
            self.bar.update(1)
        elif done % self.step == 0 or done == total:
            log.info(f"Processing batch {self.batch_size}, offset {self.offset}: {done}/{total} repos")

    @contextmanager
    def active(self) -> Iterator[ShardProgress]:
        """While the shard runs: log records print above the bar instead of through it; the bar closes after."""
        if self.bar is None:
            yield self
            return
        from tqdm.contrib.logging import logging_redirect_tqdm

        try:
            with logging_redirect_tqdm(loggers=[logging.getLogger()]):
                yield self
        finally:
            self.bar.close()
