"""Check and repair DVC's own state files before a ``dvc`` command runs, so a killed run never bricks the next one.

DVC writes ``dvc.lock`` and ``.dvc/tmp/rwlock`` in place (open with ``O_TRUNC``, then write): a ``kill -9`` between
two writes leaves them cut short, and every later ``dvc`` command refuses to run (for the rwlock upstream:
https://github.com/treeverse/dvc/issues/7615). Under the repo lock that DVC itself takes (``.dvc/tmp/lock``), this
module

- keeps a copy of the last ``dvc.lock`` that parsed and was complete (``.dvc/tmp/dvc.lock.good``);
- rebuilds a cut-short ``dvc.lock`` from the stages it holds in full plus the rest from that copy (or from git's
  ``HEAD:dvc.lock``), writing it atomically, and says which stages came from where;
- clears an empty or corrupt ``rwlock`` when no live ``dvc`` process works in the workspace, and drops the entries
  of dead processes;
- removes the 0-byte ``*.tmp`` files a killed ``dvc`` leaves in the DVC cache.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xgov_digests.core.errors import XgovError

log = logging.getLogger("xgov_digests.operations.dvc_repair")

LOCK_FILE = "dvc.lock"
GOOD_COPY = ".dvc/tmp/dvc.lock.good"
BROKEN_COPY = ".dvc/tmp/dvc.lock.broken"
RWLOCK = ".dvc/tmp/rwlock"
RWLOCK_GUARD = ".dvc/tmp/rwlock.lock"
REPO_LOCK = ".dvc/tmp/lock"
CACHE = ".dvc/cache"
LOCK_WAIT = 600.0  # seconds to wait for DVC's repo lock (another dvc command holds it while it writes)
TMP_AGE = 60.0  # a 0-byte cache *.tmp file older than this is a dead writer's
STAGE_HEADER = re.compile(r"^  (\S[^\n]*):\n", re.M)  # a stage's line under 'stages:' as DVC dumps it


class RepairError(XgovError, RuntimeError):
    """The state files could not be checked (the repo lock stayed taken): the message says what to do."""


@dataclass
class Report:
    """What one check found and did: warnings for the user (one line each)."""

    warnings: list[str] = field(default_factory=list)
    saved: bool = False


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.repair")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextlib.contextmanager
def _file_lock(path: Path, wait: float) -> Iterator[None]:
    """DVC's own lock file (zc.lockfile: an fcntl lock that dies with its holder), taken with retries."""
    import zc.lockfile

    deadline = time.monotonic() + wait
    while True:
        try:
            lock = zc.lockfile.LockFile(str(path))
            break
        except zc.lockfile.LockError:
            if time.monotonic() >= deadline:
                raise RepairError(
                    f"{path} stayed locked for {wait:.0f}s: another dvc command is running in this workspace; "
                    "let it finish (or stop it) and run again"
                ) from None
            time.sleep(0.1)
    try:
        yield
    finally:
        lock.close()


def _stages(text: str, schema: bool = False) -> dict[str, Any] | None:
    """The ``stages`` mapping of a lock file's text when it parses (and, with ``schema``, DVC's schema accepts it:
    the import costs a third of a second, so only a rebuilt file is checked so)."""
    from ruamel.yaml import YAML

    try:
        data = YAML(typ="safe").load(text)
        if not isinstance(data, dict):
            return None
        if schema:
            from dvc.schema import COMPILED_LOCKFILE_SCHEMA

            COMPILED_LOCKFILE_SCHEMA(data)
    except Exception:  # noqa: BLE001 - any parse or schema error means: not usable as it is
        return None
    stages = data.get("stages") or {}
    return stages if isinstance(stages, dict) else None


def _complete_stage(entry: Any) -> bool:
    """A stage entry as DVC writes a finished one: cmd first, outs last, every out with its hash and size."""
    if not isinstance(entry, dict) or not isinstance(entry.get("cmd"), str) or not entry.get("outs"):
        return False
    for out in [*entry.get("deps", []), *entry["outs"]]:
        if not isinstance(out, dict) or not isinstance(out.get("path"), str):
            return False
        if not isinstance(out.get("md5"), str) or not isinstance(out.get("size"), int):
            return False
        if str(out["md5"]).endswith(".dir") and "nfiles" not in out:
            return False
    return True


def declared_outputs(root: Path) -> dict[str, int]:
    """How many outputs each stage of ``dvc.yaml`` declares (its outs, metrics and plots, which dvc.lock lists
    together under ``outs``), by stage name (a ``foreach`` stage's count under its base name); {} when unreadable."""
    from ruamel.yaml import YAML

    try:
        stages = YAML(typ="safe").load((root / "dvc.yaml").read_text(encoding="utf-8")).get("stages") or {}
        counts = {}
        for name, stage in stages.items():
            body = stage.get("do", {}) if "foreach" in stage else stage
            counts[name] = sum(len(body.get(key) or []) for key in ("outs", "metrics", "plots"))
        return counts
    except Exception:  # noqa: BLE001 - no count is no check: DVC names a broken dvc.yaml itself
        return {}


def lock_problem(text: str, declared: dict[str, int] | None = None) -> str | None:
    """Why ``dvc.lock``'s text is not a whole file DVC wrote (None: it is). ``declared`` (``declared_outputs``):
    a last stage with fewer outputs than dvc.yaml declares was cut between two of them, where the text still
    parses and every output written is whole."""
    if not text.strip():
        return "it is empty"
    stages = _stages(text)
    if stages is None:
        return "it does not parse as a DVC lock file"
    if not text.endswith("\n"):
        return "it ends mid-line"
    if stages:
        name, last = list(stages.items())[-1]
        if not _complete_stage(last):
            return f"its last stage '{name}' is incomplete"
        if len(last["outs"]) < (declared or {}).get(name.split("@")[0], 0):
            return f"its last stage '{name}' lists {len(last['outs'])} of its outputs"
    return None


def _whole_stages(text: str) -> dict[str, Any]:
    """The stages of a cut-short lock file that were written in full: everything before the last stage begun."""
    heads = list(STAGE_HEADER.finditer(text))
    for cut in range(len(heads) - 1, -1, -1):
        stages = _stages(text[: heads[cut].start()], schema=True)
        if stages is not None and all(_complete_stage(e) for e in stages.values()):
            return stages
    return {}


def _dump(stages: dict[str, Any]) -> bytes:
    import io

    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.default_flow_style = False
    buf = io.StringIO()
    yaml.dump({"schema": "2.0", "stages": stages}, buf)
    return buf.getvalue().encode()


def _git_head_lock(root: Path) -> str | None:
    try:
        out = subprocess.run(["git", "show", f"HEAD:{LOCK_FILE}"], cwd=root, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 and lock_problem(out.stdout) is None else None


def _repair_lock(root: Path, report: Report) -> None:
    lock, good = root / LOCK_FILE, root / GOOD_COPY
    if not lock.exists():
        return
    data = lock.read_bytes()
    saved = good.read_bytes() if good.exists() else None
    if saved == data:
        return  # the good copy is only ever written after the same check: these bytes passed it
    text = data.decode("utf-8", errors="replace")
    declared = declared_outputs(root)
    problem = lock_problem(text, declared)
    if problem is None:
        good.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(good, data)
        report.saved = True
        return
    fallback, source = None, ""
    if saved is not None and lock_problem(saved_text := saved.decode("utf-8", errors="replace"), declared) is None:
        fallback = saved_text
        source = f"the last good copy {GOOD_COPY} ({time.strftime('%H:%M:%S', time.localtime(good.stat().st_mtime))})"
    elif (head := _git_head_lock(root)) is not None:
        fallback, source = head, "git's HEAD:dvc.lock"
    kept = _whole_stages(text)
    older = {k: v for k, v in (_stages(fallback, schema=True) or {}).items() if k not in kept} if fallback else {}
    merged = {**kept, **older}
    (root / BROKEN_COPY).parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(root / BROKEN_COPY, text.encode())
    if merged:
        _atomic_write(lock, _dump(merged))
        _atomic_write(good, lock.read_bytes())
    else:
        lock.unlink()
    names = ", ".join(older) or "none"
    report.warnings.append(
        f"dvc.lock was cut short by a killed dvc ({problem}; DVC writes it in place): rebuilt it from the "
        f"{len(kept)} stage(s) written in full and {len(older)} from {source or 'nothing (no good copy, no git)'} "
        f"({names}); stages whose outputs differ from that record run again or come from DVC's run-cache "
        f"(the cut file is kept as {BROKEN_COPY})"
    )


def dvc_processes(root: Path) -> list[int]:
    """PIDs of live ``dvc`` processes working in ``root`` (this process excluded)."""
    import psutil

    found = []
    real = os.path.realpath(root)
    for proc in psutil.process_iter(["pid", "cmdline", "cwd"]):
        info = proc.info
        if info["pid"] == os.getpid() or not info.get("cmdline") or info.get("cwd") is None:
            continue
        argv = info["cmdline"]
        is_dvc = any(os.path.basename(a) == "dvc" for a in argv[:2]) or argv[1:3] == ["-m", "dvc"]
        if is_dvc and os.path.realpath(info["cwd"]) == real:
            found.append(info["pid"])
    return found


def _repair_rwlock(root: Path, report: Report, live: list[int]) -> None:
    import psutil

    path = root / RWLOCK
    if not path.exists():
        return
    with _file_lock(root / RWLOCK_GUARD, LOCK_WAIT):
        raw = path.read_bytes()
        try:
            data = json.loads(raw)
            if not isinstance(data, dict):
                raise ValueError("not an object")
        except ValueError:
            if live:
                report.warnings.append(
                    f"{RWLOCK} is {'empty' if not raw.strip() else 'corrupt'} but dvc processes {live} still run in "
                    "this workspace: left as it is (stop them, then run again)"
                )
                return
            _atomic_write(path, b"{}")
            report.warnings.append(
                f"{RWLOCK} was {'empty' if not raw.strip() else 'corrupt'} (a dvc process was killed while writing "
                "it) and no dvc process runs here: cleared it"
            )
            return
        old_write = data.get("write") or {}
        write = {p: i for p, i in old_write.items() if _alive(i, psutil)}
        dropped = len(old_write) - len(write)
        read: dict[str, list[Any]] = {}
        for p, infos in (data.get("read") or {}).items():
            keep = [i for i in infos if _alive(i, psutil)]
            dropped += len(infos) - len(keep)
            if keep:
                read[p] = keep
        if dropped:
            _atomic_write(path, json.dumps({"write": write, "read": read}).encode())
            log.info("dropped rwlock entries of dead processes", extra={"entries": dropped})


def _alive(info: Any, psutil: Any) -> bool:
    try:
        return bool(psutil.pid_exists(int(info["pid"])))
    except (TypeError, KeyError, ValueError):
        return False


def _remove_dead_tmp(root: Path) -> int:
    cache = root / CACHE
    removed, now = 0, time.time()
    if not cache.is_dir():
        return 0
    for dirpath, _dirs, files in os.walk(cache):
        for name in files:
            if not name.endswith(".tmp"):
                continue
            p = Path(dirpath, name)
            with contextlib.suppress(OSError):
                st = p.stat()
                if st.st_size == 0 and now - st.st_mtime > TMP_AGE:
                    p.unlink()
                    removed += 1
    return removed


def check(root: Path = Path("."), wait: float = LOCK_WAIT) -> Report:
    """Check (and repair) dvc.lock, the rwlock and the cache's temp files; keep the last good dvc.lock."""
    report = Report()
    if not (root / ".dvc").is_dir():
        return report
    (root / REPO_LOCK).parent.mkdir(parents=True, exist_ok=True)
    live = dvc_processes(root)
    with _file_lock(root / REPO_LOCK, wait):
        _repair_lock(root, report)
        _repair_rwlock(root, report, live)
        if not live and (n := _remove_dead_tmp(root)):
            log.info("removed empty temp files of killed dvc processes from the DVC cache", extra={"files": n})
    return report
