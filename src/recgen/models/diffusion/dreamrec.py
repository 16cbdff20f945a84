"""DreamRec: generate the "oracle" next-item embedding with a guided diffusion model (Yang et al., NeurIPS 2023,
"Generate What You Prefer: Reshaping Sequential Recommendation via Guided Diffusion").

A causal transformer (SASRec's encoder, ``recgen.models.sequential.sasrec``) turns the history into a condition c; a
Gaussian diffusion over the target item's embedding e0 is learnt by an MLP denoiser f(e_t, c, t) -> e0
(x0 prediction, MSE loss). No negative items are used anywhere. With probability ``p_uncond`` the condition is
replaced by a learnt null embedding, which enables classifier-free guidance at inference:
e0_hat = (1 + w) f(e_t, c, t) - w f(e_t, null, t). Sampling starts from Gaussian noise and runs the DDPM
reverse process; items are ranked by the dot product of the generated embedding with the item embeddings.

Anchors: the paper and YangZhengyi98/DreamRec (``DreamRec.py``: ``Tenc``, ``diffusion``; defaults hidden 64,
``exp`` beta schedule, w = 2, p = 0.1; its default denoiser "mlp1" is one Linear(3D, D) over
[e_t ; c ; step embedding], its "mlp2" is Linear(3D, 2D) - GELU - Linear(2D, D)). Where recgen differs:

- The denoiser defaults to the reference's "mlp2" (``denoiser=mlp``); ``denoiser=linear`` is its default "mlp1".
- ``item_table=sasrec`` (not in the reference): the item table is a SASRec-CE's, fitted first with DreamRec's width,
  sequence length, seed and training budget, frozen and scaled to unit variance per dimension (DreamRec's own table
  starts from N(0, 1) and is learnt through the MSE alone). Why: ``benchmarks/dreamrec_scoring.py`` found the signal
  lost in the item space DreamRec learns for itself, not in the diffusion (docs/diffusion.md).

- Training uses every position of the sequence as a (prefix, next item) sample through the causal encoder
  (the reference trains on pre-cut windows of the last 10 items, one target each); the condition is the
  encoder's state at that position.
- Item embeddings start from N(0, 1) as in the reference, and are shared by the encoder input and the target.
- ``inference_steps`` < ``steps`` samples on an evenly respaced subsequence of steps (improved-DDPM respacing);
  the reference always runs all steps. Sampling noise is drawn per query from a generator seeded by the model
  seed and the query's history, so a query gets the same ranking in any batch and after save/load.
- AdamW from the shared trainer; epoch chosen on validation NDCG@10 (the reference reports the best test epoch
  observed during training... we do not).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recgen.config import check
from recgen.models.diffusion.gaussian import (
    DiffusionConfig,
    GaussianDiffusion,
    make_betas,
    query_generators,
    query_noise,
    timestep_embedding,
)
from recgen.models.sequential.next_item import SequentialRecommender, left_pad
from recgen.models.sequential.sasrec import SASRecConfig, SASRecNet


@dataclass(frozen=True, kw_only=True)
class DreamRecConfig(SASRecConfig, DiffusionConfig):
    """DreamRec's fields; the encoder's come from SASRecConfig, the shared diffusion fields from DiffusionConfig."""

    steps: int = 500  # diffusion steps T
    noise_schedule: str = "exp"  # noise schedule (see recgen.models.diffusion.gaussian)
    beta_min: float = 0.1  # schedule bounds (for "exp": the reference's 0.1 and 10)
    beta_max: float = 10.0
    guidance: float = 2.0  # classifier-free guidance weight w
    p_uncond: float = 0.1  # probability of training with the null condition
    inference_steps: int = 0  # reverse steps at inference (0 = all ``steps``; fewer = respaced)
    detach_target: bool = False  # stop the MSE gradient into the target item embedding (see the docstring)
    denoiser: str = "mlp"  # mlp: two layers (the reference's "mlp2"); linear: one Linear(3D, D) (its default "mlp1")
    item_table: str = "own"  # own: learnt through the MSE (the reference); sasrec: a fitted SASRec-CE's, frozen
    n_layers: int = 1  # encoder layers (the reference uses one attention block)
    dropout: float = 0.1
    lr: float = 1e-3

    def validate(self) -> None:
        super().validate()
        self.validate_diffusion()
        check(self.guidance >= 0, f"guidance must be >= 0, got {self.guidance}")
        check(0.0 <= self.p_uncond < 1.0, f"p_uncond must be in [0, 1), got {self.p_uncond}")
        check(self.loss == "ce", "DreamRec has its own diffusion loss; leave loss at its default")
        check(self.denoiser in ("mlp", "linear"), f"denoiser must be 'mlp' or 'linear', got {self.denoiser!r}")
        check(self.item_table in ("own", "sasrec"), f"item_table must be 'own' or 'sasrec', got {self.item_table!r}")
        check(self.reason_steps == 0, "reason_steps (ReaRec) applies to sasrec and hstu, not to DreamRec")
        check(self.item_text == "none", "item_text (text item features) applies to sasrec and hstu, not to DreamRec")
        check(self.device == "cpu", f"DreamRec trains and samples on the CPU only; use device=cpu, got {self.device!r}")


def dreamrec_betas(cfg: DreamRecConfig) -> np.ndarray:
    return make_betas(cfg.noise_schedule, cfg.steps, beta_min=cfg.beta_min, beta_max=cfg.beta_max)


def scaled_item_table(model) -> torch.Tensor:
    """A fitted sequential model's item table (N + 1, D), scaled to unit variance per dimension on average (the
    scale of DreamRec's N(0, 1) start), padding row 0 zero: what ``item_table=sasrec`` gives DreamRec."""
    table = model.net_.item_embeddings().detach().clone()
    table[1:] /= table[1:].std()
    table[0] = 0.0
    return table


def freeze_item_table(net: DreamRecNet, table: torch.Tensor) -> None:
    """Give ``net`` the item table ``table`` (input and target side), without gradient."""
    weight = net.encoder.item_emb.weight
    weight.data.copy_(table.to(weight.dtype))
    weight.requires_grad_(False)


class DreamRecNet(nn.Module):
    l2_norm = False
    temperature = 1.0

    def __init__(self, n_items: int, cfg: DreamRecConfig) -> None:
        super().__init__()
        d = cfg.embedding_dim
        self.encoder = SASRecNet(n_items, cfg)
        nn.init.normal_(self.encoder.item_emb.weight, std=1.0)
        with torch.no_grad():
            self.encoder.item_emb.weight[0].zero_()
        self.null_condition = nn.Parameter(torch.randn(d))
        self.step_mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        if cfg.denoiser == "linear":
            self.denoiser = nn.Sequential(nn.Linear(3 * d, d))
        else:
            self.denoiser = nn.Sequential(nn.Linear(3 * d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        self.diffusion = GaussianDiffusion(dreamrec_betas(cfg))
        self.dim = d

    def encode(self, seq: torch.Tensor, ts: torch.Tensor | None = None) -> torch.Tensor:
        return self.encoder.encode(seq, ts)

    def item_embeddings(self) -> torch.Tensor:
        return self.encoder.item_emb.weight

    def denoise(self, x: torch.Tensor, c: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = self.step_mlp(timestep_embedding(t, self.dim).to(x.dtype))
        return self.denoiser(torch.cat([x, c, emb], dim=-1))


class DreamRec(SequentialRecommender):
    name = "dreamrec"
    Config = DreamRecConfig
    decode_fields = ("inference_steps", "guidance")

    def _build_net(self, n_items: int) -> nn.Module:
        net = DreamRecNet(n_items, self.config)
        table = getattr(self, "_sasrec_table", None)
        if table is not None:  # item_table=sasrec while fitting (a loaded model gets the table from its weights)
            freeze_item_table(net, table)
        return net

    def _fit(self, dataset, valid) -> None:
        cfg = self.config
        self._sasrec_table = None
        if cfg.item_table == "sasrec":
            from recgen.models.sequential.sasrec import SASRec

            sas = SASRec(
                embedding_dim=cfg.embedding_dim, max_seq_len=cfg.max_seq_len, seed=cfg.seed, epochs=cfg.epochs,
                eval_every=cfg.eval_every, patience=cfg.patience,
            ).fit(dataset, valid=valid)  # fmt: skip
            self._sasrec_table, self.sasrec_best_epoch_ = scaled_item_table(sas), sas.best_epoch_
        try:
            super()._fit(dataset, valid)
        finally:
            self._sasrec_table = None

    def _extra_meta(self) -> dict:
        meta = super()._extra_meta()
        if self.config.item_table == "sasrec":
            meta["item_table_sasrec_best_epoch"] = getattr(self, "sasrec_best_epoch_", None)
        return meta

    def _encoder_flops(self, t: int) -> float:
        c = self.config
        d, f = c.embedding_dim, c.ffn_dim or c.embedding_dim
        return c.n_layers * (8 * t * d * d + 4 * t * t * d + 4 * t * d * f)

    def _output_width(self) -> int:
        d = self.config.embedding_dim
        denoiser = 3 * d * d if self.config.denoiser == "linear" else 3 * d * 2 * d + 2 * d * d
        return (denoiser + d * 2 * d + 2 * d * d) // d  # denoiser + step MLP per position

    def _loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, int]:
        seq, _ = batch
        net, cfg = self.net_, self.config
        inputs, targets = seq[:, :-1], seq[:, 1:]
        h = net.encode(inputs)  # (B, L, D)
        mask = targets > 0
        c = h[mask]  # (P, D) condition at each position
        x0 = net.item_embeddings()[targets[mask]]  # (P, D) target item embeddings
        if cfg.detach_target:
            x0 = x0.detach()
        gen = self.trainer_.generator
        n = x0.shape[0]
        drop = torch.rand(n, generator=gen) < cfg.p_uncond
        c = torch.where(drop[:, None], net.null_condition.expand_as(c), c)
        t = torch.randint(0, net.diffusion.steps, (n,), generator=gen)
        noise = torch.randn(x0.shape, generator=gen, dtype=x0.dtype)
        xt = net.diffusion.q_sample(x0, t, noise)
        pred = net.denoise(xt, c, t)
        return F.mse_loss(pred, x0), int(seq.shape[0])

    @torch.no_grad()
    def _score(
        self, user_ids: np.ndarray, histories: Sequence[np.ndarray], timestamps=None, *, decode: DreamRecConfig
    ) -> torch.Tensor:
        net = self._inference_net()
        seq = torch.from_numpy(left_pad(histories, decode.max_seq_len))
        c = net.encode(seq)[:, -1]  # (B, D)
        x = self.generate(net, c, histories, decode)
        return x @ net.item_embeddings().T

    def generate(
        self, net: DreamRecNet, c: torch.Tensor, histories: Sequence[np.ndarray], cfg: DreamRecConfig | None = None
    ) -> torch.Tensor:
        """Run the guided reverse process from noise for conditions ``c``; returns the generated embeddings.
        ``cfg``: the config whose ``inference_steps`` and ``guidance`` to use (default: the fitted one)."""
        cfg = cfg or self.config
        diffusion, step_map = net.diffusion.respaced(cfg.inference_steps or cfg.steps)
        s = diffusion.steps
        gens = query_generators(histories, cfg.seed)
        noise = query_noise(gens, (s + 1, net.dim), c.dtype)  # (B, S+1, D): start + one per step
        x = noise[:, 0]
        null = net.null_condition.expand_as(c)
        w = cfg.guidance
        for i in range(s - 1, -1, -1):
            t = torch.full((x.shape[0],), i, dtype=torch.long)
            t_model = step_map[t]
            x0 = (1 + w) * net.denoise(x, c, t_model) - w * net.denoise(x, null, t_model)
            mean = diffusion.posterior_mean(x0, x, t)
            if i > 0:
                x = mean + math.sqrt(float(diffusion.posterior_variance[i])) * noise[:, i + 1]
            else:
                x = mean
        return x
