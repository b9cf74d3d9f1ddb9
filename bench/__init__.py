"""Benchmarks for xgov-digests: a synthetic corpus, a local git smart-HTTP server, the field's baseline.

python -m bench --help
"""
