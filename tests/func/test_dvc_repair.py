"""The next run always starts: dvc.lock and .dvc/tmp/rwlock cut short by a killed dvc are repaired before DVC runs.

Real dvc, killed with SIGKILL by a watcher the moment it starts rewriting its file; and the real files cut at many
random bytes. After the repair, real ``dvc status``/``dvc repro`` run, and no stage recorded in full is lost.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from tests.conftest import Reproduced, Workspace, make_workspace, write_feed
from tests.fixtures.sample import build_corpus
from xgov_digests.operations.dvc_repair import (
    BROKEN_COPY,
    GOOD_COPY,
    RWLOCK,
    STAGE_HEADER,
    _whole_stages,
    check,
    declared_outputs,
    lock_problem,
)

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]  # six real shards, then real dvc killed several times
SHARDS = {"batch_size": 6, "offsets": [0, 1, 2, 3, 4, 5]}  # six stages: dvc.lock is several 8 KiB writes


def load(path: Path) -> dict:
    return YAML(typ="safe").load(path.read_text())["stages"]


def six_shards(folder: Path, env: dict[str, str]) -> Workspace:
    feed = write_feed(folder / "feed.json", build_corpus(folder / "corpus", 6))
    ws = make_workspace(folder / "ws", str(feed), extra_env=env)
    ws.set_params(shards=SHARDS)
    ws.commit("six shards")
    ws.run(sys.executable, "-m", "xgov_digests.operations.procgroup", "--", "dvc", "repro", timeout=1800)
    return ws


@pytest.fixture
def ran(reproduced: Reproduced, tmp_path: Path) -> Workspace:
    """Six shards after a real dvc repro (built once per worker, a pristine copy for each test)."""
    ws = reproduced.workspace("six-shards", six_shards, tmp_path)
    assert (ws.path / "dvc.lock").stat().st_size > 2 * 8192  # three or more 8 KiB writes
    return ws


def group(ws: Workspace, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return ws.run(sys.executable, "-m", "xgov_digests.operations.procgroup", *args, check=check)


def test_good_copy_is_kept_after_each_dvc_command(ran: Workspace) -> None:
    assert (ran.path / GOOD_COPY).read_bytes() == (ran.path / "dvc.lock").read_bytes()


def test_lock_cut_at_random_bytes_is_rebuilt_keeping_the_stages_written_in_full(ran: Workspace) -> None:
    lock = ran.path / "dvc.lock"
    new = lock.read_bytes()
    stages = load(lock)
    # The last good copy is an older record: shard@5 and aggregate ran since, with other results.
    older = json.loads(json.dumps(stages))
    for name in ("shard@5", "aggregate"):
        older[name]["outs"][0]["md5"] = "0" * 32 + (".dir" if older[name]["outs"][0]["md5"].endswith(".dir") else "")
    yaml = YAML()
    with (ran.path / GOOD_COPY).open("w") as fh:
        yaml.dump({"schema": "2.0", "stages": older}, fh)
    rng = random.Random(1234)
    cuts = sorted(rng.sample(range(len(new)), 40)) + [0, 1, len(new) - 1]
    for i, cut in enumerate(cuts):
        lock.write_bytes(new[:cut])
        report = check(ran.path)
        assert report.warnings and "dvc.lock was cut short" in report.warnings[0], cut
        assert lock_problem(lock.read_text()) is None, cut
        got = load(lock)
        assert set(got) == set(stages), cut
        text = new[:cut].decode(errors="replace")
        for name, entry in got.items():
            # a stage whose whole entry (and the next stage's header) was written keeps what was written
            whole = f"\n  {name}:\n" in text and text.index(f"\n  {name}:\n") < max(
                (text.rfind(f"\n  {other}:\n") for other in stages), default=-1
            )
            assert entry == (stages[name] if whole else older[name]), (cut, name)
        assert (ran.path / BROKEN_COPY).read_bytes() == new[:cut]
        if i % 20 == 0:  # DVC itself reads the rebuilt file
            assert "validation failed" not in ran.dvc("status").stderr
        with (ran.path / GOOD_COPY).open("w") as fh:
            yaml.dump({"schema": "2.0", "stages": older}, fh)


def test_a_lock_cut_at_any_line_end_is_found(ran: Workspace) -> None:
    """Cut where the text still parses: after any line, between two outputs of a stage included (every output
    written is whole, the stage just lists fewer than dvc.yaml declares). A cut exactly before a stage's header
    leaves a lock of fewer stages, whole as far as any reader can tell, and so does one before the first stage."""
    text = (ran.path / "dvc.lock").read_text()
    declared = declared_outputs(ran.path)
    assert declared["shard"] == 2 and declared["aggregate"] >= 9  # outs, metrics and plots, as dvc.yaml has them
    assert lock_problem(text, declared) is None
    boundaries = sorted(m.start() for m in STAGE_HEADER.finditer(text))
    ends = [i + 1 for i, c in enumerate(text[:-1]) if c == "\n" and i + 1 > boundaries[0]]
    cuts = [end for end in ends if end not in boundaries]
    missed = [text[:end].splitlines()[-1] for end in cuts if lock_problem(text[:end], declared) is None]
    assert missed == [], f"{len(missed)} cuts taken for whole files, after lines such as {missed[:3]}"
    # the check can fail: without dvc.yaml's counts, a cut before a stage's second or later output passes
    stage_start = {end: max(b for b in boundaries if b < end) for end in cuts}
    in_outs = [e for e in cuts if text.rfind("    outs:\n", 0, e) > stage_start[e]]
    between = [e for e in in_outs if text[e:].startswith("    - path:")]
    assert any(lock_problem(text[:e]) is None for e in between)


def test_rwlock_cut_at_random_bytes_or_empty_is_cleared(ran: Workspace) -> None:
    rwlock = ran.path / RWLOCK
    entry = {"pid": os.getpid(), "cmd": "dvc repro"}
    full = json.dumps({"write": {"data/manifests": entry}, "read": {"data/manifests/shard-0.json": [entry]}}).encode()
    for cut in [0, 1, 5, 17, len(full) // 2, len(full) - 1]:
        rwlock.write_bytes(full[:cut])
        report = check(ran.path)
        assert any("rwlock" in w and "cleared" in w for w in report.warnings), cut
        assert json.loads(rwlock.read_bytes()) == {}
    assert ran.dvc("status").returncode == 0  # DVC reads the cleared file


def test_rwlock_entries_of_dead_processes_are_dropped(ran: Workspace) -> None:
    rwlock = ran.path / RWLOCK
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    live = {"pid": os.getpid(), "cmd": "dvc repro"}
    rwlock.write_text(
        json.dumps(
            {
                "write": {f"data/summaries/shard-{k}": {"pid": dead_pid, "cmd": "dvc repro"} for k in range(40)},
                "read": {"data/manifests/shard-0.json": [{"pid": dead_pid, "cmd": "dvc repro"}, live]},
            }
        )
    )
    check(ran.path)
    assert json.loads(rwlock.read_text()) == {"write": {}, "read": {"data/manifests/shard-0.json": [live]}}


def kill_on_change(ws: Workspace, watched: Path, *cmd: str) -> bool:
    """Run ``cmd`` in its own group; SIGKILL the group the moment ``watched`` changes size. True if it was killed."""
    before = watched.stat().st_size if watched.exists() else -1
    proc = subprocess.Popen(
        cmd, cwd=ws.path, env=ws.env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    killed = threading.Event()

    def watch() -> None:
        while proc.poll() is None:
            try:
                size = watched.stat().st_size
            except FileNotFoundError:
                continue
            if size != before:
                os.killpg(proc.pid, signal.SIGKILL)
                killed.set()
                return

    t = threading.Thread(target=watch)
    t.start()
    proc.wait(timeout=300)
    t.join()
    return killed.is_set()


def test_real_dvc_killed_while_writing_dvc_lock_does_not_brick_the_next_run(ran: Workspace) -> None:
    lock = ran.path / "dvc.lock"
    recorded = load(lock)
    cut = None
    for attempt in range(8):  # the watcher races DVC's writes: most tries cut the file, some see it whole
        ran.dvc("repro", "--force", "--single-item", "shard@0", check=False) if attempt else None
        kill_on_change(ran, lock, "dvc", "repro", "--force", "--single-item", "shard@5")
        if lock_problem(lock.read_text(errors="replace")) is not None:
            cut = lock.read_bytes()
            break
    assert cut is not None, "the watcher never caught dvc.lock mid-write"
    # what DVC alone does with it: refuses to run (the cut broke the YAML), or, cut where the YAML still parses,
    # has lost the record of stages that ran and would run them again
    alone = ran.dvc("status", check=False)
    assert alone.returncode != 0 or alone.stdout != "Data and pipelines are up to date.\n", alone.stdout
    # the way a user runs the pipeline: make repro's dvc calls go through the group, which repairs first
    venv = Path(sys.executable).parents[1]
    shutil.copy2(ROOT / "Makefile", ran.path / "Makefile")
    out = ran.run("make", "--no-print-directory", "-o", f"{venv}/.installed", f"VENV={venv}", "repro")
    assert "dvc.lock was cut short" in out.stderr
    # the stages the cut file held in full are not run again; only the stage being written, and what reads it, may be
    again = set(re.findall(r"Running stage '([^']+)'", out.stdout)) - {"fetch"}
    held = set(_whole_stages(cut.decode(errors="replace")))
    assert not again & held, (sorted(held), sorted(again), out.stdout)
    assert set(load(lock)) == set(recorded)
    assert ran.dvc("status").stdout == "Data and pipelines are up to date.\n"


def test_real_dvc_killed_while_writing_the_rwlock_does_not_brick_the_next_run(ran: Workspace) -> None:
    rwlock = ran.path / RWLOCK
    for _ in range(10):
        rwlock.write_text("{}")  # a known size: the watcher kills at DVC's first rewrite
        kill_on_change(ran, rwlock, "dvc", "repro", "--force", "--single-item", "shard@1")
        if rwlock.read_bytes()[:1] != b"{" or not rwlock.read_bytes().endswith(b"}"):
            break
    else:
        pytest.fail("the watcher never caught the rwlock mid-write")
    assert "RWLock" in ran.dvc("status", check=False).stderr  # DVC alone refuses to run
    out = group(ran, "--", "dvc", "repro")
    assert "rwlock" in out.stderr and "cleared" in out.stderr
    assert ran.dvc("status").returncode == 0


def test_empty_tmp_files_of_a_killed_dvc_leave_the_cache(ran: Workspace) -> None:
    cache = ran.path / ".dvc" / "cache" / "files" / "md5" / "ab"
    cache.mkdir(parents=True, exist_ok=True)
    old, fresh, full = cache / "x.1234.tmp", cache / "y.5678.tmp", cache / "z.9999.tmp"
    old.write_bytes(b"")
    fresh.write_bytes(b"")
    full.write_bytes(b"data")
    past = time.time() - 3600
    os.utime(old, (past, past))
    os.utime(full, (past, past))
    group(ran, "--check")
    assert not old.exists() and fresh.exists() and full.exists()
