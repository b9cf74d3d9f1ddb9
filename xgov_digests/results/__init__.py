"""What a run produced, read back for the ``aggregate`` stage and ``make plots``: the shards' stats
merged and checked against their manifests (``merge``), the digests on disk against the stats rows (``outputs``),
the metrics, plot data and report (``report``), the consumers' Parquet dataset (``dataset``), the DVC plots as one
HTML page that renders offline, with a PNG per plot (``plots``), and the template that makes plain ``dvc plots``
render offline (``plots_template``). It may import ``core``, ``schemas`` (the stats schema) and ``feed`` (the
manifests).
"""
