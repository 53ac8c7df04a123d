"""Benchmarks: each script prints a table of its figures and a ratio against a baseline run in the same process."""
