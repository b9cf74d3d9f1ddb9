"""The one place the command calls DVC: a ``dvc`` process (``run``), or DVC's Python API in this process
(``open_repo``, ``changed_stages``, ``record``), always with DVC's state files checked before and after
(``dvc_repair.check``).

Which calls go in-process was chosen by measurement (this 2-core machine, this project's workspace):
``dvc status --json`` as a process took 1.65-1.78 s wall and 0.95-1.0 CPU-s; in an interpreter that already runs,
``import dvc.repo`` took 0.25-0.29 s and ``Repo().status()`` 0.18-0.34 s. Status and the record of the shards
(``dvc commit --force``) are therefore DVC's API here; ``fetch`` and ``aggregate`` run as ``dvc repro`` processes
in their own process group, where Ctrl-C and SIGTERM reach the stage's command the way they reach ``dvc repro``.

DVC's hints for git ("To track the changes with git, run: ...", "Use `dvc push` ...") are dropped from a ``dvc``
process's stdout by ``without_hints``: the verbs say once what to stage, and ``run`` stages and pushes by itself.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xgov_digests.core.errors import XgovError
from xgov_digests.operations.dvc_repair import RepairError, check
from xgov_digests.operations.jobs import Job, run_jobs

if TYPE_CHECKING:
    from dvc.repo import Repo

DVC = [sys.executable, "-m", "dvc"]

# The first line of each hint block, as DVC writes it; a block runs to the next line that is not blank or indented.
HINTS = (
    b"To track the changes with git, run:",
    b"To enable auto staging, run:",
    b"Use `dvc push` to send your updates to remote storage.",
)
_RESET = b"\x1b[0m"  # colorama's reset after the last hint, on a terminal


def without_hints(lines: Iterable[bytes]) -> Iterator[bytes]:
    """``lines`` minus DVC's hint blocks (and the blank line before each)."""
    blank: list[bytes] = []
    in_hint = False
    for line in lines:
        bare = line.replace(_RESET, b"").strip()
        if bare in HINTS:
            blank, in_hint = [], True
            continue
        if in_hint and (not bare or line.startswith((b"\t", b" "))):
            continue
        in_hint = False
        if not bare:
            blank.append(line)
            continue
        yield from blank
        blank = []
        yield line
    yield from blank


def check_state(root: Path = Path(".")) -> list[str]:
    """Check and repair DVC's state files (dvc.lock cut short, a corrupt rwlock); the warnings, one line each.
    Raises XgovError when the workspace cannot run."""
    try:
        return check(root).warnings
    except RepairError as exc:
        raise XgovError(str(exc)) from None
    except OSError as exc:
        raise XgovError(f"cannot check DVC's state files: {exc.strerror or exc} ({exc.filename})") from None


def warn_state(root: Path = Path(".")) -> None:
    for line in check_state(root):
        print(f"xgov-digests: warning: {line}", file=sys.stderr)


def run(
    args: Sequence[str],
    root: Path = Path("."),
    *,
    hints: bool = False,
    check_after: bool = True,
    env: dict[str, str] | None = None,
) -> int:
    """``dvc ARGS`` in its own process group, DVC's state checked before and after; its exit status."""
    warn_state(root)
    job = Job(
        "dvc " + " ".join(args), [*DVC, *args], cwd=str(root), env=env, stdout_filter=None if hints else without_hints
    )
    outcome = run_jobs([job])
    if check_after:
        warn_state(root)  # keeps the dvc.lock this command wrote as the last good copy
    if outcome.stopped_by is not None:
        return 128 + outcome.stopped_by
    return outcome.returncodes[job.name]


def must(args: Sequence[str], root: Path = Path("."), **kw: Any) -> None:
    """``run``, raising XgovError (with the command's exit status) when the command fails."""
    if (code := run(args, root, **kw)) != 0:
        raise XgovError(f"'dvc {' '.join(args)}' failed (exit {code}; its messages are above)", exit_code=code)


def open_repo(root: Path = Path(".")) -> Repo:
    """DVC's repository in this process, waiting for DVC's lock as ``dvc --wait-for-lock`` does."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        return Repo(os.fspath(root), _wait_for_lock=True)
    except DvcException as exc:
        raise XgovError(f"cannot open the DVC repository in {root}: {exc}") from None


def changed_stages(repo: Repo) -> set[str]:
    """Names of the stages ``dvc status`` lists as changed."""
    from dvc.exceptions import DvcException

    try:
        return set(repo.status())
    except DvcException as exc:  # a busy lock, a broken dvc.lock
        raise XgovError(f"dvc status failed: {exc}") from None


def stages_named(repo: Repo, names: Iterable[str]) -> list[Any]:
    """dvc.yaml's stages of these names (``shard@3``), in the order given."""
    by_name = {stage.addressing: stage for stage in repo.index.stages}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise XgovError(f"no stage {', '.join(missing)} in dvc.yaml (its stages: {', '.join(sorted(by_name))})")
    return [by_name[n] for n in names]


def prepare(repo: Repo, stages: list[Any]) -> tuple[list[Any], list[Any]]:
    """What ``dvc repro`` does before a stage's command, under DVC's lock: remove its outputs (persistent ones
    kept), then look it up in the run-cache, restoring the outputs of a hit. Returns (to run, restored)."""
    from dvc.repo import locked
    from dvc.stage.cache import RunCacheNotFoundError

    @locked
    def _prepare(repo: Repo) -> tuple[list[Any], list[Any]]:
        to_run, restored = [], []
        for stage in stages:
            stage.remove_outs(ignore_remove=False, force=False)
            try:
                repo.stage_cache.restore(stage)
                restored.append(stage)
            except RunCacheNotFoundError:
                to_run.append(stage)
        return to_run, restored

    return _prepare(repo)


def command_of(stage: Any) -> Job:
    """The stage's command as DVC's ``dvc repro`` runs it: the same shell and flags, working directory and
    environment (``DVC_ROOT``, ``DVC_STAGE``), and DVC's "Running stage" lines."""
    from dvc.stage.run import _enforce_cmd_list, _make_cmd, get_executable, prepare_kwargs

    commands = _enforce_cmd_list(stage.cmd)
    if len(commands) != 1:
        raise XgovError(f"{stage.addressing} has {len(commands)} commands; run it with dvc repro")
    kwargs = prepare_kwargs(stage)
    return Job(
        stage.addressing,
        _make_cmd(get_executable(), commands[0]),
        cwd=kwargs["cwd"],
        env=kwargs["env"],
        banner=f"Running stage '{stage.addressing}':\n> {commands[0]}",
    )


def record(repo: Repo, stages: list[Any]) -> None:
    """``dvc commit --force`` of all ``stages`` in one call and one ``dvc.lock`` write: each stage's deps and outputs
    hashed and saved to DVC's cache, its run-cache entry saved, then the lock file written once per dvc.yaml."""
    from dvc.repo import locked

    @locked
    def _record(repo: Repo) -> None:
        by_file: dict[str, list[Any]] = {}
        for stage in stages:
            by_file.setdefault(stage.dvcfile.path, []).append(stage)
        for group in by_file.values():
            for stage in group:
                stage.save()  # run_cache=True: the entry dvc repro would have saved
                stage.commit()
            group[0].dvcfile.dump_stages(group, update_pipeline=False)

    if stages:
        _record(repo)


def default_remote(root: Path = Path(".")) -> str | None:
    """The name of the default DVC remote (``dvc remote default``), or None."""
    with open_repo(root) as repo:
        return repo.config.get("core", {}).get("remote")


def output(args: Sequence[str], root: Path = Path(".")) -> str:
    """The stdout of a read-only ``dvc ARGS`` (``plots show --json``); XgovError with DVC's messages when it fails."""
    import subprocess

    try:
        result = subprocess.run([*DVC, *args], cwd=root, capture_output=True, text=True)
    except OSError as exc:
        raise XgovError(f"cannot run dvc: {exc}") from None
    if result.returncode != 0:
        sys.stderr.write(result.stderr)
        raise XgovError(f"'dvc {' '.join(args)}' exited {result.returncode} (see above)", exit_code=result.returncode)
    return result.stdout
