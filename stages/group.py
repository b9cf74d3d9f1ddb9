"""Run a command (a ``dvc`` call of ``make repro``) so that Ctrl-C or SIGTERM stops it and everything it started.

python -m stages.group -- dvc --wait-for-lock repro --single-item shard@3

SIGINT, SIGTERM or SIGHUP become one SIGINT to the command's own process group (``xgov_digests.procgroup``).
"""

from __future__ import annotations

import argparse
import sys

from xgov_digests.procgroup import run_in_group


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stages.group", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--grace", type=float, default=30.0,
                        help="seconds the command has to stop after the signal before it is killed (30)")  # fmt: skip
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    try:
        return run_in_group(command, args.grace)
    except OSError as exc:
        print(f"group: error: cannot run {command[0]}: {exc}", file=sys.stderr)
        return 127


if __name__ == "__main__":
    sys.exit(main())
