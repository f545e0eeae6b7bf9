"""The web process: the FastAPI app factory, the HTTP API and its docs, the intake batcher, telemetry."""
