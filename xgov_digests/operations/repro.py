"""``xgov-digests repro -j N``: what ``dvc repro`` does, with up to N shard commands at once.

1. ``dvc repro --single-item fetch`` (a ``dvc`` process: fetch runs when the feed's ETag changed);
2. DVC's status (in this process) names the shard stages that changed;
3. each is prepared as ``dvc repro`` would: outputs removed, a run-cache hit restored instead of run;
4. the others' commands (exactly the ``cmd`` of dvc.yaml, through DVC's own shell, cwd and environment) run up to N
   at once, each in its own process group;
5. every shard that succeeded (or came from the run-cache) is recorded at once: ``dvc commit --force`` of them all,
   one ``dvc.lock`` write, each stage's run-cache entry saved;
6. ``dvc repro --single-item aggregate`` when every shard is recorded and aggregate changed.

A failed shard is not recorded and the others are; aggregate then does not run. A stop signal (Ctrl-C, SIGTERM)
stops every shard: the shards that had finished are recorded, nothing else, and aggregate does not run.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from xgov_digests.core.errors import XgovError
from xgov_digests.operations import dvc
from xgov_digests.operations.jobs import run_jobs


@dataclass
class ReproResult:
    ran: list[str] = field(default_factory=list)  # shard commands that ran and succeeded
    restored: list[str] = field(default_factory=list)  # shards restored from the run-cache
    failed: list[str] = field(default_factory=list)
    aggregated: bool = False


def shard_names(offsets: Sequence[int]) -> list[str]:
    return [f"shard@{k}" for k in offsets]


def repro(
    root: Path, offsets: Sequence[int], jobs: int = 1, only: Sequence[str] = (), grace: float = 30.0
) -> ReproResult:
    """Run the pipeline as ``dvc repro`` would, up to ``jobs`` shards at once; ``only``: just these shard stages
    (fetch does not run). Raises XgovError naming what failed."""
    result = ReproResult()
    if not only:
        dvc.must(["repro", "--single-item", "fetch"], root)
    else:
        dvc.warn_state(root)
    wanted = list(only) or shard_names(offsets)
    with dvc.open_repo(root) as repo:
        changed = dvc.changed_stages(repo)
        todo = [name for name in wanted if name in changed]
        if todo:
            stages = dvc.stages_named(repo, todo)
            to_run, restored = dvc.prepare(repo, stages)
            result.restored = [s.addressing for s in restored]
            outcome = run_jobs([dvc.command_of(s) for s in to_run], parallel=jobs, grace=grace)
            result.ran = outcome.succeeded
            result.failed = outcome.failed + outcome.not_started
            done = set(result.ran) | set(result.restored)
            dvc.record(repo, [s for s in stages if s.addressing in done])
            for name in result.failed:
                print(
                    f"ERROR: failed to reproduce '{name}': its command did not finish (its messages are above)",
                    flush=True,
                )
            if outcome.stopped_by is not None:
                dvc.warn_state(root)
                raise XgovError(
                    f"stopped by {signal.Signals(outcome.stopped_by).name}: recorded {_names(sorted(done))}; not "
                    f"recorded {_names(result.failed)}; the next repro runs those",
                    exit_code=128 + outcome.stopped_by,
                )
        aggregate = "aggregate" in changed or bool(todo)
    dvc.warn_state(root)
    if result.failed:
        raise XgovError(
            f"{_names(result.failed)} failed and {'was' if len(result.failed) == 1 else 'were'} not recorded; "
            f"the other shards are; aggregate did not run. Fix the cause and run repro again: it runs only "
            f"{'that shard' if len(result.failed) == 1 else 'those shards'} and aggregate",
            exit_code=1,
        )
    if aggregate:
        dvc.must(["repro", "--single-item", "aggregate"], root)
        result.aggregated = True
    return result


def _names(names: Sequence[str]) -> str:
    return ", ".join(names) or "none"
