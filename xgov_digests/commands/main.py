"""``xgov-digests VERB``: the project's verbs in one command (``xgov-digests --help`` lists them; each verb has
``--help``). Every error ends here: one line ``xgov-digests VERB: error: ...`` on stderr and the error's exit code.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from xgov_digests.core.errors import XgovError

# module name -> verb; each module has add_parser(subparsers) that sets func(args) -> int | None (passthrough: the
# verb hands the options it does not know, args.extra, to the module it runs)
VERBS = (
    "repro",
    "run",
    "retry",
    "shards",
    "set_params",
    "publish",
    "plots",
    "check_remote",
    "push",
    "pull",
    "fetch_publish",
    "worker",
    "collect",
    "r2",
    "cache_drop",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xgov-digests",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="The Makefile's targets call these verbs: make -j 10 repro is xgov-digests repro -j 10.",
    )
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for name in VERBS:
        importlib.import_module(f"xgov_digests.commands.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    parser = build_parser()
    args, args.extra = parser.parse_known_args(argv)
    if args.extra and not getattr(args, "passthrough", False):
        parser.error(f"unrecognized arguments: {' '.join(args.extra)}")
    try:
        return int(args.func(args) or 0)
    except XgovError as exc:  # every error of the library the user can act on (core.errors)
        print(f"xgov-digests {args.verb}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:
        from dvc.exceptions import DvcException  # DVC's Python API, in this process: its errors are one line too

        if not isinstance(exc, DvcException):
            raise
        print(f"xgov-digests {args.verb}: error: DVC: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"xgov-digests {args.verb}: stopped", file=sys.stderr)
        return 130


def run() -> None:
    """The console script's entry point."""
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # a copying thread may still block on a pipe another process holds open
