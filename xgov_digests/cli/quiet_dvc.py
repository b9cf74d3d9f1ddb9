"""Run a ``dvc`` command of the Makefile without the hints that the Makefile itself acts on.

python -m xgov_digests.cli.quiet_dvc -- dvc --wait-for-lock repro --single-item shard@3

``make repro`` runs one ``dvc repro --single-item`` per stage, and each would print DVC's "To track the changes
with git, run: ...", "To enable auto staging ..." and "Use `dvc push` ..." blocks: ``make run`` stages and pushes
by itself, and ``make repro`` says once at its end what to stage. Only those blocks of the command's stdout are
dropped; every other line, stderr (errors, progress bars, the stage's own output and its terminal) and the exit
status pass through unchanged. ``dvc repro --quiet`` would drop DVC's error messages too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

from xgov_digests.operations.dvc import without_hints
from xgov_digests.operations.jobs import DRAIN_S, copy_lines


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    command = args[1:] if args[:1] == ["--"] else args
    if not command:
        print("quiet_dvc: error: give the dvc command to run after --", file=sys.stderr)
        return 2
    try:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE)
    except OSError as exc:
        print(f"quiet_dvc: error: cannot run {command[0]}: {exc}", file=sys.stderr)
        return 127
    # Ctrl-C reaches the command's whole process group (xgov_digests.cli.group): this filter keeps passing the command's
    # output until the command has stopped, then exits with its status. (Set after the start: the command must
    # not inherit the ignored signal.)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    assert proc.stdout is not None
    reader = threading.Thread(target=copy_lines, args=(proc.stdout, without_hints), daemon=True)
    reader.start()
    status = proc.wait()
    # Not until end of file: a process the stage started (a watchdog, a git being killed) may hold the pipe open
    # after dvc has exited, and make must not wait for it.
    reader.join(timeout=DRAIN_S)
    return status


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)  # the copying thread may still block on a pipe another process holds open
