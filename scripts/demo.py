"""The whole job offline, in a scratch workspace: sample repos -> dvc repro -> dvc push to a local S3 server
standing in for R2 -> dvc pull into a fresh clone -> check the pulled outputs are identical.

    make demo        (or: .venv/bin/python -m scripts.demo [--dir demo-workspace])
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.fixtures.locals3 import LocalS3
from tests.fixtures.sample import build_corpus
from tests.fixtures.workspace import ROOT, create_workspace, git_commit

BUCKET = "demo-bucket"


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    print(f"$ {' '.join(cmd)}", flush=True)
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"demo: '{' '.join(cmd)}' failed with exit code {result.returncode}")
    return result.stdout


def outputs(ws: Path) -> list[Path]:
    files = sorted(p.relative_to(ws) for p in (ws / "data").rglob("*") if p.is_file() and p.name != ".gitignore")
    return [*files, Path("reports/metrics.json"), Path("reports/report.md")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=ROOT / "demo-workspace", help="scratch folder (recreated)")
    parser.add_argument("--repos", type=int, default=12)
    args = parser.parse_args(argv)
    start = time.monotonic()
    scratch = args.dir.resolve()
    shutil.rmtree(scratch, ignore_errors=True)
    bin_dir = str(Path(sys.executable).parent)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", DVC_NO_ANALYTICS="1")

    print(f"1. building {args.repos} sample git repositories and a feed in {scratch}/sample")
    entries = build_corpus(scratch / "sample", args.repos)
    feed = scratch / "sample" / "repos.json"
    feed.write_text(json.dumps(entries, indent=1), encoding="utf-8")

    print("2. the real pipeline (fetch, 10 shards, aggregate) in a scratch workspace")
    ws = create_workspace(
        scratch / "workspace",
        {"feed": {"url": str(feed)}, "ingest": {"allow_file_urls": True, "cache": str(scratch / "digest-cache")}},
    )
    run(["dvc", "repro"], ws, env)

    print("3. dvc push to a local S3 server on 127.0.0.1 standing in for R2")
    s3 = LocalS3()
    try:
        s3.make_bucket(BUCKET)
        env.update(s3.env)
        run(["dvc", "remote", "modify", "r2", "url", f"s3://{BUCKET}/dvc"], ws, env)
        run(["dvc", "remote", "modify", "r2", "endpointurl", s3.endpoint], ws, env)
        git_commit(ws, "pipeline run")
        run(["dvc", "push", "-r", "r2"], ws, env)
        pushed = len(s3.objects(BUCKET, "dvc/"))

        print("4. git clone + dvc pull into a fresh folder, as another machine would")
        clone = scratch / "clone"
        run(["git", "clone", "-q", str(ws), str(clone)], scratch, env)
        run(["dvc", "pull", "-r", "r2"], clone, env)
    finally:
        s3.stop()

    print("5. dvc plots show: where the time and bytes went, as an HTML page that renders offline and PNGs")
    run([str(Path(sys.executable).with_name("xgov-digests")), "plots", "--out", "dvc_plots"], ws, env)

    files = outputs(ws)
    _, mismatch, errors = filecmp.cmpfiles(ws, clone, [str(f) for f in files], shallow=False)
    if mismatch or errors:
        raise SystemExit(f"demo: pulled outputs differ from the originals: {mismatch + errors}")
    report = (ws / "reports" / "report.md").read_text(encoding="utf-8")
    print()
    print(report)
    print(f"pushed {pushed} objects; pulled {len(files)} output files, all byte-identical to the originals")
    print(f"digests:  {ws}/data/summaries/shard-*/<owner>/<name>.txt")
    print(f"metrics:  {ws}/reports/metrics.json   (cd {ws} && {bin_dir}/dvc metrics show)")
    print(f"clone:    {clone}")
    print(
        f"verbs:    cd {ws} && {bin_dir}/xgov-digests repro -j 4   (offline on the sample feed, like every verb but "
        "push/pull/publish, whose local S3 server stopped with the demo: shards N, retry, plots)"
    )
    print(f"demo finished in {time.monotonic() - start:.0f} s")
    print(
        f"plots:    {ws}/dvc_plots/index.html   (open it in a browser, offline too; PNGs beside it; in your "
        "project: make plots)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
