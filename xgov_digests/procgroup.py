"""Run a command in its own process group and stop that whole group, once, when this process is told to stop.

``make`` forwards SIGTERM only to the process it started, and ``dvc`` neither handles SIGTERM (it dies and leaves
the stage command running) nor passes SIGINT on (it ignores SIGINT while the command runs). The command therefore
runs in a process group of its own, and SIGINT, SIGTERM or SIGHUP received here become one SIGINT to that group:
what Ctrl-C in a terminal does to ``dvc repro``. DVC waits for the stage command, which stops (the shard kills its
clones), records the stage as failed and releases its locks. A group still running ``grace`` seconds later is killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def run_in_group(cmd: Sequence[str], grace: float = 30.0) -> int:
    """Run ``cmd`` to completion and return its exit status (128 + the signal's number when stopped by a signal)."""
    received: list[tuple[int, float]] = []  # the first signal and when it came
    proc: subprocess.Popen[bytes] | None = None

    def stop_group() -> None:
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGINT)

    def on_signal(signum: int, frame: object) -> None:
        if not received:  # once: a second SIGINT would cut short the command's own clean-up
            received.append((signum, time.monotonic()))
            stop_group()

    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
    try:
        # stdin is not the terminal's: a background process group reading it would be stopped (SIGTTIN)
        proc = subprocess.Popen(list(cmd), process_group=0, stdin=subprocess.DEVNULL)
        if received:  # a signal arrived while the command was starting
            stop_group()
        killed = False
        while True:
            try:
                returncode = proc.wait(timeout=0.2)  # short: a signal handled meanwhile starts the grace period
                break
            except subprocess.TimeoutExpired:
                if received and not killed and time.monotonic() - received[0][1] > grace:
                    killed = True
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received:
        return 128 + received[0][0]
    return returncode if returncode >= 0 else 128 - returncode
