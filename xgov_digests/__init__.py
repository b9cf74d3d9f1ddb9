"""xgov-digests: the library behind the pipeline's stages (feed, shards, clones, digests, stats, storage)."""
