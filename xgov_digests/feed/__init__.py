"""The feed, from its URL to the shards' manifests: the feed's bytes (``download``), one entry checked
(``entries``), the decoded, de-duplicated and sorted snapshot (``snapshot``), which repos belong to which shard
(``selection``) and the per-shard manifests DVC tracks (``manifest``). The ``fetch`` stage runs it (and
``dvcfiles`` for what shards that left ``shards.offsets`` leave behind). It may import ``core``.
"""
