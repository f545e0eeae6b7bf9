"""Platform-neutral use cases: what a handoff, a click, a command or a tick does (no chat SDK, no SQL)."""
