"""``xgov-digests shards N``: set ``shards.batch_size`` and ``shards.offsets`` together in ``params.yaml`` (its
layout kept), then print what the next ``dvc repro`` will run."""

from __future__ import annotations

import argparse

from xgov_digests.cli import set_shards
from xgov_digests.commands.repro import positive
from xgov_digests.core.errors import XgovError


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("shards", help="set the number of shards (batch size and offsets together)",
                            description=__doc__)  # fmt: skip
    parser.add_argument("n", type=positive, nargs="?", metavar="N", help="the number of shards (>= 1)")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if args.n is None:
        raise XgovError("set N=<number of shards>, e.g. make shards N=20 (xgov-digests shards 20): nothing was changed")
    return set_shards.main([str(args.n)])
