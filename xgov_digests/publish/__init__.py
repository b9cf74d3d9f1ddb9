"""Publishing the digests to R2 under readable keys for search consumers (``make publish``): what to
upload and delete (``plan``), the prune guard (``guard``), the bucket's requests and the publish lease
(``bucket``), and one publish run (``run``). It may import ``core``, ``schemas`` (the stats schema), ``shard`` (its
progress display) and ``results``.
"""
