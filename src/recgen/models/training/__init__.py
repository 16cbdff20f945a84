"""Training machinery shared by neural models: the trainer and the ``NetRecommender`` base."""

from recgen.models.training.trainer import Trainer, TrainerConfig

__all__ = ["Trainer", "TrainerConfig"]
