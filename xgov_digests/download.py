"""Downloading the feed's bytes: a local path, or an http(s) URL with a timeout and retries."""

from __future__ import annotations

import logging
from pathlib import Path

import requests

from xgov_digests.backoff import attempts
from xgov_digests.logs import redact

log = logging.getLogger(__name__)
RETRY_STATUS = {429} | set(range(500, 600))


class FeedError(RuntimeError):
    """The feed could not be fetched or holds no usable repository."""


def download(source: str, *, timeout: float = 60.0, retries: int = 4, backoff: float = 1.0) -> bytes:
    """Return the feed's bytes from an http(s) URL or a local path.

    Connection errors, timeouts, 429 and 5xx are retried with exponential backoff; other 4xx fail at once.
    """
    if not source.startswith(("http://", "https://")):
        path = Path(source.removeprefix("file://"))
        try:
            return path.read_bytes()
        except OSError as exc:
            raise FeedError(
                f"cannot read feed file {path}: {exc.strerror or exc}; check feed.url in params.yaml"
            ) from exc
    last = ""

    def on_retry(attempt: int, seconds: float) -> None:
        log.warning("retrying feed download", extra={"attempt": attempt, "delay_s": seconds, "reason": last})

    shown = redact(source)
    for _ in attempts(retries, backoff, on_retry):
        try:
            resp = requests.get(source, timeout=timeout)
        except requests.RequestException as exc:
            last = redact(f"{type(exc).__name__}: {exc}")
            continue
        if resp.status_code == 200:
            return resp.content
        if resp.status_code not in RETRY_STATUS:
            raise FeedError(
                f"feed {shown} answered HTTP {resp.status_code}; check feed.url in params.yaml (not retried)"
            )
        last = f"HTTP {resp.status_code}"
    raise FeedError(f"feed {shown} failed after {retries + 1} attempts: {last}")
