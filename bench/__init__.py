"""Benchmarks for mlgitfs: ratios measured side by side in one run on generated data.

Run ``python -m bench --help`` from the repository root; see bench/README.md.
"""
