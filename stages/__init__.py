"""The pipeline's command-line entry points, one module per command that ``dvc.yaml`` or the Makefile runs."""
