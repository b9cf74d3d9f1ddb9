"""The one exception base of the project's command: every error a verb reports is an ``XgovError`` (or a subclass
of it), turned into its ``exit_code`` and one line by ``xgov_digests.commands.main``, the only place that catches it.
It lives in ``core`` so that every wing, the cheap ones included, can derive its own errors from it without importing
the command layer.
"""

from __future__ import annotations


class XgovError(Exception):
    """An error the user can act on: the message says what went wrong and what to do next."""

    exit_code = 2

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code
