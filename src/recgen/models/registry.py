"""Model registry: name -> class, imported lazily so that listing models stays cheap."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from recgen.errors import ConfigError

MODELS: dict[str, str] = {
    "pop": "recgen.models.classic.pop:Pop",
    "itemknn": "recgen.models.classic.itemknn:ItemKNN",
    "ease": "recgen.models.classic.ease:EASE",
    "contentknn": "recgen.models.classic.contentknn:ContentKNN",
    "bpr": "recgen.models.classic.bpr:BPR",
    "sasrec": "recgen.models.sequential.sasrec:SASRec",
    "hstu": "recgen.models.sequential.hstu:HSTU",
    "multvae": "recgen.models.diffusion.multvae:MultVAE",
    "diffrec": "recgen.models.diffusion.diffrec:DiffRec",
    "ldiffrec": "recgen.models.diffusion.ldiffrec:LDiffRec",
    "dreamrec": "recgen.models.diffusion.dreamrec:DreamRec",
    "llmrank": "recgen.models.llm.llmrank:LLMRank",
    "bigrec": "recgen.models.llm.bigrec:BIGRec",
    "tiger": "recgen.models.semantic.tiger:TIGER",
}


def available_models() -> list[str]:
    return sorted(MODELS)


def resumable_models() -> list[str]:
    """Models trained by recgen's trainer, whose runs can keep checkpoints and resume (``configure_run``)."""
    return [name for name in available_models() if get_model_class(name).resumable]


def check_resumable(name: str, options: str) -> None:
    """ConfigError naming the resumable models unless ``name`` is one (``options``: the flag or flags asked for,
    e.g. ``--run-dir`` or ``--run-dir/--resume``)."""
    if not get_model_class(name).resumable:
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
