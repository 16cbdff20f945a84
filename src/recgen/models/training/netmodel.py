"""``NetRecommender``: the part every recommender with one trained torch module (``net_``) shares.

It runs the shared ``Trainer`` (validation NDCG@10 every N epochs, early stopping, best weights kept, resumable
when a run folder is configured), keeps the float64 inference copy that makes rankings independent of the batch
size, and saves/loads the module's weights. A model provides the batches and the loss; building the network
stays with the model (its constructor arguments differ).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recgen.models.base import Recommender
from recgen.models.training.trainer import Trainer, TrainerConfig, config_differences


class NetRecommender(Recommender):
    resumable = True
    run_dir: Path | None = None
    resume: bool = False
    on_epoch_end: Callable[[Any], None] | None = None
    eval_batch_size: int = 512  # users per batch when validating during training

    def configure_run(
        self,
        run_dir: str | Path | None = None,
        *,
        resume: bool = False,
        on_epoch_end: Callable[[Any], None] | None = None,
    ) -> NetRecommender:
        """Where the trainer keeps ``last.pt``/``best.pt`` (needed to resume), whether the next ``fit`` resumes
        from ``run_dir/last.pt``, and an optional per-epoch hook. Returns self."""
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.resume = resume
        self.on_epoch_end = on_epoch_end
        return self

    def adopt_same_training(self, candidates: Iterable[Path], run_dir: Path) -> Path | None:
        """Copy into ``run_dir`` (a temp folder, then a rename) the first of ``candidates`` (run folders with a
        ``last.pt``) trained with this model's config but for its ``decode_fields``, read only when recommending:
        the same training, to resume and score otherwise. Returns the folder copied, or None (nothing changed)."""
        if not self.decode_fields:
            return None
        ours = json.loads(json.dumps(self._resolved_config(), default=str))
        for other in candidates:
            if other == run_dir or not (other / "last.pt").exists():
                continue
            try:
                theirs = json.loads((other / "config.json").read_text())
            except (OSError, json.JSONDecodeError):
                continue
            if not config_differences(ours, theirs, self.decode_fields):
                tmp = run_dir.with_name(run_dir.name + ".copying")
                shutil.rmtree(tmp, ignore_errors=True)
                shutil.copytree(other, tmp)
                if run_dir.exists():  # a folder without last.pt holds nothing to keep
                    shutil.rmtree(run_dir)
                tmp.rename(run_dir)
                return other
        return None

    def _resolved_config(self) -> dict[str, Any]:
        """The run's whole config as a run folder's ``config.json`` holds it (the model's name and every field)."""
        return {"model": self.name, **dataclasses.asdict(self.config)}

    def _trainer_config(self) -> TrainerConfig:
        fields = {f.name for f in dataclasses.fields(TrainerConfig)}
        return TrainerConfig(**{k: v for k, v in dataclasses.asdict(self.config).items() if k in fields})

    def _train(
        self,
        *,
        batches: Callable[[int, torch.Generator], Iterable[Any]],
        loss_fn: Callable[[Any], tuple[torch.Tensor, int]],
        valid: Any,
        steps_per_epoch: int,
        flops_per_batch: Callable[[Any], float] | None = None,
    ) -> None:
        """Train ``self.net_`` with the shared trainer; validation (when given) chooses the kept weights."""
        evaluate_fn = None
        if valid is not None:
            from recgen.eval.evaluator import evaluate

            def evaluate_fn() -> dict[str, float]:
                self._infer_net_ = None  # weights changed
                self.fitted_ = True
                return evaluate(self, valid, ks=(10,), batch_size=self.eval_batch_size).metrics

        self.trainer_ = Trainer(
            self.net_,
            self._trainer_config(),
            batches=batches,
            loss_fn=loss_fn,
            evaluate=evaluate_fn,
            run_dir=self.run_dir,
            flops_per_batch=flops_per_batch,
            steps_per_epoch=steps_per_epoch,
            on_epoch_end=self.on_epoch_end,
            resolved_config=self._resolved_config(),
            scoring_fields=self.decode_fields,
        )
        state = self.trainer_.fit(resume=self.resume)
        self.best_epoch_ = state.best_epoch
        self.stop_reason_ = state.stop_reason
        self.train_log_ = state.log
        self.train_speed_ = self.trainer_.speed()
        # a resumed run: the epochs and fit time the interrupted run had done before this process took over
        self.resumed_from_epoch_ = self.trainer_.resumed_from_epoch
        self.resumed_wall_seconds_ = self.trainer_.resumed_wall_seconds
        self._infer_net_ = None

    def _inference_net(self) -> torch.nn.Module:
        if getattr(self, "_infer_net_", None) is None:
            self._infer_net_ = copy.deepcopy(self.net_).double().eval()
        return self._infer_net_

    def _extra_meta(self) -> dict[str, Any]:
        return {"best_epoch": getattr(self, "best_epoch_", None)}

    def _state(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy() for k, v in self.net_.state_dict().items()}

    def _set_net(self, net: torch.nn.Module, tensors: dict[str, np.ndarray]) -> None:
        """Install a freshly built network with saved weights (for ``_load_state``)."""
        net.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()})
        self.net_ = net.eval()
        self._infer_net_ = None
