"""The one exception base: every error the user can act on (a bad params.yaml, a missing manifest, a full disk, a
remote without credentials, ...) is an ``XgovError`` subclass, turned into its ``exit_code`` and one line where it
is caught by type, once: by ``xgov_digests.commands.main`` for the command's verbs and by each stage's ``main`` in
``stages/``. It lives in ``core`` so that every wing, the cheap ones included, can derive its own errors from it
without importing the command layer; a wing's error keeps its older base too (``ValueError``, ``RuntimeError``)
where code catches it by that.
"""

from __future__ import annotations


class XgovError(Exception):
    """An error the user can act on: the message says what went wrong and what to do next."""

    exit_code = 2

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code
