"""Text-augmented item representations for SASRec and HSTU: item text embedded once (all-MiniLM-L6-v2 by default)
and used as item features, three ways (``text_mode``), over the text ``item_text`` names (``title``, ``meta``: the
title with genres / year / categories / attributes, ``profile``: the title with the item's LLM profile from
``recgen augment profiles``; see ``recgen.data.text.source_texts``):

- ``init``: the ID table starts from the text vectors' first ``D`` principal components, scaled to the random
  initialisation's standard deviation, then trains as IDs (LLMInit; Harte et al., RecSys 2023, "Leveraging Large
  Language Models for Sequential Recommendation", which initialise SASRec / BERT4Rec this way from PCA-reduced LLM
  embeddings). Nothing is added to the model.
- ``fuse``: an item's vector is its ID embedding plus a learned affine map of its frozen text vector (UniSRec's
  parametric whitening, Hou et al., KDD 2022, with one adaptor where UniSRec mixes several, and the ID embedding
  added as in its fine-tuning stage with IDs).
- ``only``: the affine map of the frozen text vector alone, no ID table: every item with a text has a vector, so
  an item absent from training can be ranked (``scores_unseen_items``), UniSRec's inductive setting.

The text vectors are centred on the catalogue's mean and renormalised before use (whitening's first step: a small
sentence encoder's vectors share a large common direction). The frozen vectors are a buffer of the network and are
saved with it, so a saved model needs neither the encoder nor the texts to score. The input side maps only the
items in the batch; the output side maps the whole table once per step (one (N, 384) x (384, D) product).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

TEXT_ITEMS = ("none", "title", "meta", "profile")
TEXT_MODES = ("init", "fuse", "only")


def text_vectors(dataset: Any, cfg: Any) -> np.ndarray:
    """(n_items, T) float32: the item texts of ``cfg.item_text`` embedded by ``cfg.text_encoder``, centred on their
    mean and L2-normalised again (rows left at zero stay zero)."""
    from recgen.data.text import TextEncoder, source_texts

    v = TextEncoder(cfg.text_encoder).encode(source_texts(dataset, cfg.item_text, cfg.profiles)).astype(np.float64)
    v -= v.mean(axis=0, keepdims=True)
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    return (v / np.where(norm > 0, norm, 1.0)).astype(np.float32)


def pca_table(vectors: np.ndarray, dim: int, std: float, seed: int) -> np.ndarray:
    """(n, dim) principal-component scores of ``vectors`` scaled to standard deviation ``std`` overall; columns past
    the rank of the vectors are N(0, std) noise (seeded)."""
    x = vectors.astype(np.float64) - vectors.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    k = min(dim, vt.shape[0])
    out = np.random.default_rng(seed).normal(0.0, std, (len(x), dim))
    scores = x @ vt[:k].T
    sd = scores.std()
    out[:, :k] = scores * (std / sd) if sd > 0 else 0.0
    return out.astype(np.float32)


class TextItems(nn.Module):
    """Item vectors from frozen text vectors (row 0, padding, is zero) through a learned affine map, plus the ID
    embedding where there is one (``fuse``)."""

    def __init__(self, text: np.ndarray, dim: int) -> None:
        super().__init__()
        rows = np.zeros((len(text) + 1, text.shape[1]), dtype=np.float32)
        rows[1:] = text
        self.register_buffer("text", torch.from_numpy(rows))
        self.proj = nn.Linear(text.shape[1], dim)

    def forward(self, ids: torch.Tensor, item_emb: nn.Embedding | None) -> torch.Tensor:
        """Item ids (any shape) -> their vectors (..., D); padding (id 0) maps to zero."""
        x = self.proj(self.text[ids]) * (ids > 0).unsqueeze(-1).to(self.text.dtype)
        return x if item_emb is None else x + item_emb(ids)

    def table(self, item_emb: nn.Embedding | None) -> torch.Tensor:
        return self(torch.arange(len(self.text), device=self.text.device), item_emb)


def attach_text(net: nn.Module, text: np.ndarray, mode: str, seed: int = 0) -> None:
    """Give a freshly built SASRec / HSTU network (a ``SequenceEncoder``) its text features: ``text`` is
    ``(n_items, T)``; ``init`` overwrites the ID table, ``fuse`` adds the text map, ``only`` replaces the ID table
    by it."""
    if len(text) + 1 != net.item_emb.weight.shape[0]:
        raise ValueError(f"{len(text)} item texts for a table of {net.item_emb.weight.shape[0] - 1} items")
    if mode == "init":
        with torch.no_grad():
            weight = net.item_emb.weight
            table = pca_table(text, weight.shape[1], float(weight[1:].std()), seed)
            weight[1:] = torch.from_numpy(table).to(weight.dtype)
        return
    net.text_items = TextItems(text, net.cfg.embedding_dim)
    if mode == "only":
        net.item_emb = None


def text_flops(cfg: Any, n_items: int, text_dim: int, batch_items: int) -> float:
    """Training FLOPs one step adds for the text map (forward + backward = 3x forward): the whole table on the
    output side and the batch's items on the input side."""
    if cfg.item_text == "none" or cfg.text_mode == "init":
        return 0.0
    return 3.0 * 2 * (n_items + 1 + batch_items) * text_dim * cfg.embedding_dim
