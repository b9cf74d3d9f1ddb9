"""``xgov-digests run [--limit N] [-j N]``: the real feed end to end: set ``feed.limit``, repro (as ``repro -j N``),
stage the run's files for git, ``dvc push`` with the remote checks around it, and ``publish`` when the default
remote is ``r2``."""

from __future__ import annotations

import argparse

from xgov_digests.commands import publish
from xgov_digests.commands.common import remote_argument, stage_results
from xgov_digests.commands.push import push_outputs
from xgov_digests.commands.repro import add_repro_arguments, run_repro
from xgov_digests.core.errors import XgovError
from xgov_digests.core.params import PARAMS_FILE, FeedParams, update_params
from xgov_digests.operations import dvc


def limit(text: str) -> int:
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"LIMIT must be a whole number >= 0 (0: every repo), got {text!r}")
    return int(text)


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "run", help="set feed.limit, repro, stage for git, dvc push (and publish to r2)", description=__doc__
    )
    parser.add_argument(
        "--limit", type=limit, default=FeedParams.limit, metavar="N", help="the first N repos of the feed (0: all)"
    )
    add_repro_arguments(parser)
    remote_argument(parser)
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    update_params(PARAMS_FILE, {"feed": {"limit": args.limit}})  # validated before it writes; unchanged on error
    run_repro(args)
    stage_results("run")
    push_outputs(args.remote)
    if dvc.default_remote() == "r2":
        if (code := publish.main(publish.defaults())) != 0:
            raise XgovError("publish failed (its message is above); the run itself is pushed", exit_code=code)
    else:
        print("default remote is not r2: skipping publish (see make r2)")
    return 0
