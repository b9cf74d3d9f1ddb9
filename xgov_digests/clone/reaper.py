"""A watchdog process that kills the shard's git process groups when the shard ends, even by SIGKILL.

A clone runs in its own session (so that a timeout can kill git with its helpers: git-remote-https, index-pack),
which also means it would outlive a killed shard. The watchdog holds the read end of a pipe; the shard sends it
``+pgid`` / ``-pgid`` lines as clones start and end. When the shard's end closes (the shard exited, however it
died), the watchdog kills every group still listed and exits.
"""

from __future__ import annotations

import subprocess
import sys
import threading

_SCRIPT = """
import os, signal, sys
groups = set()
for line in sys.stdin.buffer:
    op, pgid = line[:1], int(line[1:])
    (groups.add if op == b"+" else groups.discard)(pgid)
for pgid in groups:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
"""

_lock = threading.Lock()
_proc: subprocess.Popen[bytes] | None = None


def _send(line: bytes) -> None:
    global _proc
    with _lock:
        if _proc is None or _proc.poll() is not None:
            _proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _SCRIPT],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C to the shard's process group leaves it to do its job
                bufsize=0,
            )
        assert _proc.stdin is not None
        try:
            _proc.stdin.write(line)
        except OSError:
            pass


def watch(pgid: int) -> None:
    """Kill process group ``pgid`` if this process ends before :func:`forget` is called for it."""
    _send(b"+%d\n" % pgid)


def forget(pgid: int) -> None:
    _send(b"-%d\n" % pgid)
