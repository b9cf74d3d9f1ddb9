"""``xgov-digests r2 --account-id ID --bucket NAME [--prefix dvc] [--endpoint URL]``: point the DVC remote ``r2``
at your Cloudflare R2 bucket, with R2's settings, as the default remote, for plain ``dvc`` as much as for the verbs.

dvc-s3 hands the remote's ``configpath`` to botocore as its AWS config file, whose profiles carry R2's checksum
settings (no credentials: those stay in the environment, ``.dvc/config.local`` or an AWS profile)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from xgov_digests.commands.common import git
from xgov_digests.core.errors import XgovError
from xgov_digests.operations import dvc

AWS_CONFIG = ".dvc/r2-aws.config"
CHECKSUMS = "request_checksum_calculation = when_required\nresponse_checksum_validation = when_required\n"
CONFIG_TEXT = (
    "# AWS config file of the DVC remote 'r2' (its configpath), written by make r2: no credentials here.\n"
    "# botocore >= 1.36 sends CRC checksums R2 rejects; these send them only where an API requires one. [default]\n"
    "# serves AWS_* or config.local keys; [profile r2] a remote with profile = r2 (keys in ~/.aws/credentials [r2]).\n"
    f"[default]\n{CHECKSUMS}\n[profile r2]\n{CHECKSUMS}"
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("r2", help="point the 'r2' remote at your R2 bucket, as the default", description=__doc__)
    parser.add_argument("--account-id", default="", help="your Cloudflare account id (gives the endpoint)")
    parser.add_argument("--bucket", default="", help="your R2 bucket's name")
    parser.add_argument("--prefix", default="dvc", help="the folder in the bucket (default dvc)")
    parser.add_argument(
        "--endpoint", default="", help="another endpoint (e.g. https://<id>.eu.r2.cloudflarestorage.com)"
    )
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> None:
    if not (args.account_id or args.endpoint):
        raise XgovError("set R2_ACCOUNT_ID=<your Cloudflare account id> (or R2_ENDPOINT=<url>)")
    if not args.bucket:
        raise XgovError("set R2_BUCKET=<your R2 bucket name>")
    endpoint = args.endpoint or f"https://{args.account_id}.r2.cloudflarestorage.com"
    Path(AWS_CONFIG).write_text(CONFIG_TEXT, encoding="utf-8")
    for key, value in (
        ("url", f"s3://{args.bucket}/{args.prefix}"),
        ("endpointurl", endpoint),
        ("region", "auto"),
        ("configpath", AWS_CONFIG),
    ):
        dvc.must(["remote", "modify", "r2", key, value])
    dvc.must(["remote", "default", "r2"])
    local = Path(".dvc/config.local")  # credentials may go here: readable by its owner only
    local.touch()
    os.chmod(local, 0o600)
    git("add", ".dvc/config", AWS_CONFIG, check=False)
    print(
        f"remote 'r2' -> s3://{args.bucket}/{args.prefix} on {endpoint} (default; R2's checksum settings in "
        f"{AWS_CONFIG}; .dvc/config and {AWS_CONFIG} staged for git)."
    )
    print(
        "Credentials as dvc-s3 reads them: export AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... (or "
        ".dvc/config.local, or an AWS profile); then plain dvc push / dvc pull, or make push"
    )
