"""Removing a checkout whatever it holds: folders nested past Python's recursion limit, read-only folders."""

from __future__ import annotations

import logging
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def _make_writable(func: object, path: str, exc_info: object) -> None:
    """``shutil.rmtree``'s error handler: open up the parent folder (and the path), then retry once."""
    for target in (os.path.dirname(path), path):
        try:
            mode = os.lstat(target).st_mode
            if stat.S_ISDIR(mode):
                os.chmod(target, stat.S_IMODE(mode) | stat.S_IRWXU)
        except OSError:
            pass
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            _rmtree(path, _give_up)
        else:
            os.unlink(path)
    except OSError:
        pass


def _give_up(func: object, path: str, exc_info: object) -> None:
    pass


def _rmtree(path: str | Path, handler: Callable[[Any, str, Any], None]) -> None:
    if sys.version_info >= (3, 12):  # onerror is deprecated there; onexc gets the exception instead of exc_info
        shutil.rmtree(path, onexc=handler)
    else:
        shutil.rmtree(path, onerror=handler)


def remove_tree(path: Path) -> bool:
    """Remove ``path``; True when it is gone. Logs an error naming the path when it cannot be removed."""
    if not os.path.lexists(path):
        return True
    try:
        _rmtree(path, _make_writable)
    except (OSError, RecursionError):
        pass
    if os.path.lexists(path):  # deeper than shutil's recursion: the system's tools walk it without recursing
        subprocess.run(["chmod", "-R", "u+rwx", "--", str(path)], capture_output=True, check=False)
        subprocess.run(["rm", "-rf", "--", str(path)], capture_output=True, check=False)
    if os.path.lexists(path):
        log.error("could not remove a checkout: remove it by hand", extra={"path": str(path)})
        return False
    return True
