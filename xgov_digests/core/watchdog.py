"""One watchdog for the process groups a process starts (a shard's clones, the command's shard commands and
``dvc`` calls): when that process ends, however it died (``kill -9``, an OOM kill), every group it still watches is
stopped.

A clone or a shard command runs in a process group of its own (so that a timeout or a Ctrl-C can stop it with
everything it started), which also means it would outlive its parent. The watchdog is one small process per parent,
in a session of its own (a terminal's Ctrl-C or a ``kill`` of the parent's process group does not reach it), holding
the read end of a pipe: the parent sends ``+pgid`` / ``-pgid`` lines as groups start and end.

    dog = Watchdog(signal.SIGINT, grace=30)   # SIGINT first (what Ctrl-C does), SIGKILL after 30 s
    proc = subprocess.Popen(cmd, process_group=0)
    dog.watch(proc.pid)
    ...
    dog.forget(proc.pid)
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

# The watchdog process itself: ``-I -S``, no project import, it starts in a few milliseconds. At end of file (its
# parent exited, however it died) every group still listed gets the first signal, then SIGKILL after the grace.
_SCRIPT = """
import os, signal, sys, time
for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(s, signal.SIG_IGN)
first, grace = int(sys.argv[1]), float(sys.argv[2])
groups = set()
for line in sys.stdin.buffer:
    op, pgid = line[:1], int(line[1:])
    (groups.add if op == b"+" else groups.discard)(pgid)
def send(sig):
    alive = False
    for pgid in groups:
        try:
            os.killpg(pgid, sig)
            alive = True
        except OSError:
            pass
    return alive
deadline = time.monotonic() + grace
alive = send(first)
while alive and grace and time.monotonic() < deadline:
    time.sleep(0.1)
    alive = send(0)
if alive:
    send(signal.SIGKILL)
"""


class Watchdog:
    """The parent's end, shared by threads: ``watch(pgid)`` as a group starts, ``forget(pgid)`` once it has ended;
    the groups still watched when this process ends get ``first`` (SIGKILL by default), SIGKILL after ``grace``."""

    def __init__(self, first: int = signal.SIGKILL, grace: float = 0.0) -> None:
        self.first, self.grace = first, grace
        self.lock = threading.Lock()
        self.proc: subprocess.Popen[bytes] | None = None

    def send(self, line: bytes) -> None:
        with self.lock:
            if self.proc is None or self.proc.poll() is not None:  # started with the first group
                self.proc = subprocess.Popen(
                    [sys.executable, "-I", "-S", "-c", _SCRIPT, str(int(self.first)), str(self.grace)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,  # a Ctrl-C to the parent's process group leaves it to do its job
                    bufsize=0,
                )
            assert self.proc.stdin is not None
            with contextlib.suppress(OSError):
                self.proc.stdin.write(line)

    def watch(self, pgid: int) -> None:
        self.send(b"+%d\n" % pgid)

    def forget(self, pgid: int) -> None:
        self.send(b"-%d\n" % pgid)


def group_members(pgid: int) -> list[int]:
    """The live (not zombie) processes of group ``pgid``, this process left out."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            with contextlib.suppress(OSError):
                if os.getpgid(int(entry)) == pgid:
                    with open(f"/proc/{entry}/stat", "rb") as fh:  # a zombie has stopped already
                        if fh.read().rsplit(b")", 1)[-1].split()[0] != b"Z":
                            found.append(int(entry))
    return found


def stop_groups(pgids: list[int], grace: float, first: int = signal.SIGINT) -> None:
    """``first`` to every group, SIGKILL to what is left of them after ``grace`` seconds."""
    for pgid in pgids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, first)
    deadline = time.monotonic() + grace
    while any(group_members(p) for p in pgids) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pgid in pgids:
        if group_members(pgid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
