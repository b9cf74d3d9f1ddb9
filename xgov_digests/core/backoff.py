"""Exponential backoff between attempts: one schedule for the feed download and the clones. The wait is full
jitter, a random time up to the exponential delay: many clone workers (or machines) that failed together, on one
rate limit or one outage, do not all retry together."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator

MAX_DELAY_S = 60.0


def delay(retry: int, base: float) -> float:
    """Seconds to wait before retry number ``retry`` (1 = the first retry): base, 2 x base, 4 x base, ... capped."""
    return min(base * 2 ** (retry - 1), MAX_DELAY_S)


def jittered(retry: int, base: float) -> float:
    """The wait before retry number ``retry``: uniform in [0, :func:`delay`]."""
    return random.uniform(0.0, delay(retry, base))


def attempts(retries: int, base: float, on_retry: Callable[[int, float], None] | None = None) -> Iterator[int]:
    """Yield attempt numbers 0 .. ``retries``, sleeping the backoff (:func:`jittered`) before each retry.

    ``on_retry(retry, seconds)`` is called before each sleep (to log it). Leave the loop with ``break``/``return``
    on success; falling off the end means every attempt failed.
    """
    for attempt in range(retries + 1):
        if attempt:
            seconds = jittered(attempt, base)
            if on_retry:
                on_retry(attempt, seconds)
            time.sleep(seconds)
        yield attempt
