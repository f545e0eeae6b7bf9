"""The desk's tests: its queries, its HTTP pages and a real browser."""
