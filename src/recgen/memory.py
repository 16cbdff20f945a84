"""Memory estimates: a model whose peak memory is predictable (EASE's dense Gram matrix, ItemKNN's co-occurrence
matrix) says what it will need before it starts, and refuses when that does not fit, instead of being killed
by the kernel an hour later (EASE on a 23,715-item catalogue peaked at 9.2 GB with no word beforehand).

The limit is the memory available now (``MemAvailable`` in /proc/meminfo), or ``RECGEN_MEMORY_LIMIT`` (e.g.
``16G``, ``800M``) where set, for a machine with swap or a job that should stay below a budget.
"""

from __future__ import annotations

import os
import re

from recgen.errors import ConfigError, RecgenError

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


class InsufficientMemoryError(RecgenError, MemoryError):
    """A fit would need more memory than the limit allows."""


def parse_size(text: str) -> int:
    """``"16G"``, ``"800M"``, ``"1.5g"`` or a number of bytes -> bytes."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgtKMGT]?)i?[bB]?\s*", str(text))
    if m is None:
        raise ConfigError(f"RECGEN_MEMORY_LIMIT must be a size such as 16G or 800M, got {text!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def memory_limit() -> tuple[int | None, str]:
    """(bytes, where the figure comes from); (None, ...) where neither the variable nor /proc/meminfo says."""
    env = os.environ.get("RECGEN_MEMORY_LIMIT")
    if env:
        return parse_size(env), "RECGEN_MEMORY_LIMIT"
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "available memory"
    except OSError:
        pass
    return None, "unknown"


def human(n: float) -> str:
    """Bytes as GB (or MB below one GB)."""
    return f"{n / (1 << 30):.1f} GB" if n >= 1 << 30 else f"{n / (1 << 20):.0f} MB"


def check_memory(need: float, what: str, alternative: str) -> None:
    """Raise InsufficientMemoryError when ``need`` bytes exceed the limit, naming the estimate, the limit, the
    variable that overrides it and ``alternative`` (what to do instead)."""
    limit, source = memory_limit()
    if limit is not None and need > limit:
        raise InsufficientMemoryError(
            f"{what} needs about {human(need)} of memory, but the limit ({source}) is {human(limit)}; "
            f"{alternative}, or set RECGEN_MEMORY_LIMIT (e.g. RECGEN_MEMORY_LIMIT={int(need / (1 << 30)) + 1}G) "
            "to fit anyway"
        )


def peak_rss_mb() -> float:
    """This process's resident-memory high-water mark so far, in MiB (``getrusage``: Linux reports KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
