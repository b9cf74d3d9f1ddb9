"""S3/R2 access shared with the DVC remote: DVC's own config, DVC's credential precedence, a deadline on every call.

Credentials are resolved as dvc-s3 resolves them for the remote: ``access_key_id``/``secret_access_key`` from any
DVC config level (``.dvc/config.local`` beats the environment, as in DVC), else the remote's ``profile``, else
botocore's chain (``AWS_*`` variables, shared credentials file, …). ``R2_ACCESS_KEY_ID``/``R2_SECRET_ACCESS_KEY``
count as the ``AWS_*`` variables when those are unset, as the Makefile maps them for DVC.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from xgov_digests.core.errors import XgovError
from xgov_digests.core.params import StorageParams

DVC_DIR = Path(".dvc")
ATTEMPTS = 3  # total attempts per request (botocore "standard" retries): a request gives up after ~3 x timeout
DEFAULT_TIMEOUT = StorageParams.timeout
# Recent botocore sends CRC checksums on every upload by default; R2 rejects some of them.
R2_BOTOCORE = {"request_checksum_calculation": "when_required", "response_checksum_validation": "when_required"}
NO_CREDENTIALS = (
    "no S3/R2 credentials: set R2_ACCESS_KEY_ID and R2_SECRET_ACCESS_KEY (or AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY), or put access_key_id/secret_access_key in .dvc/config.local "
    "(dvc remote modify --local <remote> access_key_id …)"
)
_BOTOCORE_SOURCES = {
    "env": "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (environment)",
    "shared-credentials-file": "the AWS shared credentials file",
    "config-file": "the AWS config file",
}


class S3ConfigError(XgovError, RuntimeError):
    """The remote is not configured or credentials are missing; the message says what to set."""


@dataclass(frozen=True)
class Credentials:
    key: str
    secret: str
    token: str | None
    source: str  # where they came from, for messages (never the values)


@dataclass(frozen=True)
class Remote:
    """A DVC S3 remote as DVC sees it: URL, endpoint, region and credentials."""

    name: str
    url: str
    bucket: str
    prefix: str
    endpoint: str | None
    region: str
    credentials: Credentials

    def client(self, timeout: float = DEFAULT_TIMEOUT, pool: int = 10) -> Any:
        """A boto3 S3 client whose every request has ``timeout`` to connect, ``timeout`` per read and
        :data:`ATTEMPTS` attempts in all."""
        import boto3
        from botocore.config import Config

        config = Config(
            connect_timeout=timeout,
            read_timeout=timeout,
            retries={"mode": "standard", "total_max_attempts": ATTEMPTS},
            max_pool_connections=max(10, pool),
            **R2_BOTOCORE,
        )
        c = self.credentials
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            config=config,
            aws_access_key_id=c.key,
            aws_secret_access_key=c.secret,
            aws_session_token=c.token,
        )

    def __str__(self) -> str:
        return f"remote '{self.name}': {self.url} at {self.endpoint or 'AWS S3'}"


def dvc_config(dvc_dir: Path = DVC_DIR) -> Any:
    """DVC's merged configuration (system, global, repo, local), loaded by DVC itself."""
    from dvc.config import Config, ConfigError

    try:
        return Config(dvc_dir=str(dvc_dir))
    except ConfigError as exc:
        raise S3ConfigError(f"DVC configuration: {exc}") from None


def remote_settings(name: str = "r2", dvc_dir: Path = DVC_DIR) -> dict[str, Any]:
    """The remote's settings as DVC merges them."""
    remote = dvc_config(dvc_dir)["remote"].get(name)
    if not remote or "url" not in remote:
        raise S3ConfigError(f"DVC remote '{name}' is not configured: run 'make r2 R2_ACCOUNT_ID=… R2_BUCKET=…'")
    return dict(remote)


def default_remote(dvc_dir: Path = DVC_DIR) -> str | None:
    return dvc_config(dvc_dir)["core"].get("remote")


def _config_level(name: str, dvc_dir: Path) -> str:
    """Which DVC config file holds the remote's access_key_id (for messages)."""
    from dvc.config import Config

    config = Config(dvc_dir=str(dvc_dir), validate=False)
    for level in ("local", "repo", "global", "system"):
        if config.load_one(level).get("remote", {}).get(name, {}).get("access_key_id"):
            return str(config.files[level])
    return "the DVC config"


def resolve_credentials(name: str, settings: dict[str, Any], dvc_dir: Path = DVC_DIR) -> Credentials:
    """The remote's credentials in dvc-s3's order of precedence, with their source."""
    if settings.get("access_key_id") and settings.get("secret_access_key"):
        return Credentials(
            settings["access_key_id"],
            settings["secret_access_key"],
            settings.get("session_token"),
            f"access_key_id/secret_access_key of remote '{name}' in {_config_level(name, dvc_dir)}",
        )
    if not (os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY")):
        key, secret = os.environ.get("R2_ACCESS_KEY_ID"), os.environ.get("R2_SECRET_ACCESS_KEY")
        if key and secret and not settings.get("profile"):
            return Credentials(key, secret, None, "R2_ACCESS_KEY_ID/R2_SECRET_ACCESS_KEY (environment)")
    import botocore.session

    profile = settings.get("profile")
    session = botocore.session.Session(profile=profile)
    try:
        found = session.get_credentials()
    except Exception as exc:  # noqa: BLE001 - a broken profile or credentials file
        raise S3ConfigError(f"{NO_CREDENTIALS} ({type(exc).__name__})") from None
    if found is None:
        raise S3ConfigError(NO_CREDENTIALS)
    frozen = found.get_frozen_credentials()
    source = _BOTOCORE_SOURCES.get(found.method, f"botocore ({found.method})")
    if profile:
        source = f"AWS profile '{profile}'"
    return Credentials(frozen.access_key, frozen.secret_key, frozen.token, source)


def open_remote(name: str = "r2", dvc_dir: Path = DVC_DIR) -> Remote:
    """The S3 remote ``name`` with its credentials; raises :class:`S3ConfigError` saying what to set."""
    settings = remote_settings(name, dvc_dir)
    url = str(settings["url"])
    if not url.startswith("s3://"):
        raise S3ConfigError(f"DVC remote '{name}' is {url}, not an s3:// remote")
    endpoint = settings.get("endpointurl")
    if not endpoint or "<" in endpoint:
        raise S3ConfigError(f"DVC remote '{name}' has no endpointurl: run 'make r2 R2_ACCOUNT_ID=… R2_BUCKET=…'")
    parts = urlsplit(url)
    creds = resolve_credentials(name, settings, dvc_dir)
    return Remote(name, url, parts.netloc, parts.path.strip("/"), endpoint, settings.get("region") or "auto", creds)


def bucket_url(name: str = "r2", dvc_dir: Path = DVC_DIR) -> tuple[str, str]:
    """(bucket, prefix) of the remote's ``s3://bucket/prefix`` URL."""
    parts = urlsplit(str(remote_settings(name, dvc_dir)["url"]))
    return parts.netloc, parts.path.strip("/")


def error_code(exc: BaseException) -> str:
    """The S3 error code (NoSuchBucket, AccessDenied, PreconditionFailed, …) of a botocore error, or ''."""
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def reason(exc: BaseException, secret: str | None = None) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text.replace(secret, "***") if secret else text


def private_local_config(dvc_dir: Path = DVC_DIR) -> str | None:
    """Make ``.dvc/config.local`` (where credentials may go) readable by its owner only; says so when it was not."""
    path = dvc_dir / "config.local"
    try:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            os.chmod(path, 0o600)
            return f"{path} was readable by others ({mode:o}): made it private (600), as it may hold credentials"
    except OSError:
        pass
    return None


def check_access(
    name: str | None = None, dvc_dir: Path = DVC_DIR, timeout: float = DEFAULT_TIMEOUT, write: bool = False
) -> str:
    """Before ``dvc push``/``pull``: for an S3 remote, credentials and endpoint are set, the bucket answers and, with
    ``write``, a probe object can be written and deleted under the remote's prefix.

    Returns a description of what was checked; raises :class:`S3ConfigError` saying what to fix."""
    name = name or default_remote(dvc_dir)
    if not name:
        raise S3ConfigError("no DVC remote given and no default remote: run 'make r2 …' or pass REMOTE=name")
    if note := private_local_config(dvc_dir):
        import sys

        print(f"warning: {note}", file=sys.stderr)
    url = str(remote_settings(name, dvc_dir)["url"])
    if not url.startswith("s3://"):
        return f"remote '{name}': {url} (not S3: not checked)"
    remote = open_remote(name, dvc_dir)
    client = remote.client(timeout)
    secret = remote.credentials.secret
    where = (
        f"bucket '{remote.bucket}' at {remote.endpoint} (remote '{name}', credentials from {remote.credentials.source})"
    )
    try:
        client.list_objects_v2(Bucket=remote.bucket, Prefix=f"{remote.prefix}/" if remote.prefix else "", MaxKeys=1)
    except Exception as exc:  # noqa: BLE001 - turned into one clear message
        raise S3ConfigError(
            f"cannot use {where}: {reason(exc, secret)}; check the endpoint (make r2 R2_ACCOUNT_ID=…), the bucket "
            "name and the credentials"
        ) from None
    if not write:
        return f"{remote}: readable; write access not checked (credentials from {remote.credentials.source})"
    probe = f"{remote.prefix}/.write-probe-{uuid.uuid4().hex}" if remote.prefix else f".write-probe-{uuid.uuid4().hex}"
    try:
        client.put_object(Bucket=remote.bucket, Key=probe, Body=b"")
        client.delete_object(Bucket=remote.bucket, Key=probe)
    except Exception as exc:  # noqa: BLE001
        raise S3ConfigError(
            f"cannot write to {where}: {reason(exc, secret)}; the token may read but not write: give it write "
            f"access to '{remote.bucket}' (probe object {probe})"
        ) from None
    return f"{remote}: readable and writable (probe written and deleted; credentials from {remote.credentials.source})"
