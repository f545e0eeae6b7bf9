"""End-to-end tests: the app on 127.0.0.1 against fake Slack, Teams and HubSpot servers."""
