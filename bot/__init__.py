"""The chat-facing process: HTTP app, chat adapters, worker and operator CLI (the outermost layer)."""
