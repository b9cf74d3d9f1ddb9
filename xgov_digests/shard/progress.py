"""A shard's progress: a tqdm bar when stderr is a terminal, log lines otherwise (CI, ``dvc repro`` in a pipe).

The bar shows under ``dvc repro``, ``make repro`` and ``make -j N repro`` alike: DVC and make hand the stage the
terminal as its stderr. A pseudo-terminal that reports no size (``script`` without an outer terminal, some CI
runners) gets a fixed 100 x 24: tqdm takes 0 rows as "no room" and would draw nothing at all.
"""

from __future__ import annotations

import logging
import os
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import TextIO

from xgov_digests.core.logs import HUMAN, log_format
from xgov_digests.schemas.stats import Row

log = logging.getLogger("stages.shard")


def _size(stream: TextIO) -> tuple[int, int]:
    try:
        size = os.get_terminal_size(stream.fileno())
    except (OSError, ValueError):
        return 0, 0
    return size.columns, size.lines


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def summary(rows: list[Row], seconds: float) -> str:
    """The shard's one closing line for people: ``2,100 repos  1,890 ok  198 cached  12 failed (12 transient) …``."""
    counts = Counter(r.status for r in rows)
    kinds = Counter(r.failure_kind or "unclassified" for r in rows if r.status == "failed")
    failed = f"{counts['failed']:,} failed"
    if kinds:
        failed += " (" + ", ".join(f"{n:,} {kind}" for kind, n in sorted(kinds.items())) + ")"
    repos = f"{len(rows):,} repo{'' if len(rows) == 1 else 's'}"
    parts = [repos, f"{counts['ok']:,} ok", f"{counts['cached']:,} cached", failed]
    if counts["empty"]:
        parts.append(f"{counts['empty']:,} empty")
    return "  ".join([*parts, f"done in {_duration(seconds)}"])


class ShardProgress:
    """Called once a repo with its row: a bar (repos done, ok/cached/failed, ETA) or every ~5% a log line."""

    def __init__(self, batch_size: int, offset: int, total: int, stream: TextIO | None = None) -> None:
        self.batch_size, self.offset, self.total = batch_size, offset, total
        self.counts: Counter[str] = Counter()
        self.step = max(1, total // 20)
        stream = stream or sys.stderr
        self.bar = None
        if stream.isatty() and log_format(stream) == "human":  # XGOV_LOG_FORMAT=json: JSON lines only, no bar
            from tqdm import tqdm

            columns, lines = _size(stream)
            sized = columns > 0 and lines > 0
            # leave=False: the bar is the live view; the shard's summary line is what stays on the screen
            self.bar = tqdm(
                total=total,
                desc=f"shard {offset}/{batch_size}",
                unit="repo",
                file=stream,
                leave=False,
                dynamic_ncols=sized,
                ncols=None if sized else 100,
                nrows=None if sized else 24,
                postfix=self._postfix(),
            )

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
            log.info(
                f"Processing batch {self.batch_size}, offset {self.offset}: {done}/{total} repos",
                extra={HUMAN: f"{done:,}/{total:,} repos  {self._postfix()}"},
            )

    @contextmanager
    def active(self) -> Iterator[ShardProgress]:
        """While the shard runs: log records print above the bar instead of through it; the bar closes after."""
        if self.bar is None:
            yield self
            return
        try:
            with ExitStack() as self._redirect:
                self.redirect_logs()
                yield self
        finally:
            self.bar.refresh()  # the last update may fall inside tqdm's mininterval: draw the final count once
            self.bar.close()

    def redirect_logs(self) -> None:
        """Route the root logger's handlers through the bar."""
        if self.bar is None or getattr(self, "_redirect", None) is None:
            return
        from tqdm.contrib.logging import logging_redirect_tqdm

        self._redirect.close()
        self._redirect.enter_context(logging_redirect_tqdm(loggers=[logging.getLogger()]))


class CountProgress:
    """A count of ``total`` things done: a bar on a terminal, else a log line at most every ``every`` seconds."""

    def __init__(
        self,
        total: int,
        desc: str,
        unit: str,
        logger: logging.Logger,
        every: float = 10.0,
        stream: TextIO | None = None,
    ) -> None:
        import time

        self.total, self.desc, self.unit, self.log, self.every = total, desc, unit, logger, every
        self.done, self._clock = 0, time.monotonic
        self._last = self._clock()
        stream = stream or sys.stderr
        self.bar = None
        if total and stream.isatty() and log_format(stream) == "human":
            from tqdm import tqdm

            columns, lines = _size(stream)
            sized = columns > 0 and lines > 0
            self.bar = tqdm(
                total=total,
                desc=desc,
                unit=unit,
                file=stream,
                leave=False,
                dynamic_ncols=sized,
                ncols=None if sized else 100,
                nrows=None if sized else 24,
            )

    def update(self) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
            if self.done == self.total:
                self.bar.refresh()
                self.bar.close()
        elif self._clock() - self._last >= self.every and self.done < self.total:
            self._last = self._clock()
            self.log.info(f"{self.desc}: {self.done}/{self.total} {self.unit}s")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
