"""The shapes of the files that several wings share: the per-repo stats schema (``stats``: one row per assigned
repo, one parquet file per shard), which the ``shard`` stage writes and ``aggregate``, ``results``, ``publish`` and
``retry`` read. Every wing may import it. It may import ``core``.
"""
