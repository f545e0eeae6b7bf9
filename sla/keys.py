"""Segment keys: how a lead's `source` or `offer` is compared, for history and live leads alike."""

from __future__ import annotations

import re
from functools import lru_cache

_SEPARATORS = re.compile(r"[\s_-]+")


@lru_cache(maxsize=4096)   # every condition compares its values on every lead: few distinct values
def segment_key(value: str | None) -> str | None:
    """Trimmed, lower-cased, each run of spaces, hyphens or underscores made one `_`; blank is None.

    `"Direct Traffic"` and `" direct-traffic "` are both `direct_traffic`.
    """
    if value is None:
        return None
    text = value.strip().lower()
    if not text:
        return None
    return _SEPARATORS.sub("_", text)
