"""Benchmarks: each runs its baseline in the same script and reports the ratio (bench/README.md)."""
