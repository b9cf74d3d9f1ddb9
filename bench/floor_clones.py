"""The floor: nothing but ``git clone --depth 1`` of every repo of a feed, ``--concurrency`` at a time.

python -m bench.floor_clones --feed FEED --concurrency 16

No pipeline can fetch the same repos from the same server faster than this on the same machine: it is what
every run of ``python -m bench`` is divided by. Each clone goes to a fresh folder under TMPDIR and is deleted
after all clones finished (so deleting is not timed, as the pipeline deletes checkouts in the background).
Prints one JSON line: ``{"ok": N, "failed": N}``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def clone(url: str, dest: Path) -> bool:
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0")
    cmd = ["git", "clone", "--quiet", "--depth", "1", "--single-branch", "--", url, str(dest)]
    return subprocess.run(cmd, capture_output=True, env=env, timeout=600, check=False).returncode == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.floor_clones", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--feed", type=Path, required=True)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args(argv)
    entries = json.loads(args.feed.read_text(encoding="utf-8"))
    work = Path(tempfile.mkdtemp(prefix="bench-floor-"))
    try:
        with ThreadPoolExecutor(max(1, args.concurrency)) as pool:
            done = list(pool.map(lambda i_e: clone(i_e[1]["url"], work / str(i_e[0])), enumerate(entries)))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ok = sum(done)
    print(json.dumps({"ok": ok, "failed": len(done) - ok}))
    return 0 if ok == len(done) else 1


if __name__ == "__main__":
    sys.exit(main())
