"""Benchmarks for the quality targets of DESIGN.md section 5; `python -m benchmarks` prints a table."""
