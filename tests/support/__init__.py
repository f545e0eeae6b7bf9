"""Test support code shared by the test suites, benchmarks and dev.py."""
