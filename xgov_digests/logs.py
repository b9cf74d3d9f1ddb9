"""JSON-lines logging on stderr, with per-run context (batch size, offset) on every line."""

from __future__ import annotations

import json
import logging
import re
import sys
from typing import Any

_CREDENTIALS_RE = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")
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
        entry.update({k: v for k, v in record.__dict__.items() if k not in _RESERVED})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def _forward_loguru(message: Any) -> None:
    """Loguru sink: hand gitingest's warnings to stdlib logging, so they are JSON lines too."""
    record = message.record
    logging.getLogger("gitingest").log(record["level"].no, record["message"])


def setup_logging(level: int = logging.INFO, **context: Any) -> None:
    """Send JSON lines to stderr and keep gitingest (loguru) at WARNING and above.

    gitingest reconfigures the root logger and loguru when imported; call this after importing it.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(context))
    logging.basicConfig(handlers=[handler], level=level, force=True)
    for noisy in ("urllib3", "botocore", "s3fs", "aiobotocore", "fsspec"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        from loguru import logger as loguru_logger
    except ImportError:  # gitingest not installed: nothing to quiet
        return
    loguru_logger.remove()
    loguru_logger.add(_forward_loguru, level="WARNING", format="{message}")
