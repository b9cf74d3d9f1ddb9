"""``xgov-digests pull [-r REMOTE]``: audit that the remote holds every file of dvc.lock's outputs, then
``dvc pull``."""

from __future__ import annotations

import argparse

from xgov_digests.commands.common import remote_argument, remote_audit, remote_flag
from xgov_digests.operations import dvc


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("pull", help="audit the remote, then dvc pull", description=__doc__)
    remote_argument(parser)
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> None:
    remote_audit(args.remote)
    dvc.must(["pull", *remote_flag(args.remote)])
