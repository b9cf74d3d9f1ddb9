"""``xgov-digests cache-drop OWNER/NAME ... | --all``: delete digest-cache entries (``ingest.cache``, local or S3),
so the next shard run clones and digests those repos again. Names are looked up in the snapshot's manifests (any
case); ``--all`` deletes every entry of the cache and nothing else. ``make retry`` and ``dvc repro --force`` do not
bypass the cache: this does."""

from __future__ import annotations

import argparse

from xgov_digests.core.errors import XgovError
from xgov_digests.core.params import load_params
from xgov_digests.core.s3 import S3ConfigError
from xgov_digests.shard.cache import CacheUnavailable, drop, drop_named


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "cache-drop", help="delete digest-cache entries (named repos, or --all)", description=__doc__
    )
    parser.add_argument("names", nargs="*", metavar="OWNER/NAME", help="the repos whose entries to delete")
    parser.add_argument("--all", action="store_true", help="delete every entry of the cache")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if bool(args.names) == args.all:
        raise XgovError("name the repos (OWNER/NAME ...) or give --all, not both or neither: nothing was deleted")
    bad = [n for n in args.names if n.count("/") != 1 or not all(n.split("/"))]
    if bad:
        raise XgovError(f"not OWNER/NAME: {', '.join(repr(n) for n in bad)}: nothing was deleted")
    params = load_params()
    settings = params.ingest
    if not settings.cache:
        raise XgovError("ingest.cache is empty in params.yaml: there is no digest cache to delete from")
    try:
        deleted = drop(settings, params.storage, None) if args.all else drop_named(settings, params.storage, args.names)
    except ValueError as exc:
        raise XgovError(f"{exc}: nothing was deleted") from None
    except (CacheUnavailable, S3ConfigError) as exc:
        raise XgovError(f"the digest cache cannot be reached: {exc}") from None
    print(f"cache-drop: deleted {deleted} entr{'y' if deleted == 1 else 'ies'} from {settings.cache}")
    return 0
