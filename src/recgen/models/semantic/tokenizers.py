"""Item tokenizers: item -> tuple of codes and back (groundwork for generative retrieval over semantic IDs).

- ``IDTokenizer``: one token per item (the baseline of the TIGER comparison).
- ``RQKMeansTokenizer``: residual k-means (no training): level 1 clusters the item embeddings, each next level
  clusters the residuals left by the previous centroids; an item's code is its centroid index at each level.
- ``RQVAETokenizer``: the RQ-VAE of TIGER (Rajput et al., NeurIPS 2023): an MLP encoder to a small latent, residual
  vector quantisation of the latent with one codebook per level (k-means initialised on the first pass, commitment
  loss, straight-through gradients, dead codes restarted from live residuals after each epoch), an MLP decoder
  back to the embedding. With ``collab`` embeddings it becomes a collaborative codebook in the spirit of LETTER
  (Wang et al., CIKM 2024): the latent is also aligned, by an in-batch contrastive loss, with each
  item's collaborative embedding (e.g. SASRec's), and a code-diversity term pushes the batch's soft code usage
  toward uniform.

Collisions (two items with the same codes) are resolved as TIGER does, with one extra level that numbers the
items sharing a prefix 0, 1, 2, ... (so every item gets a unique tuple and decoding is exact). Each tokenizer
reports codebook usage (perplexity per level), the collision rate before resolution and the reconstruction error
(mean squared distance between an embedding and the sum of its centroids).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recgen.errors import ConfigError, DataError
from recgen.ops.kmeans import kmeans


@dataclass
class TokenizerStats:
    perplexity: list[float] = field(default_factory=list)  # exp(entropy) of code usage per level
    collision_rate: float = 0.0  # share of items whose codes (before the extra level) are not unique
    reconstruction_mse: float = 0.0
    extra_level_size: int = 1  # largest number of items sharing one code prefix


class ItemTokenizer:
    """Maps dense item ids 1..n to unique code tuples (``codes_`` is (n + 1, levels); row 0 = padding)."""

    codes_: np.ndarray
    stats_: TokenizerStats

    def _finish(self, base: np.ndarray) -> None:
        """Add the collision-resolving level and build the decode table."""
        n = base.shape[0]
        groups: dict[tuple[int, ...], int] = defaultdict(int)
        extra = np.zeros(n, dtype=np.int64)
        for i in range(n):
            key = tuple(int(v) for v in base[i])
            extra[i] = groups[key]
            groups[key] += 1
        collided = sum(c for c in groups.values() if c > 1)
        self.stats_.collision_rate = collided / max(n, 1)
        self.stats_.extra_level_size = max(groups.values()) if groups else 1
        codes = np.concatenate([base, extra[:, None]], axis=1)
        self.codes_ = np.concatenate([np.zeros((1, codes.shape[1]), dtype=np.int64), codes])
        self._decode = {tuple(int(v) for v in codes[i]): i + 1 for i in range(n)}

    @property
    def levels(self) -> int:
        return int(self.codes_.shape[1])

    def encode(self, item: int) -> tuple[int, ...]:
        if not 1 <= item < len(self.codes_):
            raise DataError(f"item {item} is not a dense item id in [1, {len(self.codes_) - 1}]")
        return tuple(int(v) for v in self.codes_[item])

    def decode(self, codes: tuple[int, ...]) -> int | None:
        """The item with exactly these codes, or None (an invalid identifier)."""
        return self._decode.get(tuple(int(v) for v in codes))


def _perplexity(labels: np.ndarray, k: int) -> float:
    p = np.bincount(labels, minlength=k) / max(len(labels), 1)
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


class IDTokenizer(ItemTokenizer):
    def fit(self, n_items: int) -> IDTokenizer:
        if n_items < 1:
            raise DataError("IDTokenizer needs at least one item")
        self.stats_ = TokenizerStats(perplexity=[float(n_items)])
        self._finish(np.arange(n_items, dtype=np.int64)[:, None])
        return self


class FileTokenizer(ItemTokenizer):
    """Semantic IDs fitted elsewhere: a JSON file mapping each item's external id to its codes, as integers
    (``{"B0001": [12, 200, 7]}``) or as LETTER-style tokens (``{"B0001": ["<a_12>", "<b_200>", "<c_7>"]}``, read as
    their trailing integers). Every catalogue item needs codes, all of one length; collisions get TIGER's extra
    level like any tokenizer's."""

    def fit(self, path: str | Path, item_ids: Sequence[str]) -> FileTokenizer:
        """``item_ids``: the external ids of dense items 1..n, in order."""
        path = Path(path)
        if not path.is_file():
            raise DataError(f"codes file {path} not found; give a JSON file mapping item ids to their codes")
        try:
            index = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataError(f"{path.name}: not valid JSON ({exc})") from None
        if not isinstance(index, dict):
            raise DataError(f"{path.name}: expected an object mapping item ids to code lists")
        missing = [i for i in item_ids if str(i) not in index]
        if missing:
            raise DataError(
                f"{path.name} has no codes for {len(missing)} of the {len(item_ids)} items (e.g. {missing[:3]}); every "
                "catalogue item needs its semantic ID"
            )
        rows = [[_code(c, path, i) for c in index[str(i)]] for i in item_ids]
        widths = {len(r) for r in rows}
        if len(widths) != 1 or 0 in widths:
            raise DataError(f"{path.name}: every item needs the same number of codes (>= 1), found {sorted(widths)}")
        base = np.asarray(rows, dtype=np.int64)
        base -= base.min(axis=0)  # codes per level from 0 (LETTER numbers them per level already)
        self.stats_ = TokenizerStats(
            perplexity=[_perplexity(base[:, lv], int(base[:, lv].max()) + 1) for lv in range(base.shape[1])]
        )
        self._finish(base)
        return self


def _code(value: Any, path: Path, item: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = re.fullmatch(r"\D*(\d+)\D*", str(value))
    if match is None:
        raise DataError(f"{path.name}: item {item!r} has code {value!r}; codes are integers or tokens like '<a_12>'")
    return int(match.group(1))


class RQKMeansTokenizer(ItemTokenizer):
    def __init__(self, levels: int = 3, codebook_size: int = 256, *, iters: int = 50, seed: int = 0) -> None:
        if levels < 1 or codebook_size < 2:
            raise ConfigError(f"need levels >= 1 and codebook_size >= 2, got {levels} and {codebook_size}")
        self.n_levels, self.k, self.iters, self.seed = levels, codebook_size, iters, seed

    def fit(self, embeddings: np.ndarray) -> RQKMeansTokenizer:
        """``embeddings`` (n_items, d): row i is dense item i + 1."""
        x = torch.as_tensor(np.asarray(embeddings), dtype=torch.float64)
        if x.ndim != 2 or x.shape[0] < 2:
            raise DataError(f"embeddings must be (n_items >= 2, dim), got shape {tuple(x.shape)}")
        residual = x.clone()
        base = np.zeros((x.shape[0], self.n_levels), dtype=np.int64)
        self.centroids_ = []
        self.stats_ = TokenizerStats()
        for level in range(self.n_levels):
            k = min(self.k, residual.shape[0])
            centres, labels = kmeans(residual, k, iters=self.iters, seed=self.seed + level)
            base[:, level] = labels.numpy()
            self.centroids_.append(centres.numpy())
            residual = residual - centres[labels]
            self.stats_.perplexity.append(_perplexity(labels.numpy(), k))
        self.stats_.reconstruction_mse = float((residual**2).sum(1).mean())
        self._finish(base)
        return self


class _RQVAE(torch.nn.Module):
    def __init__(self, d_in: int, hidden: tuple[int, ...], latent: int, levels: int, k: int, d_collab: int) -> None:
        super().__init__()
        dims = (d_in, *hidden, latent)
        enc: list[torch.nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:], strict=True):
            enc += [torch.nn.Linear(a, b), torch.nn.ReLU()]
        self.encoder = torch.nn.Sequential(*enc[:-1])
        rev = dims[::-1]
        dec: list[torch.nn.Module] = []
        for a, b in zip(rev[:-1], rev[1:], strict=True):
            dec += [torch.nn.Linear(a, b), torch.nn.ReLU()]
        self.decoder = torch.nn.Sequential(*dec[:-1])
        self.codebooks = torch.nn.Parameter(torch.zeros(levels, k, latent))
        self.collab_proj = torch.nn.Linear(latent, d_collab) if d_collab else None

    def quantise(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """(z_q, codes (n, levels), per-level residuals, per-level squared distances)."""
        residual, zq, codes, residuals, dists = z, torch.zeros_like(z), [], [], []
        for level in range(self.codebooks.shape[0]):
            c = self.codebooks[level]
            d = (residual**2).sum(1, keepdim=True) - 2 * residual @ c.T + (c**2).sum(1)[None]
            idx = d.argmin(1)
            residuals.append(residual)
            dists.append(d)
            q = c[idx]
            zq = zq + q
            codes.append(idx)
            residual = residual - q
        return zq, torch.stack(codes, 1), residuals, dists


class RQVAETokenizer(ItemTokenizer):
    """RQ-VAE semantic IDs (see the module docstring). Defaults follow TIGER: 3 levels x 256 codes, latent 32,
    encoder 512-256-128, commitment weight 0.25; fewer epochs than the paper's 20k (full-batch-scale CPU budget).

    Where recgen differs from TIGER / the public RQ-VAE-Recommender: Adam with mini-batches instead of Adagrad
    at lr 0.4; codebooks are k-means initialised level by level on the first batch's residuals; dead codes are
    restarted after every epoch; the collaborative variant is a simplified LETTER (one contrastive alignment loss
    on the continuous latent, and a usage-entropy diversity term instead of LETTER's clustered code-embedding
    contrast).
    """

    def __init__(
        self,
        levels: int = 3,
        codebook_size: int = 256,
        *,
        latent_dim: int = 32,
        hidden: tuple[int, ...] = (512, 256, 128),
        beta: float = 0.25,
        epochs: int = 200,
        batch_size: int = 1024,
        lr: float = 1e-3,
        collab_weight: float = 1.0,
        diversity_weight: float = 0.1,
        temperature: float = 0.1,
        seed: int = 0,
    ) -> None:
        if levels < 1 or codebook_size < 2 or latent_dim < 1 or epochs < 1 or batch_size < 2:
            raise ConfigError(
                "need levels >= 1, codebook_size >= 2, latent_dim >= 1, epochs >= 1 and batch_size >= 2, got "
                f"{levels}, {codebook_size}, {latent_dim}, {epochs}, {batch_size}"
            )
        self.n_levels, self.k, self.latent_dim, self.hidden = levels, codebook_size, latent_dim, tuple(hidden)
        self.beta, self.epochs, self.batch_size, self.lr = beta, epochs, batch_size, lr
        self.collab_weight, self.diversity_weight, self.temperature = collab_weight, diversity_weight, temperature
        self.seed = seed

    def fit(self, embeddings: np.ndarray, collab: np.ndarray | None = None) -> RQVAETokenizer:
        """``embeddings`` (n_items, d): row i is dense item i + 1; ``collab`` (n_items, d_c) optional
        collaborative embeddings of the same items (turns on the LETTER-style alignment and diversity terms)."""
        x = torch.as_tensor(np.asarray(embeddings), dtype=torch.float32)
        if x.ndim != 2 or x.shape[0] < 2:
            raise DataError(f"embeddings must be (n_items >= 2, dim), got shape {tuple(x.shape)}")
        c = None
        if collab is not None:
            c = torch.nn.functional.normalize(torch.as_tensor(np.asarray(collab), dtype=torch.float32), dim=1)
            if c.ndim != 2 or c.shape[0] != x.shape[0]:
                raise DataError(f"collab embeddings must be ({x.shape[0]}, d), got shape {tuple(c.shape)}")
        n = x.shape[0]
        k = min(self.k, n)
        gen = torch.Generator().manual_seed(self.seed)
        torch.manual_seed(self.seed)
        net = _RQVAE(x.shape[1], self.hidden, self.latent_dim, self.n_levels, k, 0 if c is None else c.shape[1])
        opt = torch.optim.Adam(net.parameters(), lr=self.lr)
        bs = min(self.batch_size, n)
        self.log_: list[dict[str, float]] = []
        restarts = 0
        for epoch in range(self.epochs):
            perm = torch.randperm(n, generator=gen)
            used = torch.zeros(self.n_levels, k, dtype=torch.bool)
            totals = np.zeros(4)
            for s in range(0, n - bs + 1 if n >= bs else 1, bs):
                idx = perm[s : s + bs]
                z = net.encoder(x[idx])
                if epoch == 0 and s == 0:  # k-means initialisation, level by level on the residuals
                    with torch.no_grad():
                        r = z.detach().double()
                        for level in range(self.n_levels):
                            centres, labels = kmeans(r, min(k, len(r)), iters=20, seed=self.seed + level)
                            if len(centres) < k:
                                extra = r[torch.randint(len(r), (k - len(centres),), generator=gen)]
                                centres = torch.cat([centres, extra])
                            net.codebooks.data[level] = centres.float()
                            r = r - centres[labels]
                zq, codes, residuals, dists = net.quantise(z)
                for level in range(self.n_levels):
                    used[level, codes[:, level]] = True
                q_terms = torch.stack(
                    [
                        ((res.detach() - net.codebooks[lv][codes[:, lv]]) ** 2).sum(1).mean()
                        + self.beta * ((res - net.codebooks[lv][codes[:, lv]].detach()) ** 2).sum(1).mean()
                        for lv, res in enumerate(residuals)
                    ]
                ).sum()
                z_st = z + (zq - z).detach()
                recon = ((net.decoder(z_st) - x[idx]) ** 2).sum(1).mean()
                loss = recon + q_terms
                align = torch.zeros(())
                div = torch.zeros(())
                if c is not None:
                    # on the continuous latent: the encoder learns to place collaboratively similar items near
                    # each other, and the quantiser then gives them shared codes (aligning the quantised vector
                    # instead gives the encoder almost no signal at small codebooks: it takes few values)
                    p = torch.nn.functional.normalize(net.collab_proj(z), dim=1)
                    logits = p @ c[idx].T / self.temperature
                    target = torch.arange(len(idx))
                    align = 0.5 * (
                        torch.nn.functional.cross_entropy(logits, target)
                        + torch.nn.functional.cross_entropy(logits.T, target)
                    )
                    for d in dists:  # soft usage of each level's codes in the batch, pushed toward uniform
                        usage = torch.softmax(-d / d.detach().mean().clamp(min=1e-8), dim=1).mean(0)
                        div = div + (usage * (usage.clamp(min=1e-12).log() + np.log(k))).sum()
                    loss = loss + self.collab_weight * align + self.diversity_weight * div
                opt.zero_grad()
                loss.backward()
                opt.step()
                totals += [float(v.detach()) for v in (recon, q_terms, align, div)]
            with torch.no_grad():  # dead-code restarts from the current epoch's live residuals
                if epoch < self.epochs - 1:
                    z = net.encoder(x)
                    _, _, residuals, _ = net.quantise(z)
                    for level in range(self.n_levels):
                        dead = torch.nonzero(~used[level]).flatten()
                        if len(dead):
                            pick = torch.randint(n, (len(dead),), generator=gen)
                            net.codebooks.data[level, dead] = residuals[level][pick]
                            restarts += len(dead)
            if epoch == self.epochs - 1 or epoch % 10 == 0:
                self.log_.append(
                    {"epoch": epoch + 1, "recon": totals[0], "quant": totals[1], "align": totals[2], "div": totals[3]}
                )
        net.eval()
        with torch.no_grad():
            z = net.encoder(x)
            zq, codes, _, _ = net.quantise(z)
            recon = float(((net.decoder(zq) - x) ** 2).sum(1).mean())
        self.net_ = net
        self.stats_ = TokenizerStats(
            perplexity=[_perplexity(codes[:, lv].numpy(), k) for lv in range(self.n_levels)],
            reconstruction_mse=recon,
        )
        self.restarts_ = restarts
        self._finish(codes.numpy().astype(np.int64))
        return self
