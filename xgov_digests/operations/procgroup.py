"""Run a command in its own process group and stop that whole group, once, when this process is told to stop.

``make`` forwards SIGTERM only to the process it started, and ``dvc`` neither handles SIGTERM (it dies and leaves
the stage command running) nor passes SIGINT on (it ignores SIGINT while the command runs). The command therefore
runs in a process group of its own, and SIGINT, SIGTERM or SIGHUP received here become one SIGINT to that group:
what Ctrl-C in a terminal does to ``dvc repro``. DVC waits for the stage command, which stops (the shard kills its
clones), records the stage as failed and releases its locks. A group still running ``grace`` seconds later is killed.

A process of the group can miss that SIGINT: ``dvc`` forks the stage's command while a signal to it is pending,
the child starts after the signal, and ``dvc`` then stops on it (KeyboardInterrupt) without waiting for the child.
Once the command has stopped after a signal, whatever is left of its group gets SIGTERM, and SIGKILL after
``grace``: nothing it started runs on unrecorded.

A ``kill -9`` of this process (or of make's whole process group) cannot be handled here, and would leave the
command's group running on its own (a shard still queued for DVC's lock would then start). A sentinel process
inside the command's group holds a pipe from this process: when the pipe closes without the word ``done`` (this
process died), the sentinel does what a signal here would have done: SIGINT to the group, SIGKILL after ``grace``.

Run as a command (the tests, ``bench killloop`` and ``scripts/sigterm_startup.py`` drive real ``dvc`` through it):

python -m xgov_digests.operations.procgroup -- dvc --wait-for-lock repro --single-item shard@3
python -m xgov_digests.operations.procgroup --drop-hints -- dvc repro   # without DVC's git-staging and push hints
python -m xgov_digests.operations.procgroup --check    # only check (and repair) DVC's state files

Before and after a ``dvc`` command, DVC's own state files are checked under DVC's repo lock (``dvc.check_state``):
a ``dvc.lock`` cut short by a killed ``dvc`` is rebuilt, a corrupt ``.dvc/tmp/rwlock`` cleared, each repair one
warning line on stderr. The sentinel is this module too: ``--sentinel PGID GRACE``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from xgov_digests.core.watchdog import STOP_SIGNALS, group_members
from xgov_digests.operations.jobs import DRAIN_S, LineFilter, copy_lines

DONE = b"done"


def _start_sentinel(pgid: int, grace: float) -> subprocess.Popen[bytes] | None:
    """The sentinel of ``pgid`` (see the module's doc), or None when the group is already gone."""
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "xgov_digests.operations.procgroup", "--sentinel", str(pgid), str(grace)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            process_group=pgid,
        )
    except OSError:  # the command exited already (its group no longer exists)
        return None


def _stop_sentinel(sentinel: subprocess.Popen[bytes] | None) -> None:
    if sentinel is None:
        return
    with contextlib.suppress(OSError):
        assert sentinel.stdin is not None
        sentinel.stdin.write(DONE)
        sentinel.stdin.close()
    with contextlib.suppress(subprocess.TimeoutExpired):
        sentinel.wait(timeout=5)


def sentinel_main(pgid: int, grace: float) -> int:
    """Wait for the parent's word; without it (the parent died), stop the group: SIGINT, then SIGKILL after grace."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)  # the SIGINT the group gets is for the command, not for the sentinel
    word = b""
    while chunk := os.read(0, 64):
        word += chunk
    if word == DONE:
        return 0
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGINT)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not group_members(pgid):  # the command and everything of its group have stopped
            return 0
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)  # the sentinel included
    return 0


def _end_leftovers(pgid: int, sentinel: subprocess.Popen[bytes] | None, grace: float) -> None:
    """SIGTERM to what is left of group ``pgid`` but the sentinel, SIGKILL to all of it after ``grace``."""
    spared = {sentinel.pid} if sentinel is not None else set()

    def left() -> list[int]:
        return [pid for pid in group_members(pgid) if pid not in spared]

    if not left():
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)  # the sentinel ignores it
    deadline = time.monotonic() + grace
    while left() and time.monotonic() < deadline:
        time.sleep(0.1)
    if left():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)


def run_in_group(cmd: Sequence[str], grace: float = 30.0, stdout_filter: LineFilter | None = None) -> int:
    """Run ``cmd`` to completion and return its exit status (128 + the signal's number when stopped by a signal).

    With ``stdout_filter``, the command's stdout (and that of everything it starts) passes through it line by line
    on a daemon thread; stderr is untouched. The thread is not joined to end of file (a process the command started
    may hold the pipe open after the command exits): the caller ends with ``os._exit`` after flushing stdout."""
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
        proc = subprocess.Popen(
            list(cmd), process_group=0, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE if stdout_filter else None
        )
        reader = None
        if stdout_filter is not None:
            assert proc.stdout is not None
            reader = threading.Thread(target=copy_lines, args=(proc.stdout, stdout_filter), daemon=True)
            reader.start()
        sentinel = _start_sentinel(proc.pid, grace)
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
        if reader is not None:
            reader.join(timeout=DRAIN_S)
        if received:
            _end_leftovers(proc.pid, sentinel, grace)
        _stop_sentinel(sentinel)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received:
        return 128 + received[0][0]
    return returncode if returncode >= 0 else 128 - returncode


def check_state() -> int:
    """Check and repair DVC's state files; 0 when the workspace can run, 2 (one line on stderr) when not."""
    from xgov_digests.core.errors import XgovError
    from xgov_digests.operations.dvc import check_state as check

    try:
        warnings = check(Path("."))
    except XgovError as exc:
        print(f"procgroup: error: {exc}", file=sys.stderr)
        return 2
    for line in warnings:
        print(f"procgroup: warning: {line}", file=sys.stderr)
    return 0


def _is_dvc(command: list[str]) -> bool:
    return os.path.basename(command[0]) == "dvc" or command[1:3] == ["-m", "dvc"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m xgov_digests.operations.procgroup",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=30.0,
        help="seconds the command has to stop after the signal before it is killed (30)",
    )
    parser.add_argument("--check", action="store_true", help="only check and repair DVC's state files")
    parser.add_argument(
        "--drop-hints", action="store_true", help="drop DVC's git-staging and 'dvc push' hints from stdout"
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = parser.parse_args(argv)
    if args.check:
        return check_state()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    dvc = _is_dvc(command)
    if dvc and (status := check_state()) != 0:
        return status
    stdout_filter = None
    if args.drop_hints:
        from xgov_digests.operations.dvc import without_hints

        stdout_filter = without_hints
    try:
        returncode = run_in_group(command, args.grace, stdout_filter)
    except OSError as exc:
        print(f"procgroup: error: cannot run {command[0]}: {exc}", file=sys.stderr)
        return 127
    if dvc:
        check_state()  # keeps the dvc.lock this command wrote as the last good copy
    return returncode


if __name__ == "__main__":
    if sys.argv[1:2] == ["--sentinel"]:  # first, before argparse: the sentinel starts with every command
        sys.exit(sentinel_main(int(sys.argv[2]), float(sys.argv[3])))
    code = main()
    sys.stdout.flush()
    os._exit(code)  # with --drop-hints, the copying thread may still block on a pipe another process holds open
