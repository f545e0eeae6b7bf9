"""The SLA domain: pure, no I/O, no SDKs."""
