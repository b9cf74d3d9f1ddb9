"""xgov-digests: the library behind the pipeline, in wings that follow the data.

``feed`` (the feed to a snapshot and the shards' manifests) -> ``clone`` (one repo's checkout) -> ``digest`` (its
text) -> ``shard`` (one shard's run and its stats rows) -> ``results`` (merged stats, metrics, report) ->
``publish`` (the digests to R2), all on the shared ground floor ``core`` and the shared file shapes ``schemas``;
``operations`` holds what the verbs do through ``dvc`` (run from outside, never imported by a stage) and
``commands`` is the installed command ``xgov-digests`` (one module per verb; ``stages/`` holds the commands
``dvc.yaml`` runs). Each wing's docstring says
what it does and which wings it may import.
"""
