"""Cost of one clone of a tree bomb or a blob bomb, served over smart HTTP on 127.0.0.1: wall seconds, peak bytes
under the clone's TMPDIR (sampled every 0.1 s) and the outcome. Run it under ``/usr/bin/time -v`` for peak RSS.

/usr/bin/time -v .venv/bin/python -m scripts.checkout_bombs tree --levels 21 --mode auto   # 10^6 paths
/usr/bin/time -v .venv/bin/python -m scripts.checkout_bombs blob --size 2147483648 --names 64 --mode off
"""

from __future__ import annotations

import argparse
import inspect
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from tests.fixtures.bombs import bare_repo, blob_bomb, tree_bomb
from tests.fixtures.gitserver import GitServer
from xgov_digests.clone.git import CloneError
from xgov_digests.clone.strategy import clone_repo
from xgov_digests.core.params import CloneSettings


def _bytes_under(path: Path) -> int:
    """``du -sb``: apparent bytes of the files and folders (in another process: no lock held here)."""
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=False).stdout
    return int(out.split()[0]) if out else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["tree", "blob"])
    parser.add_argument("--levels", type=int, default=21, help="tree bomb: 2**(levels-1) paths")
    parser.add_argument("--size", type=int, default=2 << 30, help="blob bomb: bytes of zeros")
    parser.add_argument("--names", type=int, default=64, help="blob bomb: paths naming the blob")
    parser.add_argument("--mode", choices=["auto", "off"], default="auto")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bombs-") as scratch:
        root = Path(scratch)
        repo = bare_repo(root / "srv" / "org" / "bomb")
        if args.kind == "tree":
            print(f"tree bomb: {tree_bomb(repo, args.levels)} paths")
        else:
            blob_bomb(repo, args.size, args.names)
            print(f"blob bomb: {args.size} bytes of zeros named by {args.names} paths")
        pack = sum(p.stat().st_size for p in (repo / "objects").rglob("*") if p.is_file())
        print(f"objects on the server: {pack} bytes")
        dest = root / "tmp" / "bomb"
        dest.parent.mkdir()
        peak = [0]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(1.0):
                peak[0] = max(peak[0], _bytes_under(dest.parent))

        threading.Thread(target=sample, daemon=True).start()
        kwargs = {"max_tree_entries": 200_000} if "max_tree_entries" in inspect.signature(clone_repo).parameters else {}
        with GitServer(root / "srv", lifetime=3600) as server:
            start = time.monotonic()
            try:
                clone_repo(
                    f"{server.url}org/bomb",
                    dest,
                    CloneSettings(clone_filter=args.mode, clone_timeout=3000, retries=0, **kwargs),
                )
                outcome = "ok"
            except CloneError as exc:
                outcome = f"failed ({exc.kind}): {exc}"
            took = time.monotonic() - start
        done.set()
        peak[0] = max(peak[0], _bytes_under(dest.parent))
        print(f"mode {args.mode}: {took:.1f} s, peak {peak[0]} bytes under TMPDIR, {outcome}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
