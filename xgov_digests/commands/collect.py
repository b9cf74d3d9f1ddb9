"""``xgov-digests collect [--allow-local] [-r REMOTE]``: the scale-out coordinator's last step: restore every shard
from the remote's run-cache (at most one missing shard digested here; any number with ``--allow-local``), run
aggregate, push and commit (then ``git push``; docs/scale-out.md)."""

from __future__ import annotations

import argparse

from xgov_digests.commands.common import (
    remote_access,
    remote_argument,
    remote_audit,
    remote_flag,
    scaleout_commit,
    scaleout_guard,
)
from xgov_digests.core.errors import XgovError
from xgov_digests.core.params import PARAMS_FILE, load_params
from xgov_digests.operations import dvc
from xgov_digests.operations.scaleout import collect


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "collect", help="scale-out: shards from the run-cache, aggregate, push, commit", description=__doc__
    )
    parser.add_argument("--allow-local", action="store_true", help="digest any number of missing shards here")
    remote_argument(parser)
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> None:
    scaleout_guard("collect")
    default = dvc.default_remote()
    if args.remote and args.remote != default:
        raise XgovError(
            f"REMOTE={args.remote} is not the default remote ({default or 'none'}); 'dvc repro --pull', "
            "which restores the workers' shards, reads only the default remote: run "
            f"'dvc remote default --local {args.remote}' (or make r2), then collect again"
        )
    dvc.warn_state()
    remote_access(args.remote, write=True)
    dvc.must(["pull", *remote_flag(args.remote), "fetch"])
    print(collect(list(load_params(PARAMS_FILE).shards.offsets), args.allow_local).report(), flush=True)
    dvc.must(["push", *remote_flag(args.remote)])
    remote_audit(args.remote, repair=True)
    scaleout_commit("collect", "scale-out: collect shards", ["dvc.lock", "data", "reports"])
    print("collect: next, git push")
