"""Logging on stderr: short human lines on a terminal, JSON lines otherwise, with per-run context on every line.

``XGOV_LOG_FORMAT=json`` or ``human`` chooses the format whatever stderr is (``auto``, the default, picks by
whether stderr is a terminal): CI and the nightly workflow get JSON lines either way, as they are not terminals.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from typing import Any, TextIO

FORMAT_ENV = "XGOV_LOG_FORMAT"
FORMATS = ("auto", "json", "human")
# A record's ``human`` attribute is its one-line form for people ("" when the command prints that line itself);
# JSON lines carry the message and fields instead.
HUMAN = "human"

_CREDENTIALS_RE = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")
_NEWLINES = re.compile(r"\s*[\r\n]+\s*")
_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def redact(text: str) -> str:
    """Replace ``user:token@`` in any URL inside ``text`` with ``***@``."""
    return _CREDENTIALS_RE.sub(r"\g<scheme>***@", text)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, context and ``extra`` fields."""

    def __init__(self, context: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.context = dict(context or {})

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(self.context)
        entry.update({k: v for k, v in record.__dict__.items() if k not in _RESERVED and k != HUMAN})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def _short_url(url: str) -> str:
    """``https://github.com/alphagov/x`` -> ``alphagov/x``: the repo, as a person names it."""
    parts = [p for p in url.rstrip("/").split("/") if p]
    return "/".join(parts[-2:]) if "://" in url and len(parts) >= 3 else url


def _prefix(context: dict[str, Any]) -> str:
    if "offset" in context and "batch_size" in context:
        return f"shard {context['offset']}/{context['batch_size']}  "
    return f"{context['stage']}: " if "stage" in context else ""


class HumanFormatter(logging.Formatter):
    """One short line per record: ``shard 3/10  warning: repo failed  alphagov/x  error=…``."""

    def __init__(self, context: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.prefix = _prefix(dict(context or {}))

    def format(self, record: logging.LogRecord) -> str:
        level = "" if record.levelno < logging.WARNING else f"{record.levelname.lower()}: "
        text = getattr(record, HUMAN, None)
        if text is None:
            fields = {k: v for k, v in record.__dict__.items() if k not in _RESERVED and k != HUMAN}
            shown = [_short_url(str(v)) if k == "url" else f"{k}={v}" for k, v in fields.items()]
            text = "  ".join([record.getMessage(), *shown])
        line = f"{self.prefix}{level}{_NEWLINES.sub(' ', str(text).strip())}"  # one record, one line
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class _PeopleFilter(logging.Filter):
    """On a terminal: the stages' own lines and every warning; the library's per-repo notes stay in JSON only."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, HUMAN, None) == "":  # the command prints its own line for people
            return False
        return record.levelno >= logging.WARNING or record.name.startswith("stages")


def log_format(stream: TextIO | None = None) -> str:
    """``json`` or ``human``: ``XGOV_LOG_FORMAT`` when set to either, else human exactly when ``stream`` is a tty."""
    wanted = os.environ.get(FORMAT_ENV, "auto").strip().lower() or "auto"
    if wanted not in FORMATS:
        print(
            f"error: {FORMAT_ENV}={wanted!r} is not one of {', '.join(FORMATS)}: unset it or pick one", file=sys.stderr
        )
        raise SystemExit(2)
    if wanted != "auto":
        return wanted
    stream = stream or sys.stderr
    try:
        return "human" if stream.isatty() else "json"
    except (AttributeError, ValueError):  # a closed or replaced stream
        return "json"


def _forward_loguru(message: Any) -> None:
    """Loguru sink: hand gitingest's warnings to stdlib logging, so they are JSON lines too."""
    record = message.record
    logging.getLogger("gitingest").log(record["level"].no, record["message"])


def setup_logging(level: int = logging.INFO, **context: Any) -> None:
    """Send log lines to stderr (human or JSON, see ``log_format``) and keep gitingest (loguru) at WARNING and up.

    gitingest reconfigures the root logger and loguru when imported; call this after importing it. Where loguru is
    not loaded yet there is nothing to quiet (gitingest's import would set its own sinks anyway), and it is not
    loaded for this: a shard process, which never imports gitingest, saves its 70 ms.
    """
    handler = logging.StreamHandler(sys.stderr)
    if log_format(sys.stderr) == "human":
        handler.setFormatter(HumanFormatter(context))
        handler.addFilter(_PeopleFilter())
    else:
        handler.setFormatter(JsonFormatter(context))
    logging.basicConfig(handlers=[handler], level=level, force=True)
    for noisy in ("urllib3", "botocore", "s3fs", "aiobotocore", "fsspec"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    loguru = sys.modules.get("loguru")
    if loguru is None:
        return
    loguru.logger.remove()
    loguru.logger.add(_forward_loguru, level="WARNING", format="{message}")
