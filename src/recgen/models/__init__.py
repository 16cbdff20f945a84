"""Model level: every recommender behind one contract (see ``base.Recommender``), looked up by name."""

from recgen.models.base import Recommender, Recs
from recgen.models.registry import MODELS, available_models, create_model, get_model_class, load_model

__all__ = [
    "MODELS",
    "Recommender",
    "Recs",
    "available_models",
    "create_model",
    "get_model_class",
    "load_model",
]
