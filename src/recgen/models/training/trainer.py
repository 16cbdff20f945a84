"""The trainer shared by every neural model.

AdamW with linear warm-up and cosine (or constant) decay, an optional wall-clock budget, gradient clipping, mixed
precision where the device has it (bf16 autocast on CUDA; plain fp32 on the CPU, where autocast is slower),
evaluation on validation every N epochs with early stopping on a metric (NDCG@10 by default), the best weights
kept for test, and true resume: a ``last`` checkpoint holds model, optimizer, scheduler, early-stopping state, RNG
states (python, numpy, torch and the data generator) and the epoch, so an interrupted run continues exactly where
it stopped. Checkpoints are written atomically (temp file, then rename). A progress bar shows the loss and
samples/s.

A model uses it through three callables: ``batches(epoch)`` yields training batches (the trainer owns the data
generator, so shuffling resumes exactly), ``loss_fn(batch)`` returns (loss, n_samples), and ``evaluate()``
returns a dict of validation metrics.
"""

from __future__ import annotations

import copy
import io
import json
import logging
import math
import pickle
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recgen.config import check
from recgen.errors import ConfigError, IntegrityError, TrainingDivergedError
from recgen.io import atomic_write_json, atomic_write_sealed, read_sealed
from recgen.models.training.distributed import (
    all_sum,
    broadcast_float,
    broadcast_module,
    sum_gradients,
    take_rows,
)
from recgen.models.training.runs import PROGRESS, progress_record
from recgen.ops.world import world
from recgen.progress import enabled as progress_enabled

log = logging.getLogger("recgen.training")


DIVERGENCE_FACTOR = 1e4  # an epoch loss this many times the first epoch's stops training as diverged


@dataclass(frozen=True, kw_only=True)
class TrainerConfig:
    epochs: int = 50  # maximum number of epochs
    lr: float = 1e-3  # peak learning rate
    weight_decay: float = 0.0  # AdamW decoupled weight decay
    warmup_steps: int = 0  # linear warm-up steps
    schedule: str = "constant"  # after warm-up: "constant" or "cosine" (to 0 at the last epoch)
    grad_clip: float = 1.0  # max gradient norm (0 = off)
    eval_every: int = 1  # validate every N epochs
    patience: int = 5  # validations without improvement before stopping
    metric: str = "ndcg@10"  # validation metric to maximise
    seed: int = 0
    # stop after the first epoch that ends this many wall-clock seconds into fit (0 = none); that epoch is
    # validated. With schedule="cosine" the decay then follows whichever runs out first, epochs or time (budgeted
    # training, Li et al., ICLR 2020), so a run that is stopped by the clock has annealed; such runs depend on
    # the machine's speed and are not bit-reproducible. The clock starts with each fit call (a run interrupted
    # before its budget ran out gets a fresh budget when resumed; one the budget stopped is finished).
    time_budget: float = 0.0

    def validate(self) -> None:
        check(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        check(self.lr > 0, f"lr must be > 0, got {self.lr}")
        check(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        check(self.warmup_steps >= 0, f"warmup_steps must be >= 0, got {self.warmup_steps}")
        check(
            self.schedule in ("constant", "cosine"), f"schedule must be 'constant' or 'cosine', got {self.schedule!r}"
        )
        check(self.grad_clip >= 0, f"grad_clip must be >= 0, got {self.grad_clip}")
        check(self.eval_every >= 1, f"eval_every must be >= 1, got {self.eval_every}")
        check(self.patience >= 1, f"patience must be >= 1, got {self.patience}")
        check(self.time_budget >= 0, f"time_budget must be >= 0 seconds (0 = no limit), got {self.time_budget}")


@dataclass
class TrainState:
    epoch: int = 0  # epochs completed
    step: int = 0
    best_value: float = float("-inf")
    best_epoch: int = 0
    bad_evals: int = 0
    log: list[dict[str, float]] = field(default_factory=list)
    samples: int = 0
    train_seconds: float = 0.0
    flops: float = 0.0
    stop_reason: str = ""  # why training ended before ``epochs``: "early_stopping" or "time_budget"
    wall_seconds: float = 0.0  # wall-clock time of fit so far, validation included, summed over resumed runs


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _rng_state(gen: torch.Generator) -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "data": gen.get_state(),
    }


def _set_rng_state(state: dict[str, Any], gen: torch.Generator) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    gen.set_state(state["data"])


def param_groups(module: torch.nn.Module, config: TrainerConfig) -> list[dict[str, Any]]:
    """AdamW's groups: weights decay, norms and biases do not; a network may give some of its top-level
    submodules their own learning rate (``param_lrs()``: name -> lr, e.g. L-DiffRec's denoiser, which its
    reference trains with a second optimiser). Without one, the two groups (decay, then no decay) of every fit."""
    lrs = module.param_lrs() if hasattr(module, "param_lrs") else {}
    groups: dict[tuple[bool, float], list[torch.nn.Parameter]] = {(False, config.lr): [], (True, config.lr): []}
    for name, p in module.named_parameters():
        no_decay = p.ndim < 2 or "norm" in name.lower() or "bias" in name
        groups.setdefault((no_decay, lrs.get(name.split(".")[0], config.lr)), []).append(p)
    return [
        {"params": ps, "weight_decay": 0.0 if no_decay else config.weight_decay, "lr": lr}
        for (no_decay, lr), ps in groups.items()
        if ps or lr == config.lr
    ]


def atomic_torch_save(obj: Any, path: Path) -> None:
    """torch.save, sealed with its SHA-256, through a temp file in the same folder, then renamed: never a
    half-written checkpoint, and a changed byte is caught when it is read back (``load_checkpoint``)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_sealed(path, buffer.getvalue())


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> Any:
    """Read a checkpoint written by ``atomic_torch_save``, checked against its seal.

    Raises:
        IntegrityError: a corrupt, truncated or changed checkpoint (naming the file and what to do).
    """
    hint = f"delete {path.parent} and train again (or resume from another run folder)"
    payload = read_sealed(path, "training checkpoint", hint)
    try:
        return torch.load(io.BytesIO(payload), map_location=device, weights_only=False)
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, pickle.UnpicklingError) as exc:
        detail = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise IntegrityError(f"{path}: not a readable training checkpoint ({detail}); {hint}") from None


def config_differences(ours: dict[str, Any], theirs: dict[str, Any], scoring_fields: Iterable[str] = ()) -> list[str]:
    """The fields (sorted) in which two run configs (as JSON) differ, leaving out ``scoring_fields``, read only when
    recommending: what makes a run folder another training (``Trainer`` on resume, ``adopt_same_training``)."""
    skip = set(scoring_fields)
    return sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k) and k not in skip)


class Trainer:
    """Runs the optimisation loop for one model (see the module docstring).

    Args:
        module: the ``nn.Module`` being trained.
        config: TrainerConfig.
        batches: ``batches(epoch, generator)`` -> iterable of batches for one epoch.
        loss_fn: ``loss_fn(batch)`` -> (scalar loss, number of samples in the batch), or (loss, samples, terms)
            where the loss is a mean over ``terms`` items (e.g. positions): data-parallel runs weight by them.
        evaluate: ``evaluate()`` -> validation metrics, or None to train without selection.
        run_dir: folder for ``last.pt``/``best.pt``/``config.json`` (optional; needed for resume).
        flops_per_batch: ``f(batch)`` -> model FLOPs of one training step on that batch (forward + backward),
            counted on the shapes actually computed; gives achieved GFLOP/s.
        on_epoch_end: optional hook ``f(state)``; raising from it interrupts the run (used by tests).
        resolved_config: the run's whole config, written to ``run_dir/config.json`` and checked on resume.
        scoring_fields: fields of ``resolved_config`` read only when recommending (a model's ``decode_fields``):
            a finished or interrupted run resumes under other values of them (the weights do not depend on them).
    """

    def __init__(
        self,
        module: torch.nn.Module,
        config: TrainerConfig,
        *,
        batches: Callable[[int, torch.Generator], Iterable[Any]],
        loss_fn: Callable[[Any], tuple[torch.Tensor, int]],
        evaluate: Callable[[], dict[str, float]] | None = None,
        run_dir: str | Path | None = None,
        flops_per_batch: Callable[[Any], float] | None = None,
        steps_per_epoch: int | None = None,
        on_epoch_end: Callable[[TrainState], None] | None = None,
        resolved_config: dict[str, Any] | None = None,
        scoring_fields: Iterable[str] = (),
    ) -> None:
        self.module = module
        self.config = config
        self.batches = batches
        self.loss_fn = loss_fn
        self.evaluate = evaluate
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.flops_per_batch = flops_per_batch
        self.steps_per_epoch = steps_per_epoch
        self.on_epoch_end = on_epoch_end
        self.resolved_config = resolved_config or {}
        self.scoring_fields = frozenset(scoring_fields)
        self.device = next(module.parameters()).device
        self.state = TrainState()
        self.best_state_dict: dict[str, torch.Tensor] | None = None
        self.generator = torch.Generator().manual_seed(config.seed)
        self.optimizer = torch.optim.AdamW(param_groups(module, config), lr=config.lr)
        total = max((steps_per_epoch or 1) * config.epochs, 1)
        self._started = time.perf_counter()  # reset when fit starts; the time budget's clock

        def schedule(step: int) -> float:
            if config.warmup_steps and step < config.warmup_steps:
                return (step + 1) / config.warmup_steps
            if config.schedule == "cosine":
                progress = (step - config.warmup_steps) / max(total - config.warmup_steps, 1)
                if config.time_budget:  # budgeted training: decay by whichever runs out first, epochs or time
                    progress = max(progress, (time.perf_counter() - self._started) / config.time_budget)
                return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
            return 1.0

        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedule)
        self.autocast = self.device.type == "cuda" and torch.cuda.is_bf16_supported()

    # ------------------------------------------------------------------------------- checkpoints
    def _checkpoint(self) -> dict[str, Any]:
        return {
            "module": self.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "state": self.state.__dict__,
            "rng": _rng_state(self.generator),
            "best": self.best_state_dict,
        }

    def save_last(self) -> None:
        """``last.pt``, then ``progress.json`` (the state without weights, read by ``recgen runs``)."""
        if self.run_dir is not None and world()[0] == 0:
            atomic_torch_save(self._checkpoint(), self.run_dir / "last.pt")
            atomic_write_json(self.run_dir / PROGRESS, progress_record(self.config.__dict__, self.state.__dict__))

    def resume(self) -> bool:
        """Load ``run_dir/last.pt`` if present; returns whether a run was resumed. The run folder's
        ``config.json`` must match this run's resolved config: continuing another run's weights and optimizer
        under a different config would give a result that belongs to neither."""
        if self.run_dir is None or not (self.run_dir / "last.pt").exists():
            return False
        self._check_same_config()
        ckpt = load_checkpoint(self.run_dir / "last.pt", self.device)
        self.module.load_state_dict(ckpt["module"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.state = TrainState(**ckpt["state"])
        self.best_state_dict = ckpt["best"]
        _set_rng_state(ckpt["rng"], self.generator)
        return True

    def _check_same_config(self) -> None:
        path = self.run_dir / "config.json"
        if not path.exists() or not self.resolved_config:
            return
        try:
            theirs = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigError(f"cannot read {path} to check the run being resumed: {e}") from e
        ours = json.loads(json.dumps(self.resolved_config, default=str))
        differ = config_differences(ours, theirs, self.scoring_fields)
        if differ:
            shown = ", ".join(f"{k} ({theirs.get(k)!r} there, {ours.get(k)!r} now)" for k in differ)
            raise ConfigError(
                f"cannot resume the run in {self.run_dir}: it was made with a different config: {shown}; "
                "use the same settings, or another run folder (or none) to start afresh"
            )

    # -------------------------------------------------------------------------------------- loop
    def fit(self, *, resume: bool = False) -> TrainState:
        cfg = self.config
        if resume:
            if self.resume() and world()[0] == 0:
                best = (
                    f"; best {cfg.metric} {self.state.best_value:.4f} at epoch {self.state.best_epoch}"
                    if math.isfinite(self.state.best_value)
                    else ""
                )
                done = f", finished ({self.state.stop_reason})" if self.state.stop_reason else ""
                log.info("resumed after epoch %d of %d%s%s", self.state.epoch, cfg.epochs, best, done)
        else:
            seed_everything(cfg.seed)
            self.generator.manual_seed(cfg.seed)
        # what an interrupted run had done before this fit took over (0 for a fresh run)
        self.resumed_from_epoch, self.resumed_wall_seconds = self.state.epoch, self.state.wall_seconds
        if self.run_dir is not None and world()[0] == 0:
            atomic_write_json(self.run_dir / "config.json", self.resolved_config)
        rank, size = world()
        if size > 1:
            broadcast_module(self.module)  # one set of starting weights (and a resumed run's, from rank 0's file)
        show = progress_enabled() and rank == 0
        self._started = time.perf_counter()
        # a resumed run that had stopped (early stopping or its time budget) is finished: it trains no further
        while self.state.epoch < cfg.epochs and not self.state.stop_reason:
            epoch = self.state.epoch + 1
            self.module.train()
            t0 = time.perf_counter()
            total_loss, n_seen = 0.0, 0
            iterator = self.batches(epoch, self.generator)
            bar = None
            if show:
                from rich.progress import Progress

                bar = Progress(transient=True)
                bar.start()
                task = bar.add_task(f"epoch {epoch}", total=self.steps_per_epoch)
            for batch in iterator:
                if size > 1:
                    batch = take_rows(batch, rank, size)  # this process's share of the global batch
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
                    out = self.loss_fn(batch)
                # (loss, samples) or (loss, samples, terms): the loss is a mean over `terms` (positions, say)
                loss, n = out[0], out[1]
                terms = out[2] if len(out) > 2 else n
                if size > 1:  # the global batch's mean loss: each rank's loss weighted by its share of the terms
                    n_all, terms_all = all_sum(n), all_sum(terms)
                    value = all_sum(loss.item() * terms) / max(terms_all, 1)
                else:
                    n_all, terms_all, value = n, terms, loss.item()
                if not math.isfinite(value):
                    raise TrainingDivergedError(
                        f"training diverged: the loss became {value} at epoch {epoch}; lower lr (now {cfg.lr:g}) "
                        "or check the data"
                    )
                self.optimizer.zero_grad(set_to_none=True)
                if size > 1:
                    (loss * (terms / max(terms_all, 1))).backward()
                    sum_gradients(self.module)
                else:
                    loss.backward()
                if cfg.grad_clip:
                    torch.nn.utils.clip_grad_norm_(self.module.parameters(), cfg.grad_clip)
                self.optimizer.step()
                self.scheduler.step()
                self.state.step += 1
                total_loss += value * n_all
                n_seen += n_all
                if self.flops_per_batch is not None:
                    self.state.flops += self.flops_per_batch(batch)
                if bar is not None:
                    rate = n_seen / max(time.perf_counter() - t0, 1e-9)
                    bar.update(
                        task,
                        advance=1,
                        description=f"epoch {epoch} loss {total_loss / n_seen:.4f} {rate:.0f} samples/s",
                    )
            if bar is not None:
                bar.stop()
            seconds = time.perf_counter() - t0
            self.state.train_seconds += seconds
            self.state.samples += n_seen
            entry: dict[str, float] = {
                "epoch": epoch,
                "loss": total_loss / max(n_seen, 1),
                "samples_per_second": n_seen / max(seconds, 1e-9),
            }
            self._check_divergence(entry["loss"], epoch)
            stop = False
            out_of_time = bool(cfg.time_budget) and time.perf_counter() - self._started >= cfg.time_budget
            if size > 1:  # rank 0's clock decides for everyone
                out_of_time = bool(broadcast_float(float(out_of_time)))
            if self.evaluate is not None and (epoch % cfg.eval_every == 0 or epoch == cfg.epochs or out_of_time):
                self.module.eval()
                value = self.evaluate()[cfg.metric] if rank == 0 else None
                if size > 1:  # validated once, on rank 0: every process takes the same decision
                    value = broadcast_float(value)
                entry[f"valid_{cfg.metric}"] = value
                if value > self.state.best_value:
                    self.state.best_value, self.state.best_epoch, self.state.bad_evals = value, epoch, 0
                    self.best_state_dict = copy.deepcopy(self.module.state_dict())
                    if self.run_dir is not None and rank == 0:
                        atomic_torch_save(self.best_state_dict, self.run_dir / "best.pt")
                else:
                    self.state.bad_evals += 1
                    stop = self.state.bad_evals >= cfg.patience
                    if stop:
                        self.state.stop_reason = "early_stopping"
            if out_of_time and not stop and epoch < cfg.epochs:
                stop, self.state.stop_reason = True, "time_budget"
                log.info("epoch %d: time budget of %.0f s spent, stopping", epoch, cfg.time_budget)
            # the run's clock at the end of this epoch (validation included; an interrupted run's part added): the
            # time to reach a validation value, e.g. beside another library's run
            entry["wall_seconds"] = self.resumed_wall_seconds + time.perf_counter() - self._started
            self.state.log.append(entry)
            if rank == 0:
                log.info("epoch %d: " + ", ".join(f"{k} {v:.4g}" for k, v in entry.items() if k != "epoch"), epoch)
            self.state.epoch = epoch
            self.state.wall_seconds = self.resumed_wall_seconds + time.perf_counter() - self._started
            self.save_last()
            if self.on_epoch_end is not None:
                self.on_epoch_end(self.state)
            if stop:
                break
        if self.best_state_dict is not None:
            self.module.load_state_dict(self.best_state_dict)
        else:
            self.state.best_epoch = self.state.epoch
        self.module.eval()
        return self.state

    def _check_divergence(self, loss: float, epoch: int) -> None:
        """An epoch loss DIVERGENCE_FACTOR times the first epoch's (or above 1e12) is an exploding run, not a
        result: stop before it is evaluated and written as one."""
        first = self.state.log[0]["loss"] if self.state.log else loss
        if loss > 1e12 or (abs(first) > 1e-12 and loss > DIVERGENCE_FACTOR * abs(first)):
            raise TrainingDivergedError(
                f"training diverged: epoch {epoch} loss {loss:.4g} against {first:.4g} in the first epoch; lower lr "
                f"(now {self.config.lr:g}), add regularisation or gradient clipping (grad_clip), or check the data"
            )

    def speed(self) -> dict[str, float]:
        """Training throughput (samples/s) and, given a FLOP count per batch, achieved GFLOP/s and total FLOPs."""
        sps = self.state.samples / max(self.state.train_seconds, 1e-9)
        out = {"train_samples_per_second": sps, "train_seconds": self.state.train_seconds}
        if self.flops_per_batch is not None and self.state.flops:
            out["achieved_gflops"] = self.state.flops / max(self.state.train_seconds, 1e-9) / 1e9
            out["train_flops"] = self.state.flops
        return out
