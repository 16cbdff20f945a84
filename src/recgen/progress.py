"""Progress bars (rich) for long work; silent when stderr is not a terminal or RECGEN_PROGRESS=0."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def enabled() -> bool:
    flag = os.environ.get("RECGEN_PROGRESS")
    if flag is not None:
        return flag not in ("0", "false", "no")
    return sys.stderr.isatty()


def track(iterable: Iterable[T], *, description: str = "", total: int | None = None) -> Iterator[T]:
    """Iterate with a progress bar on stderr (a no-op wrapper when progress is disabled)."""
    if not enabled():
        yield from iterable
        return
    from rich.console import Console
    from rich.progress import track as rich_track

    yield from rich_track(iterable, description=description, total=total, console=Console(stderr=True), transient=True)
