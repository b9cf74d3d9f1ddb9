"""``xgov-digests publish [...]``: copy the digests to R2 as ``<prefix>/<owner>/<name>.txt`` for search consumers
(the options are ``python -m xgov_digests.cli.publish``'s: ``xgov-digests publish --help``)."""

from __future__ import annotations

import argparse

from xgov_digests.cli import publish


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("publish", help="copy the digests to R2 for search consumers (--dry-run, --prune)",
                            description=__doc__, add_help=False)  # fmt: skip
    parser.set_defaults(func=lambda args: publish.main(args.extra), passthrough=True)  # its own options
