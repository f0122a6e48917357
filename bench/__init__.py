"""Benchmarks of govshare."""
