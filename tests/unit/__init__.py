"""Unit tests: pure functions, renderers and parsers."""
