"""Data-parallel training over ``torch.distributed`` (gloo on the CPU, NCCL on GPUs), launched by torchrun.

``recgen bench ... --nproc N`` (or ``torchrun --nproc_per_node N -m recgen.cli.main bench ...``) starts N
processes; the trainer then runs each global batch across them: rank r takes rows r, r+N, r+2N, ... of every
batch the model's batcher yields (the same batches in every process: one seed, one generator), the gradients of
the rank losses, each weighted by its share of the batch's loss terms (rows, or positions for the sequential
models), are summed over the processes with
``all_reduce`` (what DistributedDataParallel does after backward, here without wrapping the module: the models'
loss functions call their networks' own methods, which DDP's forward hooks would not see), and every process
takes the same optimizer step. Validation runs once, on rank 0, and its value is broadcast so that every process
makes the same early-stopping decision; rank 0 alone writes checkpoints and results.

With the same global batch, an N-process run follows the 1-process run's loss curve up to float summation order
(dropout and sampled negatives draw per process, so those runs agree in distribution, not number for number).
"""

from __future__ import annotations

import os
from typing import Any

import torch

from recgen.ops.world import world


def init_from_env() -> bool:
    """Join the process group torchrun describes in the environment (WORLD_SIZE > 1); returns whether it did."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not torch.distributed.is_available():
        return False
    if not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and os.environ.get("RECGEN_DDP_BACKEND") != "gloo" else "gloo"
        torch.distributed.init_process_group(backend=backend)
    return True


def is_main() -> bool:
    return world()[0] == 0


def take_rows(batch: Any, rank: int, size: int) -> Any:
    """This rank's rows (r, r + size, ...) of a batch: a tensor, or a tuple / list / dict of tensors sharing the
    leading dimension (anything else is passed through unchanged)."""
    if isinstance(batch, torch.Tensor):
        return batch[rank::size] if batch.ndim else batch
    if isinstance(batch, tuple | list):
        return type(batch)(take_rows(x, rank, size) for x in batch)
    if isinstance(batch, dict):
        return {k: take_rows(v, rank, size) for k, v in batch.items()}
    return batch


def all_sum(value: float) -> float:
    t = torch.tensor([float(value)], dtype=torch.float64)
    torch.distributed.all_reduce(t)
    return float(t.item())


def sum_gradients(module: torch.nn.Module) -> None:
    for p in module.parameters():
        if p.requires_grad:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            torch.distributed.all_reduce(p.grad)


def broadcast_module(module: torch.nn.Module) -> None:
    """Every rank starts from rank 0's weights."""
    for t in list(module.parameters()) + list(module.buffers()):
        torch.distributed.broadcast(t.data, 0)


def broadcast_float(value: float | None) -> float:
    t = torch.tensor([float("nan") if value is None else float(value)], dtype=torch.float64)
    torch.distributed.broadcast(t, 0)
    return float(t.item())
