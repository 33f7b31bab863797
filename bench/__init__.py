"""Benchmarks: `python -m bench --help` (or `make bench`)."""
