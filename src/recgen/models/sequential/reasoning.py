"""Latent reasoning for next-item models: ReaRec (Tang et al., 2025, "Think Before Recommend: Unleashing the Latent
Reasoning Power for Sequential Recommendation").

After the encoder's last position, ``reason_steps`` (K) further steps feed the last hidden state back into the same
encoder as a new position: the input of step k is ``Dropout(LayerNorm(h_{k-1} + r_k))`` with ``r_k`` a learned
reasoning-position embedding (apart from the item positions), the encoder runs causally over the items and the
earlier reasoning steps, and its output at the new position is ``h_k``. ``h_0`` is the plain model's state.
``reason_steps=0`` is the plain model, bit for bit (no parameter is added). Two training schemes, as in the paper
and the reference code (TangJiakai/ReaRec, ``src/models/ERL.py``, ``PRL.py``, ``utils/layers.py``):

- **ERL** (ensemble reasoning learning): every step is supervised with the next item (cross-entropy over the
  catalogue), a KL term rewards steps whose distributions differ (``- reason_kl * mean_{i != j} KL(p_j || p_i)``,
  one side detached, as the reference; summed over one side first and fused with its gradient and the steps'
  cross-entropies into one pass over the logits, ``erl_loss``),
  and the user state is the mean of the K + 1 states.
- **PRL** (progressive reasoning learning): step k's cross-entropy is taken at temperature
  ``tau * reason_temp_decay ** (K - k)`` (the last step at the model's own tau, earlier ones softer), and after
  ``reason_warmup`` epochs a second pass with Gaussian noise (std ``reason_noise``) on the reasoning inputs is pulled
  towards the clean pass by an in-batch contrastive loss at each reasoning step; the user state is ``h_K``.

Where recgen differs from the reference code, and why:

- The reference trains one target per prefix (the reasoning sits after every training prefix). recgen keeps its
  models' loss at every position (step 0 of each prefix, as the plain model) and adds the reasoning losses on one
  prefix per training sequence and epoch, drawn uniformly among its positions and re-encoded as it would be at
  inference, each reasoning sample weighted as one position of the base loss (``_reasoning_sample`` and
  ``_loss`` in ``next_item.py`` say why: reasoning at the last position only learnt those pairs by heart, and at
  full weight it took over the encoder); ``train_prefixes=true`` makes every prefix a sample, the reference's
  setting, at its cost (an epoch encodes every prefix of every sequence).
- Step 0 is trained by that base loss at the model's tau; the reference's PRL gives step 0 the softest
  temperature and its ERL supervises only the mean of the states (the paper writes a sum over steps, which ERL here
  follows).
- Keys and values are cached, as in the reference: each reasoning step runs the encoder over its one new position,
  attending to the cached items and earlier steps (at inference the same states as re-encoding the whole extended
  sequence, to float rounding; ``tests/models/test_reasoning.py``). While training, the items' dropout masks are
  therefore drawn once per sequence, not once per step. Inference cost per user against K:
  ``benchmarks/reasoning_cost.py``.
- The reference scores with the scheme's state. recgen's ``reason_score`` can name another one (``h0`` the encoder's
  own state, ``hk`` step k alone, ``meank`` the mean of h_0..h_k) or ``valid``: after training, every state is
  ranked on validation (the trainer's metric) and the best is kept for scoring, ties to the trained state. On
  Beauty and Toys, h0 of an ERL-trained model ranked validation and test users better than ERL's mean on every run,
  on ML-100K's HSTU ERL's mean ranked far better than h0 (docs/sequential.md): a choice for validation to make.
- HSTU gets the last item's timestamp at every reasoning position (the time-gap bias sees "now"), and its
  relative-position bias is widened by K so that the new positions have their own offsets.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from recgen.config import check
from recgen.errors import ConfigError
from recgen.ops.softmax_ce import ROWS, fused_erl_loss

SCHEMES = ("erl", "prl")


class Reasoner(nn.Module):
    """The parameters ReaRec adds to an encoder: K reasoning-position embeddings, the input LayerNorm, dropout."""

    def __init__(self, cfg) -> None:
        super().__init__()
        self.pos = nn.Embedding(cfg.reason_steps, cfg.embedding_dim)
        nn.init.normal_(self.pos.weight, std=0.02)
        self.norm = nn.LayerNorm(cfg.embedding_dim)
        self.drop = nn.Dropout(cfg.dropout)


def reasoning_states(net: nn.Module, cache: dict, last: torch.Tensor, steps: int, noise: float = 0.0) -> torch.Tensor:
    """(B, K + 1, D): ``last`` (the encoder's state at the last position, h_0) and the K reasoning states.

    ``cache``: the dict ``net.transform(x, keep, ts, cache)`` filled while encoding the items (their keys and values
    in each layer); each step runs the encoder over its one new position only, attending to the items and the
    earlier steps. The given cache is left as it was (PRL's noisy pass starts from it again)."""
    r = net.reasoner
    cache = {**cache, "layers": [dict(kv) for kv in cache["layers"]]}
    states = [last]
    one = torch.ones_like(cache["keep"][:, :1])
    for k in range(steps):
        z = states[-1] + r.pos.weight[k]
        if noise > 0:
            z = z + noise * torch.randn_like(z)
        ts = cache["ts"][:, -1:] if cache["ts"] is not None else None  # "now" is the last item's time
        states.append(net.transform(r.drop(r.norm(z))[:, None], one, ts, cache)[:, 0])
    return torch.stack(states, dim=1)


def state_variants(steps: int) -> dict[str, tuple[int, str]]:
    """Ways to score a trained ERL model by one state or a mean, as (reason_steps, reason_scheme) to set on it:
    ``h0`` the encoder's own state (no reasoning), ``hk`` step k alone (PRL's state is the last step's),
    ``meank`` the mean of h_0..h_k (ERL's; ``mean{steps}`` is the model as trained). Any of them is a value of the
    models' ``reason_score`` (a decode-time field: ``score(..., decode={"reason_score": "h0"})``)."""
    out = {"h0": (0, "erl")}
    for k in range(1, steps + 1):
        out[f"h{k}"], out[f"mean{k}"] = (k, "prl"), (k, "erl")
    return out


def trained_state(steps: int, scheme: str) -> str:
    """The name (``state_variants``) of the state a model trained with ``steps`` and ``scheme`` scores with."""
    return "h0" if not steps else f"mean{steps}" if scheme == "erl" else f"h{steps}"


def user_state(states: torch.Tensor, scheme: str, l2_norm: bool) -> torch.Tensor:
    """(B, K + 1, D) states -> (B, D) the state items are scored against: ERL the mean, PRL the last step."""
    if l2_norm:
        states = F.normalize(states, dim=-1)
    h = states.mean(dim=1) if scheme == "erl" else states[:, -1]
    return F.normalize(h, dim=-1) if l2_norm else h


def erl_loss(x: torch.Tensor, emb: torch.Tensor, targets: torch.Tensor, kl: float) -> torch.Tensor:
    """ERL's loss on the reasoning steps (``recgen.ops.softmax_ce.fused_erl_loss``): the sum of steps 1..K's
    cross-entropies minus ``kl`` times ``fused_step_diversity``, one pass over the logits; on a GPU in one block."""
    rows = ROWS if x.device.type == "cpu" else max(x.shape[0] * x.shape[1], 1)
    return fused_erl_loss(x, emb, targets, kl, rows=rows)


def reasoning_loss(
    states: torch.Tensor,
    emb: torch.Tensor,
    targets: torch.Tensor,
    cfg,
    tau: float,
    l2_norm: bool,
    noisy: torch.Tensor | None = None,
    ce=None,
) -> torch.Tensor:
    """The scheme's loss on the reasoning steps 1..K (step 0 is in the model's base loss).

    ``states`` (B, K + 1, D); ``emb`` (N, D) the catalogue without the padding row; ``targets`` (B,) indices into
    ``emb``; ``noisy``: PRL's noisy pass (B, K + 1, D) or None; ``ce(h, emb, targets)``: the mean full-softmax
    cross-entropy the model uses (fused on a CPU)."""
    k_steps = states.shape[1] - 1
    if l2_norm:
        states = F.normalize(states, dim=-1)
        emb = F.normalize(emb, dim=-1)
        noisy = F.normalize(noisy, dim=-1) if noisy is not None else None
    ce = ce or (lambda h, e, t: F.cross_entropy(h @ e.T, t))
    if cfg.reason_scheme == "erl":
        if cfg.reason_kl > 0:  # the steps' cross-entropies and the diversity term from the same logits
            return erl_loss(states / tau, emb, targets, cfg.reason_kl)
        return sum(ce(states[:, k] / tau, emb, targets) for k in range(1, k_steps + 1))
    loss = sum(
        ce(states[:, k] / (tau * cfg.reason_temp_decay ** (k_steps - k)), emb, targets) for k in range(1, k_steps + 1)
    )
    if noisy is not None:  # in-batch contrast of the noisy and clean reasoning states, step by step
        sim = torch.einsum("bkd,ckd->kbc", noisy[:, 1:], states[:, 1:]) / tau  # (K, B, B)
        labels = torch.arange(states.shape[0], device=states.device).expand(k_steps, -1)
        loss = loss + F.cross_entropy(sim.reshape(-1, sim.shape[-1]), labels.reshape(-1))
    return loss


def check_reasoning(cfg) -> None:
    """The ReaRec fields of a sequential model's config (``SequentialConfig.validate``)."""
    check(cfg.reason_steps >= 0, f"reason_steps must be >= 0, got {cfg.reason_steps}")
    check(cfg.reason_scheme in SCHEMES, f"reason_scheme must be one of {list(SCHEMES)}, got {cfg.reason_scheme!r}")
    check(
        cfg.reason_scheme == "erl" or cfg.reason_steps > 0,
        f"reason_scheme={cfg.reason_scheme!r} needs reasoning steps; set reason_steps >= 1",
    )
    names = ["trained", *(["valid", *state_variants(cfg.reason_steps)] if cfg.reason_steps else ["h0"])]
    check(
        cfg.reason_score in names,
        f"reason_score must be one of {names} with reason_steps={cfg.reason_steps}, got {cfg.reason_score!r}",
    )
    check(cfg.reason_kl >= 0, f"reason_kl must be >= 0, got {cfg.reason_kl}")
    check(cfg.reason_temp_decay > 0, f"reason_temp_decay must be > 0, got {cfg.reason_temp_decay}")
    check(cfg.reason_noise >= 0, f"reason_noise must be >= 0, got {cfg.reason_noise}")
    check(cfg.reason_warmup >= 0, f"reason_warmup must be >= 0, got {cfg.reason_warmup}")
    check(
        cfg.reason_steps == 0 or cfg.loss == "ce",
        f"reason_steps > 0 needs loss='ce' (ReaRec's losses are full softmax), got loss={cfg.loss!r}",
    )


class ScoredState:
    """The state a sequential model scores with (``reason_score``), mixed into ``SequentialRecommender``: the
    validation choice after training, the name scoring reads, and what a results file and a checkpoint keep."""

    def _start_state_choice(self, valid: Any) -> None:
        """Before training: ``reason_score='valid'`` needs validation data; while training, validation chooses the
        checkpoint by the trained state (the scored state is chosen after, ``_choose_state``)."""
        cfg = self.config
        if cfg.reason_score == "valid" and valid is None:
            raise ConfigError(
                "reason_score='valid' chooses the scored state on validation data; pass valid to fit "
                f"(recgen bench does), or name a state ({', '.join(state_variants(cfg.reason_steps))}) or 'trained'"
            )
        self.reason_choice_ = None
        self.reason_state_ = trained_state(cfg.reason_steps, cfg.reason_scheme) if cfg.reason_score == "valid" else None

    def _choose_state(self, valid: Any) -> None:
        """``reason_score='valid'``: rank validation by each state (``state_variants``) with the weights training
        kept, on the trainer's metric, and score with the best from then on; ties keep the trained state."""
        cfg = self.config
        if cfg.reason_score != "valid":
            return
        from recgen.eval.evaluator import evaluate

        first = trained_state(cfg.reason_steps, cfg.reason_scheme)
        names = [first, *(n for n in state_variants(cfg.reason_steps) if n != first)]
        self.fitted_ = True
        self.reason_choice_ = {
            n: evaluate(self, valid, ks=(10,), decode={"reason_score": n}, batch_size=self.eval_batch_size).metrics[
                cfg.metric
            ]
            for n in names
        }
        self.reason_state_ = max(names, key=self.reason_choice_.__getitem__)  # the first best: trained on ties

    def reasoning_state(self, cfg: Any = None) -> str:
        """The state (a ``state_variants`` name) scoring reads under ``cfg`` (default: the fitted config)."""
        cfg = cfg or self.config
        name = cfg.reason_score
        if name == "valid":
            name = getattr(self, "reason_state_", None)
            if name is None:
                raise ConfigError(
                    "reason_score='valid' needs the state chosen on validation when the model was fitted; fit with "
                    "reason_score='valid', or name a state (h0, hk, meank) or 'trained'"
                )
        return trained_state(self.config.reason_steps, self.config.reason_scheme) if name == "trained" else name

    def run_info(self) -> dict[str, Any]:
        """Recorded per seed by ``recgen bench`` for ReaRec models: the state scored with and, when validation
        chose it, validation's metric by state."""
        if not self.config.reason_steps:
            return {}
        info: dict[str, Any] = {"reason_state": self.reasoning_state(self.decode_config(self.decoded_with()))}
        if getattr(self, "reason_choice_", None):
            info["valid_by_state"] = dict(self.reason_choice_)
        return info

    def _extra_meta(self) -> dict[str, Any]:
        return {
            **super()._extra_meta(),
            "reason_state": getattr(self, "reason_state_", None),
            "reason_choice": getattr(self, "reason_choice_", None),
        }

    def _load_extra_meta(self, extra: dict[str, Any]) -> None:
        super()._load_extra_meta(extra)
        self.reason_state_, self.reason_choice_ = extra.get("reason_state"), extra.get("reason_choice")
