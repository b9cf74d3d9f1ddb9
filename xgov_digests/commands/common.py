"""What several verbs share: the remote checks around ``dvc push`` and ``dvc pull``, staging a run's files for git,
the scale-out guard and commit."""

from __future__ import annotations

import argparse
import subprocess

from xgov_digests.core.errors import XgovError
from xgov_digests.core.params import PARAMS_FILE, load_params
from xgov_digests.operations.check_remote import check_remote, check_remote_access
from xgov_digests.operations.scaleout import ScaleoutError, changed_tracked_params

RESULT_PATHS = ["dvc.lock", "params.yaml", "data", "reports"]


def remote_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-r", "--remote", default=None, help="the DVC remote (default: the default remote)")


def remote_access(remote: str | None, write: bool = False) -> None:
    """Before ``dvc push``/``pull``: the remote's bucket answers (``write``: and takes writes), or XgovError."""
    print(check_remote_access(remote, load_params(PARAMS_FILE).storage.timeout, write), flush=True)


def remote_audit(remote: str | None, repair: bool = False, verify: float = 0.0) -> None:
    """The remote holds every file of dvc.lock's outputs (``repair``: re-uploads what it lacks), or XgovError."""
    check_remote(remote, load_params(PARAMS_FILE).storage.timeout, repair, verify)


def remote_flag(remote: str | None) -> list[str]:
    return ["-r", remote] if remote else []


def git(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["git", *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise XgovError(f"'git {' '.join(args)}' failed: {result.stderr.strip()[-500:]}")
    return result


def stage_results(verb: str) -> None:
    """``git add`` what a run changed for git: dvc.lock, params.yaml, DVC's .gitignore files, metrics and plot data."""
    git("add", "-A", "--", *RESULT_PATHS)
    staged = git("diff", "--cached", "--name-status", "--", *RESULT_PATHS).stdout.strip()
    if not staged:
        print(f"{verb}: nothing changed for git: nothing to commit")
        return
    print(staged)
    print(f"{verb}: the run's files are staged; next: git commit -m 'digests <date>' && git push")


def scaleout_guard(verb: str) -> None:
    """Every machine of a scale-out run must run the committed code and tracked params (they key the run-cache)."""
    if git("diff", "--quiet", "HEAD", "--", "stages", "xgov_digests", "dvc.yaml", check=False).returncode != 0:
        raise XgovError(
            "stages/, xgov_digests/ or dvc.yaml differ from the last commit; every machine must run the "
            "committed code (commit and git push first)"
        )
    try:
        changed = changed_tracked_params()
    except ScaleoutError as exc:
        raise XgovError(f"cannot tell whether tracked params differ from the last commit ({exc}): refusing") from None
    if changed:
        raise XgovError(
            f"tracked params differ from the last commit ({' '.join(changed)}); every machine must run "
            "the committed ones (commit and git push first)"
        )


def scaleout_commit(verb: str, message: str, paths: list[str]) -> None:
    """Commit exactly what DVC wrote for git under ``paths`` (dvc.lock, .gitignore files, metrics.json)."""
    git("add", "-A", "--", *paths)
    if git("diff", "--cached", "--quiet", "--", *paths, check=False).returncode == 0:
        print(f"{verb}: nothing new to commit")
        return
    git("commit", "-q", "-m", message, "--", *paths)
    print(f"{verb}: committed {git('log', '-1', '--format=%h %s').stdout.strip()}")
