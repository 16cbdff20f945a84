"""Where this process stands in a ``torch.distributed`` run: shared by the trainer (``models.training``) and the
evaluator (``eval``), which sits below the models in the layout and so cannot import the trainer's module."""

from __future__ import annotations

import torch


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside a distributed run."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1
