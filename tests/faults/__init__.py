"""Fault injection: crashes, rate limits and backlogs against the delivery machinery."""
