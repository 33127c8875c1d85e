"""Benchmarks: each prints a ratio against a reference run in the same process or script (bench/RESULTS.md)."""
