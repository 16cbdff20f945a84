"""recgen: generative recommendation with honest, full-ranking evaluation.

Heavy parts (torch models, the CLI) are imported lazily so ``import recgen`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Dataset": "recgen.data.dataset",
    "Vocabulary": "recgen.data.dataset",
    "load_dataset": "recgen.data.loaders",
    "Split": "recgen.data.split",
    "leave_one_out": "recgen.data.split",
    "evaluate": "recgen.eval.evaluator",
    "Recs": "recgen.models.base",
    "Recommender": "recgen.models.base",
    "create_model": "recgen.models.registry",
    "load_model": "recgen.models.registry",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'recgen' has no attribute {name!r}")
