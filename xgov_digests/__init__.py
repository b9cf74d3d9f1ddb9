"""xgov-digests: the library behind the pipeline, in wings that follow the data.

``feed`` (the feed to a snapshot and the shards' manifests) -> ``clone`` (one repo's checkout) -> ``digest`` (its
text) -> ``shard`` (one shard's run and its stats rows) -> ``results`` (merged stats, metrics, report) ->
``publish`` (the digests to R2), all on the shared ground floor ``core``; ``pipeline`` drives dvc from outside,
``commands`` is the installed command ``xgov-digests`` (one module per verb) and ``cli`` holds the older
``python -m`` commands that are not stages (``stages/`` holds those). Each wing's docstring says
what it does and which wings it may import.
"""
