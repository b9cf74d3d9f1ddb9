"""``xgov-digests worker K [K ...]``: a scale-out worker: digest the shards at these offsets and leave each in the
remote's run-cache, its data pushed before its run-cache entry (a killed push never leaves an entry without its
data). The worker commits nothing: the coordinator's ``collect`` finds the shards there (docs/scale-out.md)."""

from __future__ import annotations

import argparse

from xgov_digests.commands.common import remote_access, remote_argument, remote_audit, remote_flag, scaleout_guard
from xgov_digests.core.params import PARAMS_FILE, load_params
from xgov_digests.operations import dvc
from xgov_digests.operations.scaleout import check_offsets


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "worker", help="scale-out: digest shards K... into the remote's run-cache", description=__doc__
    )
    parser.add_argument("offsets", nargs="*", metavar="K", help='offsets from shards.offsets ("1 3" counts as two)')
    remote_argument(parser)
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> None:
    offsets = check_offsets(args.offsets, load_params(PARAMS_FILE).shards.offsets)
    scaleout_guard("worker")
    remote_access(args.remote, write=True)
    remote = remote_flag(args.remote)
    for k in offsets:
        print(f"worker: shard@{k}", flush=True)
        dvc.must(["pull", *remote, f"data/manifests/shard-{k}.json"])
        dvc.must(["repro", "--allow-missing", "--single-item", f"shard@{k}"])
        dvc.must(["push", *remote, f"shard@{k}"])  # the data first: an entry is only ever pushed after its data
        dvc.must(["push", *remote, "--run-cache", f"shard@{k}"])
    remote_audit(args.remote, repair=True)
    print(
        f"worker: shard(s) {' '.join(map(str, offsets))} are in the remote's run-cache. This clone's dvc.lock and "
        ".gitignore files now hold worker-only entries: do not commit them (before the next git pull: "
        "git restore dvc.lock data && git clean -fq data)"
    )
