"""Scale-out checks and the coordinator's collect: which offsets exist, which tracked params changed, and which
shards the remote's run-cache holds (and which had to be digested on the coordinator)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ruamel.yaml import YAML

from xgov_digests.core.errors import XgovError

DVC = [sys.executable, "-m", "dvc"]
# collect's probe runs `dvc repro --pull` to restore the shards the remote's run-cache holds; a shard it lacks, DVC
# runs, and its command (dvc.yaml's `PYTHONHASHSEED=0 python -m stages.shard ... --offset K`) must digest nothing.
# The probe puts this program first on PATH as `python`: it says so and fails, so DVC records nothing for that shard.
# The stage's own code knows nothing of the probe, and its command (part of the run-cache key) is the same.
PROBE_PROGRAM = """#!/bin/sh
offset=?
while [ $# -gt 0 ]; do
  if [ "$1" = --offset ]; then offset=$2; fi
  shift
done
echo "shard@$offset: not in the remote's run-cache; not digested here (collect probe)" >&2
exit 3
"""


class ScaleoutError(XgovError, RuntimeError):
    """A check failed; the message says what to do."""


def check_offsets(values: Iterable[str], offsets: tuple[int, ...]) -> list[int]:
    """``values`` as shard offsets, each one of ``shards.offsets``; raises ScaleoutError naming the bad ones."""
    values = [v for value in values for v in value.split()]
    if not values:
        raise ScaleoutError(f'set OFFSET=K (or OFFSET="K1 K2"), K from shards.offsets {list(offsets)}')
    bad = [v for v in values if not re.fullmatch(r"\d+", v) or int(v) not in offsets]
    if bad:
        raise ScaleoutError(
            f"OFFSET {' '.join(repr(v) for v in bad)} not in shards.offsets {list(offsets)} (params.yaml): "
            "nothing was run"
        )
    return [int(v) for v in values]


def tracked_params(dvc_yaml: Path = Path("dvc.yaml")) -> set[str]:
    stages = YAML(typ="safe").load(dvc_yaml.read_text(encoding="utf-8"))["stages"].values()
    return {p for s in stages for p in s.get("do", s).get("params", []) if isinstance(p, str)}


def changed_tracked_params(root: Path = Path(".")) -> list[str]:
    """params.yaml keys that differ from the last commit and that dvc.yaml tracks. Raises ScaleoutError when it
    cannot tell (fail closed)."""
    try:
        result = subprocess.run([*DVC, "params", "diff", "--json"], cwd=root, capture_output=True, text=True)
        if result.returncode != 0:
            raise ScaleoutError(f"'dvc params diff' failed: {result.stderr.strip()[-500:]}")
        changed = json.loads(result.stdout or "{}").get("params.yaml", {})
        tracked = tracked_params(root / "dvc.yaml")
    except (OSError, ValueError, KeyError, AttributeError) as exc:
        raise ScaleoutError(f"cannot compare tracked params with the last commit: {type(exc).__name__}: {exc}") from exc
    return sorted(k for k in changed if any(k == t or k.startswith(t + ".") for t in tracked))


@dataclass
class Collected:
    from_run_cache: list[str] = field(default_factory=list)
    up_to_date: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    ran_here: list[str] = field(default_factory=list)

    def report(self) -> str:
        def names(items: list[str]) -> str:
            return ", ".join(items) or "none"

        return (
            f"collect: from the run-cache: {names(self.from_run_cache)}; already here: {names(self.up_to_date)}; "
            f"digested here: {names(self.ran_here)}"
        )


def _stream(cmd: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run ``cmd``, echoing its output; returns (exit status, output)."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout or []:
        sys.stdout.write(line)
        lines.append(line)
    sys.stdout.flush()
    return proc.wait(), "".join(lines)


def stale_stages(targets: list[str], root: Path = Path(".")) -> set[str]:
    """The ``targets`` that ``dvc status --json`` reports as not up to date here (changed deps, missing or changed
    outputs, not in ``dvc.lock``). Raises ScaleoutError when DVC cannot tell (fail closed)."""
    result = subprocess.run([*DVC, "status", "--json", *targets], cwd=root, capture_output=True, text=True)
    try:
        status = json.loads(result.stdout or "{}") if result.returncode == 0 else None
    except ValueError:
        status = None
    if not isinstance(status, dict):
        raise ScaleoutError(f"'dvc status --json' failed (exit {result.returncode}): {result.stderr.strip()[-500:]}")
    return {t for t in targets if t in status}


def lock_entries(targets: list[str], root: Path = Path(".")) -> dict[str, object]:
    """Each target's entry in ``dvc.lock`` as DVC wrote it (absent: None)."""
    lock = root / "dvc.lock"
    stages = (YAML(typ="safe").load(lock.read_text(encoding="utf-8")) or {}).get("stages", {}) if lock.exists() else {}
    return {t: stages.get(t) for t in targets}


@contextlib.contextmanager
def probe_env() -> Iterator[dict[str, str]]:
    """The environment of collect's probe: :data:`PROBE_PROGRAM` first on PATH as ``python`` (and ``python3``)."""
    folder = tempfile.mkdtemp(prefix="xgov-probe-")
    try:
        for name in ("python", "python3"):
            path = Path(folder) / name
            path.write_text(PROBE_PROGRAM, encoding="utf-8")
            path.chmod(0o755)
        yield {**os.environ, "PATH": os.pathsep.join([folder, os.environ.get("PATH", "")])}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def probe(offsets: list[int]) -> Collected:
    """Restore every shard that the remote's run-cache holds (``dvc repro --pull``); a shard it lacks is not
    digested (its command exits at once): it is reported missing. What each shard is comes from DVC's own data, never
    its printed words: ``dvc status --json`` after the run says which are up to date, and ``dvc.lock`` says which of
    those the run recorded anew (restored from the run-cache) and which it left as they were (already here, or
    pulled as the committed ``dvc.lock`` records them). A shard still missing whose run-cache holds a complete
    entry beside entries whose data never reached the remote (a worker killed mid-push) is restored from the
    complete one (:func:`restore_complete`)."""
    targets = [f"shard@{k}" for k in offsets]
    before = lock_entries(targets)
    with probe_env() as env:
        _stream([*DVC, "repro", "--pull", "--keep-going", "--single-item", *targets], env)
    stale = stale_stages(targets)
    if stale:
        from xgov_digests.core.params import load_params
        from xgov_digests.operations.runcache import restore_complete

        if restore_complete(sorted(stale), load_params().storage):
            with probe_env() as env:
                _stream([*DVC, "repro", "--keep-going", "--single-item", *sorted(stale)], env)
            stale = stale_stages(targets)
    after = lock_entries(targets)
    got = Collected()
    for t in targets:
        if t in stale:
            got.missing.append(t)
        elif after[t] != before[t]:
            got.from_run_cache.append(t)
        else:
            got.up_to_date.append(t)
    return got


def collect(offsets: list[int], allow_local: bool) -> Collected:
    """The coordinator's step: shards from the run-cache, at most one missing shard digested here (any number with
    ``allow_local``), then aggregate. Raises ScaleoutError when more shards are missing."""
    got = probe(offsets)
    if len(got.missing) > 1 and not allow_local:
        ks = " ".join(m.split("@")[1] for m in got.missing)
        raise ScaleoutError(
            f"{len(got.missing)} shards are not in the remote's run-cache: {', '.join(got.missing)} (their workers "
            f'did not run or did not push). Run them on workers (make worker OFFSET="{ks}") and collect again, or '
            "make collect ALLOW_LOCAL=1 to digest them on this machine. " + got.report()
        )
    if got.missing:
        print(f"collect: digesting {', '.join(got.missing)} here: not in the remote's run-cache", flush=True)
        status, _ = _stream([*DVC, "repro", "--pull", "--single-item", *got.missing], dict(os.environ))
        if status != 0:
            raise ScaleoutError(f"dvc repro of {', '.join(got.missing)} failed (exit {status})")
        got.ran_here, got.missing = got.missing, []
    status, _ = _stream([*DVC, "repro", "--pull", "--single-item", "aggregate"], dict(os.environ))
    if status != 0:
        raise ScaleoutError(f"dvc repro of aggregate failed (exit {status}). {got.report()}")
    return got
