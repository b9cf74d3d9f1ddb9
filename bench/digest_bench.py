"""The digest alone: a plain read of the checkout's files against stock gitingest and ``xgov_digests.digest``, plus
where the time goes (cProfile, and pyinstrument when it is installed).

All three run in this process on a shallow clone (what the pipeline digests), with a warm page cache, best of N.
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import os
import pstats
import shutil
import subprocess
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import corpus

HEADER_ARGS = ("org", "repo", "https://github.com/org/repo", "0" * 40, "2024-01-01T00:00:00Z")


def plain_read(root: Path) -> int:
    """The floor: list the tree and read every regular file once (``.git`` left out), nothing else."""
    total = 0
    for dirpath, dirnames, filenames in os.walk(root):
        if ".git" in dirnames:
            dirnames.remove(".git")
        for name in filenames:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                continue
            with open(path, "rb") as fh:
                total += len(fh.read())
    return total


def _stock(folder: Path, max_file_size: int) -> str:
    import gitingest

    _, tree, content = asyncio.run(gitingest.ingest_async(str(folder), max_file_size=max_file_size))
    return f"{tree}\n{content}"


def _best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _paired(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Best of ``repeat`` for each, run round-robin so a busy moment on a shared machine hits all of them."""
    best = {name: float("inf") for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def _area(filename: str, function: str) -> str:
    if filename == "~" or filename.startswith("{"):  # C functions: classify by name
        if "warn" in function:
            return "deprecation warnings (typing_extensions.deprecated)"
        if "_sre" in function or "re.Pattern" in function or "re.Match" in function:
            return "re: escape/compile/match (called by pathspec)"
        if "posix." in function or "io." in function or "open" in function or "read" in function:
            return "I/O syscalls (open, read, stat, scandir)"
        return "other builtins (str, list, dict)"
    if "pathspec" in filename:
        return "pathspec: compiling and matching patterns"
    if "typing_extensions" in filename or "warnings" in filename:
        return "deprecation warnings (typing_extensions.deprecated)"
    if "/re/" in filename or "sre_" in filename:
        return "re: escape/compile (called by pathspec)"
    if "xgov_digests/digest" in filename:
        return "xgov_digests.digest"
    if "gitingest" in filename:
        return "gitingest (walk, nodes, formatting)"
    if "pathlib" in filename:
        return "pathlib"
    return "other"


def profile(fn: Callable[[], object], out: Path, title: str) -> dict[str, Any]:
    """cProfile ``fn``; write the top functions to ``out``; return self time per area (share of the total)."""
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    stats = pstats.Stats(prof)
    areas: dict[str, float] = defaultdict(float)
    total = 0.0
    for (filename, _, function), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        areas[_area(filename, function)] += tottime
        total += tottime
    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(25)
    out.write_text(
        f"# {title}\n# self time by area: "
        + ", ".join(f"{k} {v / total:.0%}" for k, v in sorted(areas.items(), key=lambda kv: -kv[1]))
        + "\n"
        + text.getvalue(),
        encoding="utf-8",
    )
    return {k: round(v / total, 3) for k, v in sorted(areas.items(), key=lambda kv: -kv[1])}


def pyinstrument_profile(fn: Callable[[], object], out: Path) -> bool:
    try:
        from pyinstrument import Profiler
    except ImportError:
        return False
    profiler = Profiler(interval=0.0005)
    profiler.start()
    fn()
    profiler.stop()
    tree = profiler.output_text(unicode=True, color=False, show_all=True)
    flat = profiler.output_text(unicode=True, color=False, flat=True)
    lines = [ln for ln in tree.splitlines() if len(ln) < 200][:80]  # the call tree's top, then self time
    out.write_text("\n".join(lines) + "\n\n# self time by function\n" + flat, encoding="utf-8")
    return True


def trees(work: Path, seed: int, indexes: list[int]) -> list[tuple[str, Path]]:
    """Shallow clones of corpus repos ``indexes``: what a shard digests."""
    src_root = work / f"digest-src-s{seed}"
    out = []
    for i in indexes:
        s = corpus.spec(seed, i)
        src = src_root / s.owner / s.name
        if not (src / ".git").exists():
            shutil.rmtree(src, ignore_errors=True)
            corpus.build_repo(src_root, seed, i)
        dst = work / "digest-clones" / s.name
        if not dst.exists():
            subprocess.run(["git", "clone", "-q", "--depth", "1", src.resolve().as_uri(), str(dst)], check=True)
        out.append((f"{s.kind}:{s.owner}/{s.name}", dst))
    return out


def run(
    work: Path,
    results: Path,
    *,
    seed: int = 7,
    indexes: list[int] | None = None,
    repeat: int = 5,
    stock_repeat: int = 2,
    profiles: bool = True,
    log: Any = print,
) -> dict[str, Any]:
    os.environ["LC_ALL"] = "C.UTF-8"
    import gitingest.output_formatter

    from xgov_digests.core.logs import setup_logging
    from xgov_digests.core.params import DigestSettings
    from xgov_digests.digest.budget import DigestPool
    from xgov_digests.digest.build import ingest_tree, make_digest
    from xgov_digests.digest.format import Header

    setup_logging(30)
    gitingest.output_formatter._format_token_count = lambda text: None  # tiktoken needs the network
    header = Header(*HEADER_ARGS)
    mfs = cap = 524288
    rows = []
    pool = DigestPool(1, 120.0)  # the shard's way: a child process per digest, killed at ingest.digest_timeout
    settings = DigestSettings(max_file_size=mfs, max_summary_bytes=cap)
    for label, path in trees(work, seed, indexes or [21]):
        pool.digest(path, header, settings)  # the fork server's start-up, once
        stats = corpus.tree_stats(path)
        expected = _stock(path, mfs)
        got_tree, got_content, _ = ingest_tree(path, max_file_size=mfs)
        row = {
            "tree": label,
            **stats,
            "digest_chars": len(expected),
            "identical_to_stock": f"{got_tree}\n{got_content}" == expected,
            "stock_gitingest_s": _best(lambda p=path: _stock(p, mfs), stock_repeat),
            **{
                f"{k}_s": v
                for k, v in _paired(
                    {
                        "plain_read": lambda p=path: plain_read(p),
                        "ingest_tree": lambda p=path: ingest_tree(p, max_file_size=mfs),
                        "make_digest": lambda p=path: make_digest(p, header, max_file_size=mfs, max_summary_bytes=cap),
                        "budgeted_digest": lambda p=path: pool.digest(p, header, settings),
                    },
                    repeat,
                ).items()
            },
        }
        row["ingest_tree_x_plain"] = round(row["ingest_tree_s"] / row["plain_read_s"], 2)
        row["make_digest_x_plain"] = round(row["make_digest_s"] / row["plain_read_s"], 2)
        row["budgeted_digest_x_plain"] = round(row["budgeted_digest_s"] / row["plain_read_s"], 2)
        row["stock_x_plain"] = round(row["stock_gitingest_s"] / row["plain_read_s"], 1)
        row["speedup_vs_stock"] = round(row["stock_gitingest_s"] / row["ingest_tree_s"], 1)
        row["stock_mb_per_s"] = round(stats["bytes"] / row["stock_gitingest_s"] / 1e6, 2)
        for key in ("plain_read_s", "stock_gitingest_s", "ingest_tree_s", "make_digest_s", "budgeted_digest_s"):
            row[key] = round(row[key], 5)
        rows.append(row)
        log(
            f"digest {label}: {stats['files']} files, {stats['bytes'] / 1e6:.2f} MB: "
            f"plain {row['plain_read_s'] * 1e3:.1f} ms, stock {row['stock_gitingest_s'] * 1e3:.0f} ms, "
            f"fast {row['ingest_tree_s'] * 1e3:.1f} ms "
            f"({row['ingest_tree_x_plain']}x plain, {row['speedup_vs_stock']}x faster than stock), "
            f"make_digest {row['make_digest_s'] * 1e3:.1f} ms, in a budgeted child process "
            f"{row['budgeted_digest_s'] * 1e3:.1f} ms ({row['budgeted_digest_x_plain']}x plain), "
            f"identical={row['identical_to_stock']}"
        )
    pool.close()
    out: dict[str, Any] = {"trees": rows}
    if profiles:
        label, path = trees(work, seed, (indexes or [21])[:1])[0]
        results.mkdir(parents=True, exist_ok=True)
        out["profile_tree"] = label
        out["profile_stock"] = profile(
            lambda: _stock(path, mfs), results / "profile-stock.txt", f"stock gitingest.ingest_async on {label}"
        )
        out["profile_fast"] = profile(
            lambda: [ingest_tree(path, max_file_size=mfs) for _ in range(20)],
            results / "profile-fast.txt",
            f"xgov_digests.digest.build.ingest_tree x20 on {label}",
        )
        out["pyinstrument"] = pyinstrument_profile(
            lambda: _stock(path, mfs), results / "profile-stock-pyinstrument.txt"
        )
    return out
