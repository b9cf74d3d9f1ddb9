"""Run one command in its own process group and stop that whole group, once, when this process is told to stop:
``jobs.run_jobs`` with one job, as a command for the tests, ``bench killloop`` and ``scripts/sigterm_startup.py``,
which drive real ``dvc`` through it the way ``xgov-digests`` runs it.

SIGINT, SIGTERM or SIGHUP received here become one SIGINT to the command's group (what Ctrl-C in a terminal does to
``dvc repro``); a group still running ``--grace`` seconds later is killed; once the command has stopped after the
signal, whatever is left of its group gets SIGTERM, then SIGKILL. A ``kill -9`` of this process is handled by the
one watchdog of ``core.watchdog``: the command's group gets SIGINT, then SIGKILL.

python -m xgov_digests.operations.procgroup -- dvc --wait-for-lock repro --single-item shard@3
python -m xgov_digests.operations.procgroup --drop-hints -- dvc repro   # without DVC's git-staging and push hints
python -m xgov_digests.operations.procgroup --check    # only check (and repair) DVC's state files

Before and after a ``dvc`` command, DVC's own state files are checked under DVC's repo lock (``dvc.check_state``):
a ``dvc.lock`` cut short by a killed ``dvc`` is rebuilt, a corrupt ``.dvc/tmp/rwlock`` cleared, each repair one
warning line on stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from xgov_digests.operations.jobs import WATCHDOG, Job, LineFilter, run_jobs


def run_in_group(cmd: Sequence[str], grace: float = 30.0, stdout_filter: LineFilter | None = None) -> int:
    """Run ``cmd`` to completion and return its exit status (128 + the signal's number when stopped by a signal).

    With ``stdout_filter``, the command's stdout (and that of everything it starts) passes through it line by line
    on a daemon thread; stderr is untouched. The thread is not joined to end of file (a process the command started
    may hold the pipe open after the command exits): the caller ends with ``os._exit`` after flushing stdout."""
    # This process runs one command: its watchdog (started with the command) kills it after the same grace.
    WATCHDOG.grace = grace
    job = Job("command", list(cmd), stdout_filter=stdout_filter)
    outcome = run_jobs([job], grace=grace)
    if outcome.stopped_by is not None:
        return 128 + outcome.stopped_by
    return outcome.returncodes[job.name]


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
    code = main()
    sys.stdout.flush()
    os._exit(code)  # with --drop-hints, the copying thread may still block on a pipe another process holds open
