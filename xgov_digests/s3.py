"""S3/R2 settings shared with the DVC remote: endpoint and region from ``.dvc/config``, credentials from the
environment (or ``.dvc/config.local``), never from a committed file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from configobj import ConfigObj

DVC_DIR = Path(".dvc")
# Recent botocore sends CRC checksums on every upload by default; R2 rejects some of them.
R2_BOTOCORE = {"request_checksum_calculation": "when_required", "response_checksum_validation": "when_required"}


class S3ConfigError(RuntimeError):
    """The remote is not configured or credentials are missing; the message says what to set."""


def remote_settings(name: str = "r2", dvc_dir: Path = DVC_DIR) -> dict[str, str]:
    """The ``remote "<name>"`` section of ``.dvc/config`` overlaid with ``.dvc/config.local``."""
    section = f'remote "{name}"'
    merged: dict[str, str] = {}
    for fname in ("config", "config.local"):
        path = dvc_dir / fname
        if path.exists():
            merged.update(ConfigObj(str(path)).get(section, {}))
    if "url" not in merged:
        raise S3ConfigError(f"DVC remote '{name}' is not configured: run 'make r2 R2_ACCOUNT_ID=… R2_BUCKET=…'")
    return merged


def credentials(settings: dict[str, str] | None = None) -> tuple[str, str]:
    """(key id, secret) from AWS_* or R2_* variables, else from ``.dvc/config.local``."""
    settings = settings or {}
    for key_var, secret_var in (
        ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
        ("R2_ACCESS_KEY_ID", "R2_SECRET_ACCESS_KEY"),
    ):
        if os.environ.get(key_var) and os.environ.get(secret_var):
            return os.environ[key_var], os.environ[secret_var]
    if settings.get("access_key_id") and settings.get("secret_access_key"):
        return settings["access_key_id"], settings["secret_access_key"]
    raise S3ConfigError(
        "no S3/R2 credentials: set R2_ACCESS_KEY_ID and R2_SECRET_ACCESS_KEY (or AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY), or put access_key_id/secret_access_key in .dvc/config.local"
    )


def storage_options(name: str = "r2", dvc_dir: Path = DVC_DIR) -> dict[str, Any]:
    """Keyword arguments for ``s3fs.S3FileSystem`` that reach the same bucket and endpoint as the DVC remote."""
    settings = remote_settings(name, dvc_dir)
    key, secret = credentials(settings)
    endpoint = settings.get("endpointurl")
    if not endpoint or "<" in endpoint:
        raise S3ConfigError(f"DVC remote '{name}' has no endpointurl: run 'make r2 R2_ACCOUNT_ID=… R2_BUCKET=…'")
    return {
        "key": key,
        "secret": secret,
        "endpoint_url": endpoint,
        "client_kwargs": {"region_name": settings.get("region", "auto")},
        "config_kwargs": dict(R2_BOTOCORE),
    }


def bucket_url(name: str = "r2", dvc_dir: Path = DVC_DIR) -> tuple[str, str]:
    """(bucket, prefix) of the remote's ``s3://bucket/prefix`` URL."""
    parts = urlsplit(remote_settings(name, dvc_dir)["url"])
    return parts.netloc, parts.path.strip("/")


def default_remote(dvc_dir: Path = DVC_DIR) -> str | None:
    name = None
    for fname in ("config", "config.local"):
        path = dvc_dir / fname
        if path.exists():
            name = ConfigObj(str(path)).get("core", {}).get("remote", name)
    return name


def check_remote(name: str | None = None, dvc_dir: Path = DVC_DIR, timeout: float = 10.0) -> str:
    """Before ``dvc push``/``pull``: for an S3 remote, credentials and endpoint are set and the bucket answers.

    Returns a one-line description; raises :class:`S3ConfigError` saying what to set."""
    name = name or default_remote(dvc_dir)
    if not name:
        raise S3ConfigError("no DVC remote given and no default remote: run 'make r2 …' or pass REMOTE=name")
    url = remote_settings(name, dvc_dir)["url"]
    if not url.startswith("s3://"):
        return f"remote '{name}': {url}"
    options = storage_options(name, dvc_dir)
    import s3fs

    options["config_kwargs"].update(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 1})
    fs = s3fs.S3FileSystem(**options)
    bucket = urlsplit(url).netloc
    try:
        fs.ls(bucket, refresh=True)
    except Exception as exc:  # noqa: BLE001 - turned into one clear message
        reason = f"{type(exc).__name__}: {exc}".replace(options["secret"], "***")
        raise S3ConfigError(
            f"cannot use bucket '{bucket}' at {options['endpoint_url']} (remote '{name}'): {reason}; "
            "check the endpoint (make r2 R2_ACCOUNT_ID=…), the bucket name and the credentials"
        ) from None
    return f"remote '{name}': {url} at {options['endpoint_url']}"
