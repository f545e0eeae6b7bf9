"""Slack: the Bolt app behind POST /slack/events (and Socket Mode), Block Kit rendering, and the outbox transport."""
