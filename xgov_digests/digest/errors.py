"""The digest wing's errors, importable without the digest code (gitingest, multiprocessing): the shard catches them
by type while it loads the digest code only on its first cache miss (``xgov_digests.shard.run``).

A digest's own failures (a timeout, a dead process, a bug) are one repo's failed row, not the user's to act on:
they are plain ``RuntimeError``. An environment that cannot make digests is the user's: ``EnvironmentMismatch`` is
an :class:`~xgov_digests.core.errors.XgovError`.
"""

from __future__ import annotations

from xgov_digests.core.errors import XgovError


class DigestTimeout(RuntimeError):
    """The digest ran past ``ingest.digest_timeout``; its process was killed."""


class DigestStopped(RuntimeError):
    """The digest's process died, or the pool closed (the shard is stopping), before it answered."""


class DigestBug(RuntimeError):
    """The digest code raised; the message carries the child's traceback."""


class EnvironmentMismatch(XgovError, RuntimeError):
    """The installed versions are not the ones the shard's DVC key records: digests made here would lie."""
