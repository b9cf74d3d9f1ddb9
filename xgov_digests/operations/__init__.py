"""The operations the verbs run (``commands`` parses and prints, these do the work, as DVC's ``dvc/repo/``),
driven from outside through DVC: ``xgov-digests repro -j N`` (``repro``: fetch, the changed shards' commands N at
once, one record of them all, aggregate), the one place ``dvc`` is called, as a process or through DVC's Python API,
with DVC's own state files checked and repaired before and after (``dvc``, ``dvc_repair``), commands each in a
process group that Ctrl-C and SIGTERM stop with all it started (``jobs``; ``procgroup`` runs one command
that way), the audit after ``dvc push`` that re-uploads what the remote lacks (``check_remote``), and the scale-out
checks and the coordinator's collect (``scaleout``) with a stage's run-cache entries checked against the remote's
objects (``runcache``). It may import ``core``. It reaches the other wings only by running ``dvc``, never by import
(an import would make it part of a stage's code).
"""
