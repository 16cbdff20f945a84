"""Model registry: name -> class, imported lazily so that listing models stays cheap."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from recgen.errors import ConfigError

MODELS: dict[str, str] = {
    "pop": "recgen.models.pop:Pop",
    "itemknn": "recgen.models.itemknn:ItemKNN",
    "ease": "recgen.models.ease:EASE",
    "bpr": "recgen.models.bpr:BPR",
    "sasrec": "recgen.models.sasrec:SASRec",
    "hstu": "recgen.models.hstu:HSTU",
    "multvae": "recgen.models.multvae:MultVAE",
    "diffrec": "recgen.models.diffrec:DiffRec",
    "ldiffrec": "recgen.models.ldiffrec:LDiffRec",
    "dreamrec": "recgen.models.dreamrec:DreamRec",
    "llmrank": "recgen.models.llmrank:LLMRank",
    "bigrec": "recgen.models.bigrec:BIGRec",
    "tiger": "recgen.models.tiger:TIGER",
}


def available_models() -> list[str]:
    return sorted(MODELS)


def resumable_models() -> list[str]:
    """Models trained by recgen's trainer, whose runs can keep checkpoints and resume (``configure_run``)."""
    return [name for name in available_models() if hasattr(get_model_class(name), "configure_run")]


def check_resumable(name: str, options: str) -> None:
    """ConfigError naming the resumable models unless ``name`` is one (``options``: the flag or flags asked for,
    e.g. ``--run-dir`` or ``--run-dir/--resume``)."""
    if not hasattr(get_model_class(name), "configure_run"):
        verb = "apply" if "/" in options else "applies"
        raise ConfigError(
            f"{options} {verb} to models trained by recgen's trainer ({', '.join(resumable_models())}), not {name!r}"
        )


def get_model_class(name: str) -> type:
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; available models: {', '.join(available_models())}")
    module, _, attr = MODELS[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def create_model(name: str, config: Any = None, **overrides: Any):
    """Instantiate a registered model by name with config overrides (strings are coerced to field types)."""
    return get_model_class(name)(config, **overrides)


def load_model(path: str | Path):
    """Load any saved model folder."""
    from recgen.models.base import Recommender

    return Recommender.load(path)
