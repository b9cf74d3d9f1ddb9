"""The ground floor every wing stands on: typed ``params.yaml`` and its round-trip editor (``params``),
every path of the pipeline and atomic writes (``files``), JSON logs and redaction (``logs``), one retry schedule
(``backoff``), one repository of the snapshot and its identity key (``repo``), S3/R2 access as DVC resolves it
(``s3``), a full disk named with its path, wherever a clone, a digest or a cache write meets it (``diskfull``), futures
waited for in the order they finish without holding their locks (``futures``), and the one exception base every
reported error derives from, with its exit code (``errors``).
It may import no other wing: what needs a wing belongs in that wing.
"""
