"""Exponential backoff between attempts: one schedule for the feed download and the clones."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

MAX_DELAY_S = 60.0


def delay(retry: int, base: float) -> float:
    """Seconds to wait before retry number ``retry`` (1 = the first retry): base, 2 x base, 4 x base, ... capped."""
    return min(base * 2 ** (retry - 1), MAX_DELAY_S)


def attempts(retries: int, base: float, on_retry: Callable[[int, float], None] | None = None) -> Iterator[int]:
    """Yield attempt numbers 0 .. ``retries``, sleeping the backoff before each retry.

    ``on_retry(retry, seconds)`` is called before each sleep (to log it). Leave the loop with ``break``/``return``
    on success; falling off the end means every attempt failed.
    """
    for attempt in range(retries + 1):
        if attempt:
            seconds = delay(attempt, base)
            if on_retry:
                on_retry(attempt, seconds)
            time.sleep(seconds)
        yield attempt
