"""Every query: tables, migrations and keyword-only functions named for what they hold."""
