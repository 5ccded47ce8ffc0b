"""Seeds: every random draw in the study derives from the config seed and names (never from time)."""

from __future__ import annotations

import hashlib


def derive_seed(*parts) -> int:
    """A stable 31-bit seed from any parts (ints, strings): the same parts give the same seed on every machine."""
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF
