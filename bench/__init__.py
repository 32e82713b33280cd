"""The benchmark: backups through the API against the dump tools run bare (``python -m
bench.benchmark`` from the repository root; see bench/README.md)."""
