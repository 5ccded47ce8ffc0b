"""What error messages tell the researcher to do: the nearest valid names, and how to fetch what an offline node lacks.
A leaf module: every stage's errors use it, it imports nothing of the package."""

from __future__ import annotations

import difflib
import os

PREFETCH_HINT = "run `snakemake --cores 1 prefetch` (with your --configfile) where there is internet"


def did_you_mean(word, choices) -> str:
    """'; did you mean ...?' naming up to three close matches of `word` among `choices`, or ''."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def hub_offline() -> bool:
    """Whether jobs must not download (HF_HUB_OFFLINE set, as the workflow sets it for every job but prefetch)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
