"""The feed, from its URL to the shards' manifests: the feed's bytes (``download``), one entry checked
(``entries``), the decoded, de-duplicated and sorted snapshot (``snapshot``), which repos belong to which shard
(``selection``), the per-shard manifests DVC tracks (``manifest``), and what shards that left ``shards.offsets``
leave behind (``stale``). The ``fetch`` stage runs it. It may import ``core``.
"""
