"""Calls run on a thread pool, their outcomes taken in the order they finish by a thread that holds no lock while it
waits, so that a KeyboardInterrupt (Ctrl-C, or a SIGTERM a stage turns into one) raised in that thread leaves the
pool able to shut down.

``concurrent.futures.as_completed`` takes every future's lock, one after another, before it waits; a future's done
callback is registered under its lock too. An interrupt raised while the waiting thread holds one of those locks
(between two acquisitions, or in ``threading.Condition.__exit__``, a Python frame, before the release) leaves it
held for ever: the worker then blocks setting that future's result, and the pool's shutdown (a ``with`` block's
end), and with it the interpreter's exit, waits for ever. Here each call puts its own outcome on a queue (in the
worker, after it returns), and the waiting thread only reads that queue, whose ``get`` is C code, interruptible,
and holds nothing when interrupted.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Generic, TypeVar

A = TypeVar("A")
R = TypeVar("R")


@dataclass(frozen=True)
class Outcome(Generic[A, R]):
    """One call's item and what it returned or raised."""

    item: A
    value: R | None
    error: BaseException | None

    def result(self) -> R:
        """The value, or the call's exception raised here."""
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]


def finish_order(pool: Executor, fn: Callable[[A], R], items: Iterable[A]) -> Iterator[Outcome[A, R]]:
    """Submit ``fn(item)`` for each item to ``pool`` now; the iterator returned yields each call's outcome as it
    finishes. A call the pool cancels (its shutdown with ``cancel_futures``) never yields: stop iterating then."""
    finished: queue.SimpleQueue[Outcome[A, R]] = queue.SimpleQueue()

    def call(item: A) -> None:
        try:
            value = fn(item)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread, as a future would
            finished.put(Outcome(item, None, exc))
        else:
            finished.put(Outcome(item, value, None))

    submitted = 0
    for item in items:
        pool.submit(call, item)
        submitted += 1
    return _take(finished, submitted)


def _take(finished: queue.SimpleQueue[Outcome[A, R]], count: int) -> Iterator[Outcome[A, R]]:
    for _ in range(count):
        yield finished.get()
