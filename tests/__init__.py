"""The test suite: unit, integration, end-to-end (real HTTP on 127.0.0.1), faults and the desk."""
