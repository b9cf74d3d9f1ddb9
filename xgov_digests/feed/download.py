"""Downloading the feed's bytes: a local path, or an http(s) URL, bounded in time and in decoded size.

Each HTTP attempt has a total deadline (``feed.timeout``: the whole attempt, redirects, headers and body, not each
read), and the body is streamed and decoded here, so a server that drips, sends an endless body, lies in its
``Content-Length`` or sends a compression bomb costs at most ``feed.timeout`` seconds and ``feed.max_bytes`` of
memory. Redirects are followed by hand: each hop to another host is logged, the final URL is logged, and a redirect
from https to anything else is refused.

Retries wait a full-jitter backoff (a random time up to the exponential delay, so many callers that failed together
do not retry together), or what a 429/503's ``Retry-After`` asks for, capped at ``MAX_RETRY_AFTER_S``.

DVC decides whether ``fetch`` runs from the feed URL's validator (``ETag``, or ``Content-MD5``, ``Digest``,
``Last-Modified``, the headers fsspec's HTTP filesystem reads); a server that sends none of them would look unchanged
to DVC for ever, so ``require_validator`` turns that into a clear error.
"""

from __future__ import annotations

import email.utils
import logging
import signal
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import requests
import urllib3

from xgov_digests.core.backoff import jittered
from xgov_digests.core.errors import XgovError
from xgov_digests.core.logs import redact
from xgov_digests.core.params import FeedParams

log = logging.getLogger(__name__)
RETRY_STATUS = {429} | set(range(500, 600))
REDIRECT_STATUS = {301, 302, 303, 307, 308}
MAX_REDIRECTS = 10
DEFAULT_MAX_BYTES = FeedParams.max_bytes  # the real feed is ~20 MB decoded
CHUNK = 64 * 1024
STEP = 4 * 1024 * 1024  # decoded bytes per inflate call
ADVICE = "raise feed.max_bytes in params.yaml if the feed really is that large"
# the headers fsspec's HTTP filesystem records as a URL's checksum, the first present wins (DVC's URL dependency)
VALIDATORS = ("ETag", "Content-MD5", "Digest", "Last-Modified")
MAX_RETRY_AFTER_S = 60.0  # a Retry-After beyond this is cut to it (a feed attempt is bounded too: feed.timeout)


class FeedError(XgovError, RuntimeError):
    """The feed could not be fetched or holds no usable repository."""


class _Retry(Exception):
    """One attempt failed in a way worth another attempt; the message is safe to log."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (delta-seconds or an HTTP date), ``None`` when absent or
    unreadable; never negative."""
    text = (value or "").strip()
    if not text:
        return None
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def retry_delay(retry: int, base: float, asked: float | None) -> float:
    """Seconds before retry number ``retry``: what the server asked (capped at :data:`MAX_RETRY_AFTER_S`), else full
    jitter, uniform in [0, the exponential delay]."""
    if asked is not None:
        return min(asked, MAX_RETRY_AFTER_S)
    return jittered(retry, base)


def check_trackable(source: str) -> None:
    """Refuse a feed source DVC cannot track as the ``fetch`` stage's dependency: DVC reads ``file://x`` as a
    relative path named ``file:/x``."""
    if source.startswith("file://"):
        raise FeedError(
            f"feed.url {source!r} is a file:// URL, which DVC cannot track as fetch's dependency: "
            f"write the path itself ({source.removeprefix('file://')!r}) in params.yaml"
        )


class _Overdue(Exception):
    """The attempt's deadline passed (raised by the alarm, wherever the attempt was waiting)."""


@contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Raise :class:`_Overdue` in this thread once ``seconds`` have passed, even inside a blocking read.

    Uses ``SIGALRM`` (main thread only); elsewhere the read loop's own clock check is the bound."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise _Overdue

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class _Inflater:
    """One ``Content-Encoding`` (gzip or deflate) undone with bounded output: never more than asked for."""

    def __init__(self, encoding: str) -> None:
        self.gzip = encoding in ("gzip", "x-gzip")
        self.d: zlib._Decompress | None = None

    def _new(self, first: bytes) -> zlib._Decompress:
        if self.gzip:
            return zlib.decompressobj(31)
        # "deflate" is meant to be zlib-wrapped, but some servers send raw deflate: tell them apart by the header.
        wrapped = len(first) >= 2 and first[0] & 0x0F == 8 and (first[0] << 8 | first[1]) % 31 == 0
        return zlib.decompressobj(15 if wrapped else -15)

    def decode_into(self, body: bytearray, data: bytes, limit: int) -> None:
        """Append ``data`` decoded to ``body``, stopping once ``body`` holds more than ``limit`` bytes (so the caller
        sees the cap passed without more than one step beyond it ever being held)."""
        while data and len(body) <= limit:
            if self.d is None or self.d.eof:
                if self.d is not None and not self.gzip:
                    break  # bytes after the end of a deflate stream are ignored
                self.d = self._new(data)
            try:
                body += self.d.decompress(data, min(limit + 1 - len(body), STEP))
            except zlib.error as exc:
                raise FeedError(f"the feed's compressed body is corrupt ({exc})") from None
            data = self.d.unused_data if self.d.eof else self.d.unconsumed_tail

    @property
    def complete(self) -> bool:
        return self.d is not None and self.d.eof


def _encodings(resp: requests.Response, shown: str) -> _Inflater | None:
    header = resp.headers.get("Content-Encoding", "")
    codings = [c.strip().lower() for c in header.split(",") if c.strip() and c.strip().lower() != "identity"]
    if not codings:
        return None
    if len(codings) == 1 and codings[0] in ("gzip", "x-gzip", "deflate"):
        return _Inflater(codings[0])
    raise FeedError(
        f"feed {shown} is sent with Content-Encoding {header[:40]!r}: only one of gzip or deflate is decoded; "
        "check feed.url in params.yaml"
    )


def _too_big(shown: str, max_bytes: int, what: str = "once decoded") -> FeedError:
    return FeedError(f"feed {shown} is larger than feed.max_bytes ({max_bytes} bytes) {what}; {ADVICE}")


def _read_body(resp: requests.Response, shown: str, max_bytes: int, deadline: float) -> bytes:
    """The decoded body, streamed: at most ``max_bytes`` are ever held, decoded or not."""
    inflater = _encodings(resp, shown)
    length = resp.headers.get("Content-Length", "")
    if length.strip().isdigit() and int(length) > max_bytes:
        raise _too_big(shown, max_bytes, f"(its Content-Length is {int(length)})")
    body = bytearray()
    received = 0
    while chunk := resp.raw.read(CHUNK, decode_content=False):
        if time.monotonic() > deadline:
            raise _Overdue
        received += len(chunk)
        if received > max_bytes:
            raise _too_big(shown, max_bytes, "as sent")
        if inflater:
            inflater.decode_into(body, chunk, max_bytes)
        else:
            body += chunk
        if len(body) > max_bytes:
            raise _too_big(shown, max_bytes)
    if inflater and not inflater.complete:
        raise _Retry("the compressed body ended early")
    return bytes(body)


def _next_hop(resp: requests.Response, url: str, shown: str) -> str:
    """Where a redirect points, refusing https -> http and any scheme but http(s); logs a change of host."""
    target = urljoin(url, resp.headers.get("Location", ""))
    old, new = urlsplit(url), urlsplit(target)
    if new.scheme not in ("http", "https"):
        raise FeedError(f"feed {shown} redirects to a {new.scheme or 'relative'!r} URL; check feed.url in params.yaml")
    if old.scheme == "https" and new.scheme != "https":
        raise FeedError(
            f"feed {shown} redirects from https to {redact(target)}: refused (the feed would travel unencrypted); "
            "check feed.url in params.yaml"
        )
    if (new.hostname or "") != (old.hostname or ""):
        log.warning("feed redirects to another host", extra={"from": redact(url), "to": redact(target)})
    return target


def _check_validator(resp: requests.Response, source: str) -> None:
    if not any(resp.headers.get(name) for name in VALIDATORS):
        raise FeedError(
            f"feed {redact(source)} is served with none of the headers {', '.join(VALIDATORS)}: DVC tracks the feed "
            "URL by them and would never see this feed change; serve it with an ETag, or download it to a file "
            "first and set feed.url to that path (DVC tracks a file by its MD5)"
        )


def _attempt(
    session: requests.Session, source: str, timeout: float, max_bytes: int, require_validator: bool = False
) -> bytes:
    """One attempt: redirects, status and body, within ``timeout`` seconds in all."""
    shown = redact(source)
    deadline = time.monotonic() + timeout
    url = source
    with _deadline(timeout):
        for _ in range(MAX_REDIRECTS + 1):
            resp = session.get(
                url, timeout=timeout, stream=True, allow_redirects=False, headers={"Accept-Encoding": "gzip, deflate"}
            )
            with resp:
                if resp.status_code in REDIRECT_STATUS and resp.headers.get("Location"):
                    url = _next_hop(resp, url, shown)
                    continue
                if url != source:
                    log.info("feed redirected", extra={"from": shown, "final_url": redact(url)})
                if resp.status_code == 200:
                    if require_validator:
                        _check_validator(resp, source)
                    return _read_body(resp, shown, max_bytes, deadline)
                if resp.status_code in RETRY_STATUS:
                    raise _Retry(f"HTTP {resp.status_code}", retry_after(resp.headers.get("Retry-After")))
                raise FeedError(
                    f"feed {shown} answered HTTP {resp.status_code}; check feed.url in params.yaml (not retried)"
                )
    raise FeedError(f"feed {shown} redirects more than {MAX_REDIRECTS} times; check feed.url in params.yaml")


def _read_path(source: str, timeout: float, max_bytes: int) -> bytes:
    path = Path(source.removeprefix("file://"))
    try:
        with _deadline(timeout), path.open("rb") as fh:
            data = fh.read(max_bytes + 1)
    except _Overdue:
        raise FeedError(f"feed file {path} gave no end of data within feed.timeout ({timeout} s)") from None
    except OSError as exc:
        raise FeedError(f"cannot read feed file {path}: {exc.strerror or exc}; check feed.url in params.yaml") from exc
    if len(data) > max_bytes:
        raise FeedError(f"feed file {path} is larger than feed.max_bytes ({max_bytes} bytes); {ADVICE}")
    return data


def download(
    source: str,
    *,
    timeout: float = FeedParams.timeout,
    retries: int = FeedParams.retries,
    backoff: float = 1.0,
    max_bytes: int = DEFAULT_MAX_BYTES,
    require_validator: bool = False,
) -> bytes:
    """Return the feed's decoded bytes from an http(s) URL or a local path.

    Connection errors, a passed deadline, a cut-off body, 429 and 5xx are retried (full-jitter backoff, or the
    server's ``Retry-After``); other 4xx, a body over ``max_bytes`` and a refused redirect fail at once. With
    ``require_validator``, an HTTP answer with none of :data:`VALIDATORS` fails at once (see the module's doc)."""
    try:
        if not source.startswith(("http://", "https://")):
            return _read_path(source, timeout, max_bytes)
        return _download_url(source, timeout, retries, backoff, max_bytes, require_validator)
    except MemoryError:
        raise FeedError(f"the feed does not fit in this machine's memory; lower feed.max_bytes ({max_bytes})") from None


def _download_url(
    source: str, timeout: float, retries: int, backoff: float, max_bytes: int, require_validator: bool
) -> bytes:
    last, asked = "", None
    with requests.Session() as session:
        for attempt in range(retries + 1):
            if attempt:
                seconds = retry_delay(attempt, backoff, asked)
                log.warning(
                    "retrying feed download",
                    extra={"attempt": attempt, "delay_s": round(seconds, 3), "retry_after_s": asked, "reason": last},
                )
                time.sleep(seconds)
            asked = None
            try:
                return _attempt(session, source, timeout, max_bytes, require_validator)
            except _Overdue:
                last = f"no complete answer within feed.timeout ({timeout} s)"
            except _Retry as exc:
                last, asked = str(exc), exc.retry_after
            except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
                last = redact(f"{type(exc).__name__}: {exc}")
    raise FeedError(
        f"feed {redact(source)} failed after {retries + 1} attempts: {last}; check feed.url in "
        "params.yaml and that this machine reaches it (the last good snapshot is kept)"
    )
