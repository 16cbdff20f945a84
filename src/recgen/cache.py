"""Where recgen keeps its on-disk caches (text embeddings, fitted item codes)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(kind: str) -> Path | None:
    """``$RECGEN_CACHE_DIR/<kind>`` (default ``~/.cache/recgen/<kind>``), or None where ``RECGEN_CACHE_DIR`` is
    ``off``, ``0`` or ``none`` (caching disabled). Read at each call, so a process can change it."""
    root = os.environ.get("RECGEN_CACHE_DIR", "~/.cache/recgen")
    if root.lower() in ("off", "0", "none"):
        return None
    return Path(root).expanduser() / kind
