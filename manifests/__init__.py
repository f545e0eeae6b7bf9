"""The Slack and Teams app manifests, built from the agreement."""
