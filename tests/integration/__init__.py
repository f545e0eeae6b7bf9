"""Integration tests: commands and storage on SQLite and PostgreSQL."""
