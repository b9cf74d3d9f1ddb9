"""``xgov-digests check-remote [-r REMOTE] [--verify SHARE]``: is every file of dvc.lock's outputs on the remote?
(read-only; ``xgov-digests push`` repairs). ``--verify 0.05`` also downloads and hashes 5% of the present objects
(1: all), so an object overwritten with other bytes is named, not only a missing one."""

from __future__ import annotations

import argparse

from xgov_digests.cli.check_remote import share
from xgov_digests.commands.common import remote_argument, remote_check


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("check-remote", help="audit that the remote holds every output (read-only)",
                            description=__doc__)  # fmt: skip
    remote_argument(parser)
    parser.add_argument("--verify", type=share, default=None, metavar="SHARE",
                        help="also download and hash this share of the present objects (0-1; 1: all)")
    parser.set_defaults(func=lambda args: remote_check(
        args.remote, "--audit", *(["--verify", str(args.verify)] if args.verify else [])))
