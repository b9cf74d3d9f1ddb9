"""``xgov-digests check-remote [-r REMOTE] [--verify SHARE] [--access [--write]]``: is every file of dvc.lock's
outputs on the remote? (read-only; ``xgov-digests push`` repairs). It compares what dvc.lock's outputs name (each
folder's .dir object and every file it lists) with one paginated LIST of the remote's files/md5/ prefix: DVC itself
trusts a present .dir object for the whole folder, so 'dvc push' says "Everything is up to date" while a file under
it is gone. ``--verify 0.05`` also downloads and hashes 5% of the present objects (1: all), so an object overwritten
with other bytes is named, not only a missing one. ``--access`` only checks that the remote's bucket answers with the
configured credentials (what ``pull`` checks first); ``--write`` also writes and deletes a probe object under the
remote's prefix (what ``push`` checks first), so a read-only token is caught before DVC starts. Every request is
bounded by storage.timeout (params.yaml)."""

from __future__ import annotations

import argparse

from xgov_digests.commands.common import remote_access, remote_argument, remote_audit


def share(text: str) -> float:
    """``--verify``'s value: a share of the objects, from just above 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a share between 0 and 1 (e.g. 0.05 for 5%%, 1 for all)")
    return value


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "check-remote", help="audit that the remote holds every output (read-only)", description=__doc__
    )
    remote_argument(parser)
    parser.add_argument(
        "--verify",
        type=share,
        default=0.0,
        metavar="SHARE",
        help="also download and hash this share of the present objects (0-1; 1: all)",
    )
    parser.add_argument("--access", action="store_true", help="only check that the bucket answers; audit nothing")
    parser.add_argument("--write", action="store_true", help="only check that the bucket answers and takes writes")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> None:
    if args.access or args.write:
        remote_access(args.remote, write=args.write)
    else:
        remote_audit(args.remote, verify=args.verify)
