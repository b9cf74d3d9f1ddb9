"""``xgov-digests fetch-publish [-r REMOTE]``: the scale-out coordinator's first step: fetch the feed, push the
snapshot and manifests, commit ``dvc.lock`` (then ``git push``; docs/scale-out.md)."""

from __future__ import annotations

import argparse

from xgov_digests.commands.common import (
    remote_access,
    remote_argument,
    remote_flag,
    scaleout_commit,
    scaleout_guard,
)
from xgov_digests.operations import dvc


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "fetch-publish", help="scale-out: fetch, push the snapshot, commit dvc.lock", description=__doc__
    )
    remote_argument(parser)
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> None:
    scaleout_guard("fetch-publish")
    remote_access(args.remote, write=True)
    dvc.must(["repro", "--single-item", "fetch"])
    dvc.must(["push", *remote_flag(args.remote), "fetch"])
    scaleout_commit("fetch-publish", "scale-out: publish feed snapshot", ["dvc.lock", "data"])
    print("fetch-publish: next, git push; then on each worker: git pull && make worker OFFSET=K; then: make collect")
