"""``xgov-digests push [-r REMOTE] [--verify SHARE]``: ``dvc push``, the remote checked before (it answers, it takes
writes) and audited after (every file of dvc.lock's outputs is there; what ``dvc push`` took for present is
re-uploaded). ``--verify 1`` also downloads and hashes the present objects (a share: that part of them, drawn at
random) and uploads again, from a local copy that hashes right, any whose bytes differ: ``dvc push`` and the listing
take an object overwritten with other bytes for present."""

from __future__ import annotations

import argparse

from xgov_digests.commands.check_remote import share
from xgov_digests.commands.common import remote_access, remote_argument, remote_audit, remote_flag
from xgov_digests.operations import dvc


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "push", help="dvc push, with the remote checked before and audited after", description=__doc__
    )
    remote_argument(parser)
    parser.add_argument(
        "--verify",
        type=share,
        default=0.0,
        metavar="SHARE",
        help="also download and hash this share of the present objects and re-upload those that differ (0-1; 1: all)",
    )
    parser.set_defaults(func=lambda args: push_outputs(args.remote, args.verify))


def push_outputs(remote: str | None, verify: float = 0.0) -> None:
    remote_access(remote, write=True)
    dvc.must(["push", *remote_flag(remote)])
    remote_audit(remote, repair=True, verify=verify)
