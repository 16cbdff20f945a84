"""SASRec: self-attentive sequential recommendation (Kang & McAuley, ICDM 2018), trained with full cross-entropy
by default (SASRec+, Klenitskiy & Vasilev, RecSys 2023: "Turning Dross Into Gold Loss: is BERT4Rec really
better than SASRec?").

Architecture as in the paper: item embeddings (scaled by sqrt(D)) plus learned absolute positions, dropout,
``n_layers`` causal self-attention blocks with point-wise feed-forward layers, a final LayerNorm, and scores by
dot product with the (tied) item embedding table.

Where recgen differs from the paper / pmixer's SASRec.pytorch: pre-LayerNorm residual blocks (as the public
PyTorch port does, more stable than post-LN); padded keys are masked in attention instead of only zeroing their
embeddings; the loss defaults to full softmax cross-entropy over the catalogue (``loss="bce"`` gives the original
one-negative binary cross-entropy, ``loss="sampled"`` a sampled softmax for large catalogues); AdamW with
optional warm-up, gradient clipping, and the epoch chosen on validation NDCG@10 (the paper reports at a fixed
epoch budget).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from recgen.config import check
from recgen.models.nn import TransformerBlock
from recgen.models.sequential.next_item import SequenceEncoder, SequentialConfig, SequentialRecommender
from recgen.models.sequential.reasoning import Reasoner


@dataclass(frozen=True, kw_only=True)
class SASRecConfig(SequentialConfig):
    """SASRec's fields; the shared training fields (lr, epochs, loss, ...) come from SequentialConfig."""

    n_heads: int = 2  # attention heads (must divide embedding_dim)
    ffn_dim: int = 0  # feed-forward width (0 = embedding_dim, as in the paper)

    def validate(self) -> None:
        super().validate()
        check(
            self.embedding_dim % self.n_heads == 0,
            f"n_heads must divide embedding_dim, got n_heads={self.n_heads}, embedding_dim={self.embedding_dim}",
        )
        check(self.ffn_dim >= 0, f"ffn_dim must be >= 0, got {self.ffn_dim}")


class SASRecNet(SequenceEncoder):
    l2_norm = False
    temperature = 1.0

    def __init__(self, n_items: int, cfg: SASRecConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.item_emb = nn.Embedding(n_items + 1, cfg.embedding_dim, padding_idx=0)
        self.pos_emb = nn.Embedding(cfg.max_seq_len, cfg.embedding_dim)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(cfg.embedding_dim, cfg.n_heads, cfg.ffn_dim or cfg.embedding_dim, cfg.dropout)
            for _ in range(cfg.n_layers)
        )
        self.norm = nn.LayerNorm(cfg.embedding_dim)
        self.reasoner = Reasoner(cfg) if cfg.reason_steps else None
        nn.init.normal_(self.item_emb.weight, std=0.02)
        nn.init.normal_(self.pos_emb.weight, std=0.02)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()

    def transform(
        self, x: torch.Tensor, keep: torch.Tensor, ts: torch.Tensor | None = None, cache: dict | None = None
    ) -> torch.Tensor:
        """Inputs (B, T, D) with their non-padding mask (B, T) -> (B, T, D) hidden states (causal); ``cache``: the
        keys and values of earlier positions (``attended``), which these T positions follow."""
        t = x.shape[1]
        keep, _, causal, layers = self.attended(t, keep, None, cache)
        s = keep.shape[1]
        # attend to earlier non-padding positions; a padding query attends to itself (keeps softmax finite)
        allowed = causal[None] & keep[:, None, :] | torch.eye(s, dtype=torch.bool, device=x.device)[s - t :][None]
        for block, kv in zip(self.blocks, layers, strict=True):
            x = block(x, allowed[:, None], cache=kv)  # (B, 1, T, S) broadcast over heads
        return self.norm(x)


class SASRec(SequentialRecommender):
    name = "sasrec"
    Config = SASRecConfig

    def _build_net(self, n_items: int) -> nn.Module:
        return SASRecNet(n_items, self.config)

    def _encoder_flops(self, t: int) -> float:
        c = self.config
        d, f = c.embedding_dim, c.ffn_dim or c.embedding_dim
        # per layer: qkv + out projections 8 t d^2, scores and weighted values 4 t^2 d, feed-forward 4 t d f
        return c.n_layers * (8 * t * d * d + 4 * t * t * d + 4 * t * d * f)
