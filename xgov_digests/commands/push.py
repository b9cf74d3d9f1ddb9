"""``xgov-digests push [-r REMOTE]``: ``dvc push``, the remote checked before (it answers, it takes writes) and
audited after (every file of dvc.lock's outputs is there; what ``dvc push`` took for present is re-uploaded)."""

from __future__ import annotations

import argparse

from xgov_digests.commands.common import remote_access, remote_argument, remote_audit, remote_flag
from xgov_digests.operations import dvc


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "push", help="dvc push, with the remote checked before and audited after", description=__doc__
    )
    remote_argument(parser)
    parser.set_defaults(func=lambda args: push_outputs(args.remote))


def push_outputs(remote: str | None) -> None:
    remote_access(remote, write=True)
    dvc.must(["push", *remote_flag(remote)])
    remote_audit(remote, repair=True)
