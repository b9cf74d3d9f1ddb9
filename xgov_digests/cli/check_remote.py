"""Before ``dvc push``/``pull``: check that the DVC remote's bucket answers with the configured credentials; after
``dvc push`` (or alone): audit that every file of the committed outputs is on the remote.

python -m xgov_digests.cli.check_remote [--write] [REMOTE]      # the default remote when REMOTE is not given
python -m xgov_digests.cli.check_remote --audit [--repair] [REMOTE]

--write (before a push) also writes and deletes a probe object under the remote's prefix, so a read-only token is
caught before DVC starts. Every request is bounded by storage.timeout (params.yaml).

--audit compares what dvc.lock's outputs name (each folder's .dir object and every file it lists) with one
paginated LIST of the remote's files/md5/ prefix: DVC itself trusts a present .dir object for the whole folder, so
'dvc push' says "Everything is up to date" while a file under it is gone. --repair uploads the missing objects
from the local DVC cache. --verify SHARE also downloads that share of the present objects (1 for all) and hashes
them: an object overwritten with other bytes is present but corrupt, named, and with --repair uploaded again from
a local copy that hashes right. Exit 1 names what is still missing or corrupt.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from xgov_digests.core.params import ParamsError, load_params
from xgov_digests.core.s3 import S3ConfigError, check_remote, reason


def run_audit(remote: str | None, timeout: float, repair: bool, verify: float = 0.0) -> int:
    from xgov_digests.operations.remote_audit import (
        AuditError,
        NotAudited,
        audit,
        committed_outputs,
        describe,
        open_store,
    )

    start = time.perf_counter()
    try:
        name, store, where = open_store(remote, timeout)
        result = audit(store, committed_outputs(), repair, verify=verify)
    except NotAudited as exc:
        print(f"check_remote: {exc}")
        return 0
    except (AuditError, S3ConfigError) as exc:
        print(f"check_remote: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - the remote failed mid-audit: one line, not a traceback
        print(f"check_remote: error: the audit of the remote could not finish: {reason(exc)}", file=sys.stderr)
        return 1
    took = time.perf_counter() - start
    print(
        f"check_remote: audit of remote '{name}' ({where}): {len(result.expected)} objects named by dvc.lock, "
        f"{result.listed} listed in {result.pages} page(s), missing {len(result.missing)}, re-uploaded "
        f"{len(result.repaired)}, still missing {len(result.still_missing)}, seconds {took:.2f}"
        + (f", verified {result.verified} (corrupt {len(result.corrupt)})" if verify else "")
    )
    if result.repaired:
        repaired = describe(result.repaired, result.expected)
        print(f"check_remote: re-uploaded what 'dvc push' had taken for present: {repaired}", file=sys.stderr)
    if result.still_missing:
        corrupt = set(result.corrupt)
        what = ("missing from the remote" if not corrupt & set(result.still_missing)
                else "missing from the remote or corrupt there (their bytes do not match their hash)")  # fmt: skip
        fix = "run 'make push' to re-upload them"
        if repair:
            fix = ("the local DVC cache does not hold them either: run 'dvc repro --force' of the stages named where "
                   "they can be rebuilt, then 'make push'")  # fmt: skip
        missing = describe(result.still_missing, result.expected)
        print(f"check_remote: error: {len(result.still_missing)} object(s) are {what}: {missing}; "
              f"{fix}", file=sys.stderr)  # fmt: skip
        return 1
    return 0


def share(text: str) -> float:
    """``--verify``'s value: a share of the objects, from just above 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a share between 0 and 1 (e.g. 0.05 for 5%%, 1 for all)")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xgov_digests.cli.check_remote", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("remote", nargs="?", help="DVC remote name (default: the default remote)")
    parser.add_argument("--write", action="store_true", help="also check that the credentials can write")
    parser.add_argument("--audit", action="store_true", help="check that every committed output is on the remote")
    parser.add_argument("--repair", action="store_true", help="with --audit: upload what is missing from the cache")
    parser.add_argument("--verify", type=share, default=0.0, metavar="SHARE",
                        help="with --audit: download and hash this share of the present objects (0-1; 1: all)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (default: params.yaml)")
    args = parser.parse_args(argv)
    try:
        timeout = load_params(args.params).storage.timeout
        if args.audit:
            return run_audit(args.remote, timeout, args.repair, args.verify)
        print(check_remote(args.remote, timeout=timeout, write=args.write))
    except (S3ConfigError, ParamsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
