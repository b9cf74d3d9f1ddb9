"""Run a command and measure it: wall time, peak RSS of its whole process tree, and the largest single process."""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
MB = 1024 * 1024


@dataclass
class Measurement:
    cmd: list[str]
    returncode: int
    wall_s: float
    peak_rss_tree_mb: float  # largest sum of RSS over the command and its descendants (sampled every 20 ms; forks
    # not yet exec'd are their parent's pages and not counted)
    peak_breakdown_mb: dict[str, float]  # that peak by process name (python, git, git-remote-http, ...)
    max_rss_process_mb: float  # largest RSS of any single process of the tree (sampled, as the peak)
    ru_maxrss_mb: float  # the kernel's ru_maxrss via wait4: NOT the command's own. Linux carries a forked child's
    # pre-exec high-water mark (this harness's RSS at fork) into it, so it is never below the harness's size
    cpu_s: float  # user + system CPU of the command and its descendants (wait4)
    other_children_cpu_s: float  # CPU of this process's other children meanwhile (the git server's http-backends)
    stdout: str
    stderr_tail: str
    by_kind: dict[str, dict[str, Any]] = field(default_factory=dict)  # see :func:`process_kind`

    def summary(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("stdout")
        return out


def process_kind(name: str, cmdline: list[str], parent: tuple[str, list[str]] | None) -> str:
    """What a process of a measured tree is, for the profile by kind: ``dvc``, ``shard`` (a shard's interpreter),
    ``digest child`` (the shard's multiprocessing fork server and its digest workers), ``git`` (git and its
    helpers: git-remote-http, index-pack, ...), ``python`` (fetch, aggregate, the make helpers, the bench's own
    drivers), ``make/sh`` or ``other``."""
    line = " ".join(cmdline)
    if name.startswith("git"):
        return "git"
    if "multiprocessing" in line or "forkserver" in line:
        return "digest child"
    if name.startswith("python") or "python" in (cmdline[:1] or [""])[0]:
        if "stages.shard " in line + " ":
            if parent and parent[1] == cmdline:
                return "digest child"
            return "shard"
        if (
            "/dvc" in line.split(" -m ")[0]
            or (len(cmdline) > 1 and cmdline[1].endswith("/dvc"))
            or cmdline[1:3] == ["-m", "dvc"]  # the command's own dvc processes: python -m dvc
        ):
            return "dvc"
        return "python"
    if name in ("dvc",):
        return "dvc"
    if name in ("make", "sh", "bash", "dash"):
        return "make/sh"
    return "other"


def command_label(cmdline: list[str]) -> str:
    """A short name for what a process runs, for the profile's list of commands: ``python -m dvc`` -> ``dvc``,
    ``python -m stages.shard`` -> ``stages.shard``, ``python -I -S -c ...`` -> ``python -c``, ``git clone`` ->
    ``git clone``."""
    if not cmdline:
        return "?"
    head = Path(cmdline[0]).name
    args = cmdline[1:]
    if head.startswith("python"):
        if "-m" in args and args.index("-m") + 1 < len(args):
            return args[args.index("-m") + 1]
        if "-c" in args:
            return "python -c"
        script = next((a for a in args if not a.startswith("-")), "")
        return Path(script).name or "python"
    if head == "git" and args:
        return f"git {next((a for a in args if not a.startswith('-') and '=' not in a), '')}".strip()
    return head


class _Kinds:
    """CPU and time alive per process kind, from samples of the tree: a process's CPU is its last sampled
    ``cpu_times`` (a process that lives less than one interval is missed), its time alive last seen minus
    first seen; ``busy_s`` is how long at least one process of the kind was alive."""

    def __init__(self) -> None:
        # (pid, create_time) -> [kind, cpu, created, last seen, command label]
        self.procs: dict[tuple[int, float], list[Any]] = {}
        self.busy: dict[str, float] = {}
        self.last = time.time()

    def add(self, p: psutil.Process, kind: str, cpu: float, created: float, now: float, label: str = "?") -> None:
        row = self.procs.setdefault((p.pid, created), [kind, 0.0, now, now, label])
        row[1], row[3] = max(row[1], cpu), now
        if label != "?":  # the latest kind and label (a fork becomes what it exec's), but not a zombie's empty one
            row[0], row[4] = kind, label

    def tick(self, kinds: set[str], now: float) -> None:
        step, self.last = min(now - self.last, 1.0), now
        for k in kinds:
            self.busy[k] = self.busy.get(k, 0.0) + step

    def summary(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        commands: dict[str, dict[str, list[float]]] = {}
        for kind, cpu, created, seen, label in self.procs.values():
            row = out.setdefault(kind, {"processes": 0, "cpu_s": 0.0, "process_s": 0.0, "busy_s": 0.0})
            row["processes"] += 1
            row["cpu_s"] += cpu
            row["process_s"] += max(0.0, seen - created)
            tally = commands.setdefault(kind, {}).setdefault(label, [0, 0.0])
            tally[0] += 1
            tally[1] += cpu
        for kind, busy in self.busy.items():
            out.setdefault(kind, {"processes": 0, "cpu_s": 0.0, "process_s": 0.0, "busy_s": 0.0})["busy_s"] = busy
        for kind, row in out.items():
            # what the kind's processes ran, the costliest first: {label: [processes, cpu s]}
            ranked = sorted(commands.get(kind, {}).items(), key=lambda kv: (-kv[1][1], kv[0]))[:8]
            row["commands"] = {label: [n, round(cpu, 2)] for label, (n, cpu) in ranked}
            row["busy_s"] = round(row["busy_s"], 2)
            row["cpu_s"], row["process_s"] = round(row["cpu_s"], 2), round(row["process_s"], 2)
        return dict(sorted(out.items(), key=lambda kv: -kv[1]["cpu_s"]))


def _tree_rss(proc: psutil.Process, kinds: _Kinds | None = None) -> tuple[int, dict[str, int], int]:
    """Sum of RSS over the tree. A child that has been forked but has not exec'd yet (same name and command line
    as its parent: subprocess's fork-then-exec, or a multiprocessing fork) runs on its parent's pages, so it is
    not counted: with 16 threads starting clones, several such copies of a 200 MB interpreter exist for a moment
    and would be counted as 200 MB each."""
    total, by_name, largest = 0, {}, 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0, {}, 0
    cmdlines: dict[int, tuple[str, list[str]]] = {}
    alive: set[str] = set()
    now = time.time()
    for p in procs:
        try:
            with p.oneshot():
                rss, name, cmdline, ppid = p.memory_info().rss, p.name(), p.cmdline(), p.ppid()
                if kinds is not None:
                    t = p.cpu_times()
                    cpu, created = t.user + t.system, p.create_time()
        except psutil.Error:
            continue
        cmdlines[p.pid] = (name, cmdline)
        if kinds is not None:
            kind = process_kind(name, cmdline, cmdlines.get(ppid))
            kinds.add(p, kind, cpu, created, now, command_label(cmdline))
            alive.add(kind)
        if p.pid != proc.pid and cmdlines.get(ppid) == (name, cmdline):
            continue
        total += rss
        by_name[name] = by_name.get(name, 0) + rss
        largest = max(largest, rss)
    if kinds is not None:
        kinds.tick(alive, now)
    return total, by_name, largest


def run(
    cmd: list[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 3600,
    interval: float = 0.02,
) -> Measurement:
    """Run ``cmd`` to completion (killed after ``timeout`` s), sampling its process tree's memory."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    peak = largest_process = 0
    peak_by_name: dict[str, int] = {}
    done = threading.Event()
    outputs: dict[str, bytes] = {}

    def drain(name: str, stream: Any) -> None:
        outputs[name] = stream.read()

    readers = [
        threading.Thread(target=drain, args=(n, s), daemon=True)
        for n, s in (("out", proc.stdout), ("err", proc.stderr))
    ]
    for t in readers:
        t.start()
    ps = psutil.Process(proc.pid)
    kinds = _Kinds()

    def sample() -> None:
        nonlocal peak, peak_by_name, largest_process
        while not done.is_set():
            total, by_name, largest = _tree_rss(ps, kinds)
            largest_process = max(largest_process, largest)
            if total > peak:
                peak, peak_by_name = total, by_name
            done.wait(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    deadline = start + timeout
    rusage = None
    status = 0
    while True:
        pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            os.killpg(proc.pid, 9)
            _, status, rusage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.005)
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    for t in readers:
        t.join(timeout=10)
    proc.returncode = os.waitstatus_to_exitcode(status)
    max_rss_kb = rusage.ru_maxrss if rusage else 0
    cpu = (rusage.ru_utime + rusage.ru_stime) if rusage else 0.0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    children_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return Measurement(
        cmd=[str(c) for c in cmd],
        returncode=proc.returncode,
        wall_s=round(wall, 4),
        peak_rss_tree_mb=round(peak / MB, 1),
        peak_breakdown_mb={k: round(v / MB, 1) for k, v in sorted(peak_by_name.items(), key=lambda kv: -kv[1])},
        max_rss_process_mb=round(largest_process / MB, 1),
        ru_maxrss_mb=round(max_rss_kb / 1024, 1),
        cpu_s=round(cpu, 2),
        other_children_cpu_s=round(max(0.0, children_cpu - cpu), 2),
        stdout=outputs.get("out", b"").decode("utf-8", "replace"),
        stderr_tail=outputs.get("err", b"").decode("utf-8", "replace")[-2000:],
        by_kind=kinds.summary(),
    )


def machine() -> dict[str, Any]:
    """Where the figures come from."""
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--", "stages", "xgov_digests", "bench"],
        capture_output=True,
        text=True,
    )
    git_version = subprocess.run(["git", "--version"], capture_output=True, text=True).stdout.strip()
    return {
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 1024**3, 1),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "git": git_version,
        "commit": commit.stdout.strip() or None,
        "worktree_dirty": bool(dirty.stdout.strip()),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],  # other work on the box skews every figure
    }


def python_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for the measured Python processes: the venv first on PATH, project importable, fixed hashing.

    PYTHONHASHSEED is fixed because gitingest's ignore patterns are a ``set``: with a random seed, conflicting
    patterns (a ``.gitignore`` negation against a default pattern) resolve differently from run to run, and the
    baseline's and the pipeline's digests could not be compared byte for byte (see bench/README.md)."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT) + (f":{env['PYTHONPATH']}" if env.get("PYTHONPATH") else "")
    env["PYTHONHASHSEED"] = "0"
    env["DVC_NO_ANALYTICS"] = "1"
    env.update(extra or {})
    return env
