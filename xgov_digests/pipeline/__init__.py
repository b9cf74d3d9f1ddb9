"""The pipeline driven from outside, through ``make`` and ``dvc`` processes: a command in its own
process group that Ctrl-C and SIGTERM stop with all it started (``procgroup``, for ``make -j N repro``), DVC's own
state files checked and repaired before a ``dvc`` command runs (``dvc_repair``), the audit after ``dvc push`` that
re-uploads what the remote lacks (``remote_audit``), the scale-out checks and the coordinator's collect
(``scaleout``), and a stage's run-cache entries checked against the remote's objects (``runcache``). It may import
``core``. It reaches the other wings only by running ``dvc``, never by import (an import would make it part of a
stage's code).
"""
