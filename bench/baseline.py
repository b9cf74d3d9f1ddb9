"""The field's baseline, reimplemented faithfully: one process, one repo at a time, ``git clone`` then stock
gitingest on the local clone, then write the file.

python -m bench.baseline --feed FEED --out DIR [--max-file-size N] [--times TIMES.jsonl]

This is how gitingest is used on a list of repos today (a loop around ``gitingest.ingest``). Two choices keep
it comparable with the pipeline and make it, if anything, faster than the real thing: the clone is one shallow
``git clone --depth 1 --single-branch`` (gitingest's own remote path makes more round trips: ``ls-remote``,
``clone --no-checkout``, ``fetch``, ``checkout``), and gitingest's tiktoken token count is switched off the same way
the pipeline and the tests switch it off (it downloads a model at run time). gitingest's INFO logging is held at
WARNING, as in the pipeline. The digest is gitingest's own ``output=`` file: ``tree + "\\n" + content``, uncapped.
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.baseline", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--feed", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--max-file-size", type=int, default=524288)
    parser.add_argument("--times", type=Path, help="write one JSON line per repo (clone_s, digest_s, ...)")
    args = parser.parse_args(argv)

    os.environ["LC_ALL"] = "C.UTF-8"  # as the pipeline: gitingest picks encodings from the locale
    import gitingest
    import gitingest.output_formatter

    from xgov_digests.core.logs import setup_logging

    setup_logging(30)  # WARNING: gitingest logs every step at INFO otherwise
    gitingest.output_formatter._format_token_count = lambda text: None

    entries = json.loads(args.feed.read_text(encoding="utf-8"))
    times = args.times.open("w", encoding="utf-8") if args.times else None
    ok = failed = 0
    work = Path(tempfile.mkdtemp(prefix="bench-baseline-"))
    try:
        for entry in entries:
            owner, name, url = entry["owner"], entry["name"], entry["url"]
            dest = work / owner / name
            row: dict[str, object] = {"url": url, "owner": owner, "name": name}
            t0 = time.perf_counter()
            clone = subprocess.run(
                ["git", "clone", "--quiet", "--depth", "1", "--single-branch", "--", url, str(dest)],
                capture_output=True,
                text=True,
                env=dict(os.environ, GIT_TERMINAL_PROMPT="0"),
                timeout=600,
            )
            t1 = time.perf_counter()
            row["clone_s"] = t1 - t0
            if clone.returncode != 0:
                row.update(status="failed", error=clone.stderr.strip()[-300:])
                failed += 1
            else:
                out = args.out / owner / f"{name}.txt"
                out.parent.mkdir(parents=True, exist_ok=True)
                try:
                    gitingest.ingest(str(dest), max_file_size=args.max_file_size, output=str(out))
                    row.update(status="ok", digest_bytes=out.stat().st_size)
                    ok += 1
                except Exception as exc:  # noqa: BLE001 - one repo's failure never stops the loop
                    row.update(status="failed", error=f"{type(exc).__name__}: {exc}")
                    failed += 1
            t2 = time.perf_counter()
            row["digest_s"] = t2 - t1
            row["total_s"] = t2 - t0
            shutil.rmtree(dest, ignore_errors=True)
            if times:
                times.write(json.dumps(row) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if times:
            times.close()
    print(json.dumps({"ok": ok, "failed": failed}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
