"""Benchmarks: each script prints side-by-side ratios against a baseline of the same run."""
