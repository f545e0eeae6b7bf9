"""The digest by e-mail: an outbox transport over SMTP (`SLABOT_SMTP_URL`, `SLABOT_SMTP_FROM`)."""
