"""Wall time of the whole pipeline (``dvc repro``) on N local sample repos, in a scratch workspace.

.venv/bin/python -m scripts.e2e_timing --repos 20 --workers 1 8          # full runs, no digest cache
.venv/bin/python -m scripts.e2e_timing --repos 50 --workers 8 --incremental
    # full run; re-run after one repo's pushedAt (and commit) changed; re-run with nothing changed
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.fixtures.sample import build_corpus, commit, write_files
from tests.fixtures.workspace import create_workspace


def repro(ws: Path, env: dict[str, str]) -> tuple[float, list[str]]:
    start = time.monotonic()
    out = subprocess.run(["dvc", "repro"], cwd=ws, env=env, capture_output=True, text=True, check=True).stdout
    ran = [ln.split("'")[1] for ln in out.splitlines() if ln.startswith("Running stage '")]
    return time.monotonic() - start, ran


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repos", type=int, default=20)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--incremental", action="store_true", help="also time a 1-repo change and a no-op re-run")
    args = parser.parse_args()
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", DVC_NO_ANALYTICS="1")
    scratch = Path(tempfile.mkdtemp(prefix="e2e-timing-"))
    try:
        entries = build_corpus(scratch / "corpus", args.repos)
        feed = scratch / "repos.json"
        feed.write_text(json.dumps(entries))
        for workers in args.workers:
            cache = str(scratch / f"cache-{workers}") if args.incremental else ""
            ws = create_workspace(
                scratch / f"ws-{workers}",
                {
                    "feed": {"url": str(feed)},
                    "ingest": {"allow_file_urls": True, "workers": workers, "cache": cache},
                },
            )
            full, _ = repro(ws, env)
            print(f"repos={args.repos} workers={workers}: full dvc repro {full:.1f} s", flush=True)
            if not args.incremental:
                continue
            repo = scratch / "corpus" / "repos" / entries[0]["owner"] / entries[0]["name"]
            write_files(repo, {"CHANGED.md": "new\n"})
            commit(repo, "change")
            feed.write_text(json.dumps([dict(entries[0], pushedAt="2030-01-01T00:00:00Z"), *entries[1:]]))
            one, ran = repro(ws, env)
            print(f"  after 1 repo's pushedAt changed: {one:.1f} s (ran {', '.join(ran)})", flush=True)
            noop, ran = repro(ws, env)
            print(f"  nothing changed: {noop:.1f} s (ran {', '.join(ran)})", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
