"""A KeyboardInterrupt (Ctrl-C, or the SIGTERM a stage turns into one) raised anywhere in the wait for a pool's
calls leaves the pool able to shut down: injected at every line the waiting thread runs, one run per line."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

from xgov_digests.core.futures import finish_order

# Runs in a fresh interpreter (a deadlocked pool's workers would keep pytest's from exiting). For n = 1, 2, ...: a
# pool of two workers whose four calls wait on an event a timer sets, the calls submitted, then a trace function
# that raises KeyboardInterrupt at the n-th line the waiting thread runs (in concurrent.futures, threading, queue or
# xgov_digests.core.futures) while it takes the outcomes; then the pool is shut down. One line per n: "ok", "hung"
# when the shutdown has not ended within 2 s (the locks the waiting thread kept are then released, so that the
# process can exit), or "done" once n is past the wait's last line (nothing was injected). --first-hang: stop there.
HARNESS = textwrap.dedent(
    """
    import sys, threading
    from concurrent.futures import ThreadPoolExecutor, as_completed
    from xgov_digests.core.futures import finish_order

    FILES = ("concurrent/futures", "threading.py", "queue.py", "xgov_digests/core/futures.py")

    def attempt(n, wait):
        release = threading.Event()
        pool = ThreadPoolExecutor(2)
        futures = []
        if wait == "finish_order":
            outcomes = finish_order(pool, lambda i: (release.wait(), i)[1], range(4))
        else:
            futures = [pool.submit(lambda i=i: (release.wait(), i)[1]) for i in range(4)]
            outcomes = as_completed(futures)
        seen = [0]

        def tracer(frame, event, arg):
            if not any(part in frame.f_code.co_filename for part in FILES):
                return None

            def line(frame, event, arg):
                if event == "line":
                    seen[0] += 1
                    if seen[0] == n:
                        raise KeyboardInterrupt
                return line

            return line

        timer = threading.Timer(0.02, release.set)
        timer.start()
        interrupted = False
        sys.settrace(tracer)
        try:
            for _ in outcomes:
                pass
        except KeyboardInterrupt:
            interrupted = True
        finally:
            sys.settrace(None)
        timer.join()
        shutdown = threading.Thread(target=pool.shutdown, daemon=True)
        shutdown.start()
        shutdown.join(2)
        if shutdown.is_alive():
            for future in futures:  # the locks the interrupted wait kept (reentrant: this thread owns them)
                while future._condition._is_owned():
                    future._condition.release()
            shutdown.join(2)
            return "hung"
        return "ok" if interrupted else "done"

    for n in range(1, 1000):
        result = attempt(n, sys.argv[1])
        print(n, result, flush=True)
        if result == "done" or (result == "hung" and "--first-hang" in sys.argv):
            break
    """
)


def injected(*args: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", HARNESS, *args], capture_output=True, text=True, timeout=300, check=True
    ).stdout
    return [line.split()[1] for line in out.splitlines()]


def test_an_interrupt_at_any_line_of_the_wait_leaves_the_pool_able_to_shut_down() -> None:
    results = injected("finish_order")
    assert results[-1] == "done"  # every line of the wait was tried
    assert len(results) > 3 and set(results[:-1]) == {"ok"}, results


def test_the_injection_can_fail() -> None:
    """The same injection into concurrent.futures.as_completed leaves the pool unable to shut down."""
    assert injected("as_completed", "--first-hang")[-1] == "hung"


def test_outcomes_come_in_the_order_the_calls_finish() -> None:
    def call(delay: float) -> float:
        time.sleep(delay)
        if delay == 0.2:
            raise ValueError("the third call fails")
        return delay

    with ThreadPoolExecutor(4) as pool:
        outcomes = list(finish_order(pool, call, [0.3, 0.0, 0.2, 0.1]))
    assert [o.item for o in outcomes] == [0.0, 0.1, 0.2, 0.3]
    assert [o.value for o in outcomes] == [0.0, 0.1, None, 0.3]
    assert isinstance(outcomes[2].error, ValueError) and outcomes[3].result() == 0.3
    try:
        outcomes[2].result()
    except ValueError as exc:
        assert str(exc) == "the third call fails"
    else:
        raise AssertionError("result() did not raise the call's error")
    with ThreadPoolExecutor(1) as pool:
        assert list(finish_order(pool, call, [])) == []


def test_ctrl_c_ends_a_wait_on_calls_that_never_finish() -> None:
    """A real SIGINT reaches a thread blocked in the wait (the queue's get is interruptible)."""
    code = textwrap.dedent(
        """
        import threading
        from concurrent.futures import ThreadPoolExecutor
        from xgov_digests.core.futures import finish_order
        release = threading.Event()
        pool = ThreadPoolExecutor(1)
        outcomes = finish_order(pool, lambda _: release.wait(), [1])
        print("waiting", flush=True)
        try:
            list(outcomes)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
        release.set()
        pool.shutdown()
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "waiting"
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=10)
    assert out.strip() == "interrupted" and proc.returncode == 0
