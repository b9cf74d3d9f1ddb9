"""Run a command (a ``dvc`` call of ``make repro``) so that Ctrl-C or SIGTERM stops it and everything it started.

python -m xgov_digests.cli.group -- dvc --wait-for-lock repro --single-item shard@3
python -m xgov_digests.cli.group --drop-hints -- dvc --wait-for-lock repro --single-item shard@3
python -m xgov_digests.cli.group --check          # only check (and repair) DVC's state files, as before every dvc call

SIGINT, SIGTERM or SIGHUP become one SIGINT to the command's own process group
(``xgov_digests.operations.procgroup``); a ``kill -9`` of this process stops the group too (its sentinel).

Before and after a ``dvc`` command, DVC's own state files are checked under DVC's repo lock
(``xgov_digests.operations.dvc_repair``): a ``dvc.lock`` cut short by a killed ``dvc`` is rebuilt from the stages
it holds in full and the last good copy, an empty or corrupt ``.dvc/tmp/rwlock`` is cleared,
the entries of dead processes are dropped. Each repair is one warning line on stderr.

``--drop-hints`` drops DVC's staging and push hints from the command's stdout (``xgov_digests.cli.quiet_dvc``): the
Makefile's ``dvc`` calls, one process between make and dvc.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from xgov_digests.operations.procgroup import run_in_group


def check_state(root: Path = Path(".")) -> int:
    """Check and repair DVC's state files; 0 when the workspace can run, 2 (one line on stderr) when not."""
    from xgov_digests.operations.dvc_repair import RepairError, check

    try:
        report = check(root)
    except RepairError as exc:
        print(f"group: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"group: error: cannot check DVC's state files: {exc.strerror or exc} ({exc.filename})", file=sys.stderr)
        return 2
    for line in report.warnings:
        print(f"group: warning: {line}", file=sys.stderr)
    return 0


def _is_dvc(command: list[str]) -> bool:
    return os.path.basename(command[0]) == "dvc" or command[1:3] == ["-m", "dvc"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xgov_digests.cli.group", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--grace", type=float, default=30.0,
                        help="seconds the command has to stop after the signal before it is killed (30)")  # fmt: skip
    parser.add_argument("--check", action="store_true", help="only check and repair DVC's state files")
    parser.add_argument("--drop-hints", action="store_true",
                        help="drop DVC's git-staging and 'dvc push' hints from stdout")  # fmt: skip
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
        from xgov_digests.cli.quiet_dvc import without_hints

        stdout_filter = without_hints
    try:
        returncode = run_in_group(command, args.grace, stdout_filter)
    except OSError as exc:
        print(f"group: error: cannot run {command[0]}: {exc}", file=sys.stderr)
        return 127
    if dvc:
        check_state()  # keeps the dvc.lock this command wrote as the last good copy
    return returncode


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)  # with --drop-hints, the copying thread may still block on a pipe another process holds open
