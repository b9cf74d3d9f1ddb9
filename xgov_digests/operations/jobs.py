"""Run commands, each in a process group of its own, up to N at once, and stop them all, once, when told to.

``make`` forwards SIGTERM only to the process it started, and DVC neither handles SIGTERM nor passes SIGINT on:
each command (a shard's stage command, a ``dvc`` call) therefore runs in its own process group, and SIGINT, SIGTERM
or SIGHUP received here become one SIGINT to every running group (what Ctrl-C in a terminal does to ``dvc repro``);
no command starts after it, and a group still running ``grace`` seconds later is killed. Once a command has stopped
after the signal, whatever is left of its group (a clone it started) gets SIGTERM, then SIGKILL. One watchdog
process (``core.watchdog``) stops the groups when this process is killed with SIGKILL: SIGINT, SIGKILL after the
grace period.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

from xgov_digests.core.watchdog import STOP_SIGNALS, Watchdog, group_members, stop_groups

DRAIN_S = 0.5  # after a command exits: its last lines are already in the pipe; this is time to copy them
LineFilter = Callable[[Iterable[bytes]], Iterator[bytes]]
WATCHDOG = Watchdog(signal.SIGINT, 30.0)  # one per process, started with the first command


@dataclass(frozen=True)
class Job:
    """One command: its name (in messages), argv, and how to run it."""

    name: str
    argv: Sequence[str]
    cwd: str | None = None
    env: Mapping[str, str] | None = None
    stdout_filter: LineFilter | None = None
    banner: str = ""  # printed when the command starts (DVC's "Running stage ..." lines)


@dataclass
class Outcome:
    """What ``run_jobs`` did: each finished command's exit status (128 + N when a signal N stopped it), the
    commands never started, and the signal that stopped the run (None: it ran to the end)."""

    returncodes: dict[str, int] = field(default_factory=dict)
    not_started: list[str] = field(default_factory=list)
    stopped_by: int | None = None

    @property
    def failed(self) -> list[str]:
        return [name for name, code in self.returncodes.items() if code != 0]

    @property
    def succeeded(self) -> list[str]:
        return [name for name, code in self.returncodes.items() if code == 0]


def copy_lines(source: BinaryIO, line_filter: LineFilter) -> None:
    """Copy ``source`` to stdout through ``line_filter``, a line at a time, flushed (the reader of a pipe)."""
    out = sys.stdout.buffer
    for line in line_filter(iter(source.readline, b"")):
        out.write(line)
        out.flush()


def run_jobs(jobs: Sequence[Job], parallel: int = 1, grace: float = 30.0) -> Outcome:
    """Run ``jobs`` in order, up to ``parallel`` at once, each in its own process group; returns when all have
    ended (or, after a stop signal, when every started one has)."""
    outcome = Outcome()
    pending = list(jobs)
    running: dict[str, tuple[subprocess.Popen[bytes], threading.Thread | None]] = {}
    received: list[tuple[int, float]] = []
    killed = False

    def on_signal(signum: int, frame: object) -> None:
        if not received:  # once: a second SIGINT would cut short the commands' own clean-up
            received.append((signum, time.monotonic()))
            for proc, _ in running.values():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGINT)

    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
    try:
        while pending or running:
            while pending and len(running) < parallel and not received:
                job = pending.pop(0)
                if job.banner:
                    print(job.banner, flush=True)
                # stdin is not the terminal's: a background process group reading it would be stopped (SIGTTIN)
                proc = subprocess.Popen(
                    list(job.argv),
                    cwd=job.cwd,
                    env=dict(job.env) if job.env else None,
                    process_group=0,
                    stdin=subprocess.DEVNULL,
                    close_fds=True,
                    stdout=subprocess.PIPE if job.stdout_filter else None,
                )
                WATCHDOG.watch(proc.pid)
                reader = None
                if job.stdout_filter is not None:
                    assert proc.stdout is not None
                    reader = threading.Thread(target=copy_lines, args=(proc.stdout, job.stdout_filter), daemon=True)
                    reader.start()
                running[job.name] = (proc, reader)
                if received:  # a signal arrived while the command was starting
                    os.killpg(proc.pid, signal.SIGINT)
            if received and not killed and time.monotonic() - received[0][1] > grace:
                killed = True
                for proc, _ in running.values():
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
            for name, (proc, reader) in list(running.items()):
                code = proc.poll()
                if code is None:
                    continue
                del running[name]
                WATCHDOG.forget(proc.pid)
                if reader is not None:
                    reader.join(timeout=DRAIN_S)
                if received and group_members(proc.pid):
                    stop_groups([proc.pid], grace, first=signal.SIGTERM)
                outcome.returncodes[name] = code if code >= 0 else 128 - code
            if running:
                time.sleep(0.05)
            if received:
                outcome.not_started.extend(job.name for job in pending)
                pending.clear()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received:
        outcome.stopped_by = received[0][0]
    return outcome
