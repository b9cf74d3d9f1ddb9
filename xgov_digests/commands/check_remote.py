"""``xgov-digests check-remote [-r REMOTE]``: is every file of dvc.lock's outputs on the remote? (read-only;
``xgov-digests push`` repairs)."""

from __future__ import annotations

import argparse

from xgov_digests.commands.common import remote_argument, remote_check


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("check-remote", help="audit that the remote holds every output (read-only)",
                            description=__doc__)  # fmt: skip
    remote_argument(parser)
    parser.set_defaults(func=lambda args: remote_check(args.remote, "--audit"))
