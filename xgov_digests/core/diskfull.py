"""Disk full, named: ENOSPC anywhere a shard writes (TMPDIR clones, the workspace, the digest cache) stops the shard
with one line naming the path and the free space there. It is neither a network failure (``transient``) nor a bug
(``internal``): no row records it, and DVC records nothing for the stage."""

from __future__ import annotations

import errno
import shutil
import tempfile
from pathlib import Path

from xgov_digests.core.errors import XgovError

DISK_FULL_WORDS = ("no space left on device", "disk quota exceeded")


class DiskFull(XgovError, RuntimeError):
    """A write failed for lack of space at ``path``: the message says where and what to do."""

    exit_code = 1  # the machine's problem, not a usage error

    def __init__(self, path: str | Path) -> None:
        self.path = str(Path(path).absolute())
        super().__init__(describe(self.path))


def enospc(exc: BaseException | None) -> bool:
    """``exc`` (or what caused it) is an ENOSPC/EDQUOT error."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def says_disk_full(text: str) -> bool:
    """A child process's words (git's stderr) for a full disk."""
    low = text.lower()
    return any(w in low for w in DISK_FULL_WORDS)


def out_of_room(folder: str | Path, size: int = 65536) -> bool:
    """Whether ``size`` bytes can no longer be written in ``folder``: a probe for the failures whose words do not say
    so (git, out of space while writing its config, says only "could not set 'core.filemode'")."""
    try:
        with tempfile.TemporaryFile(dir=folder) as probe:
            probe.write(b"\0" * size)
            probe.flush()
    except OSError as exc:
        return enospc(exc)
    return False


def failed_path(exc: BaseException | None, default: str | Path) -> str:
    while exc is not None:
        if isinstance(exc, OSError) and exc.filename:
            return str(exc.filename)
        exc = exc.__cause__ or exc.__context__
    return str(default)


def describe(path: str) -> str:
    free = "unknown"
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = f"{shutil.disk_usage(probe).free / 1e6:.1f} MB free"
    except OSError:
        pass
    return (
        f"disk full: no space left on device writing {path} ({free} there): free some space, or point TMPDIR "
        f"(clones, now {tempfile.gettempdir()}) or ingest.cache at a larger disk, then run again"
    )
