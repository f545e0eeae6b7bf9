"""The desk tests' fixtures (tests/desk/helpers.py)."""

from tests.desk.helpers import desk_live

__all__ = ["desk_live"]
