"""DVC's own files, kept in step with ``params.yaml`` from inside a stage: what shards that left ``shards.offsets``
leave behind in ``dvc.lock``, in DVC's ``.gitignore`` files and among the outputs DVC no longer knows
(``stale_shards``; the ``fetch`` stage removes them, ``xgov-digests shards`` names them). What the verbs repair in
DVC's state files before and after a ``dvc`` command is ``operations.dvc_repair``. It may import ``core``.
"""
