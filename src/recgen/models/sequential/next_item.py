"""Shared machinery for next-item sequence models (SASRec, HSTU): training data, losses, scoring, state.

A subclass provides ``_build_net(n_items)`` returning an ``nn.Module`` with

- ``encode(seq, ts) -> (B, L, D)`` hidden states for left-padded item ids ``seq`` (B, L) and timestamps ``ts``;
- ``item_embeddings() -> (N+1, D)`` the output item table (tied with the input table);
- attributes ``l2_norm`` (bool) and ``temperature`` (float): HSTU normalises both sides and divides by a
  temperature; SASRec uses raw dot products (temperature 1).

Training samples are one per user and epoch: input ``s[:-1]``, targets ``s[1:]`` (the last ``max_seq_len``
positions, left-padded), the standard SASRec setup (``train_prefixes=true`` makes every prefix of every sequence a
sample with its loss at its last position, RecBole's sliding window: the same targets, each prefix encoded on its
own; the loss at every position of every prefix, as before, grew to 14 GB on Beauty at batch 2048); batches are
drawn from length-sorted chunks and trimmed to their longest sequence (positions are aligned at the right end, so
trimming changes nothing but the cost). Losses:

- ``ce``: full softmax cross-entropy over the whole catalogue at every position (SASRec+, Klenitskiy &
  Vasilev 2023; the HSTU paper's choice for small catalogues);
- ``sampled``: sampled softmax with ``n_negatives`` uniform negatives shared by the batch (positives that
  collide with a sampled negative are masked out);
- ``bce``: the original SASRec loss, one uniform negative per position with binary cross-entropy.

Scoring at evaluation uses a float64 copy of the network, so rankings do not depend on the batch size.
``device=cuda`` trains on a GPU (bf16 autocast, the shared trainer) and scores there (the float64 copy too); the
scores come back to the CPU, where the harness ranks them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from recgen.config import check
from recgen.data.dataset import Dataset
from recgen.models.base import check_device_spec, resolve_device
from recgen.models.sequential.reasoning import (
    ScoredState,
    check_reasoning,
    reasoning_loss,
    reasoning_states,
    state_variants,
    user_state,
)
from recgen.models.sequential.text_items import TEXT_ITEMS, TEXT_MODES, attach_text, text_flops, text_vectors
from recgen.models.training.netmodel import NetRecommender
from recgen.models.training.trainer import TrainerConfig
from recgen.ops.softmax_ce import fused_softmax_ce

LOSSES = ("ce", "sampled", "bce")


@dataclass(frozen=True, kw_only=True)
class SequentialConfig(TrainerConfig):
    """Fields every next-item sequence model shares (model configs extend it)."""

    embedding_dim: int = 64  # hidden size D
    n_layers: int = 2  # transformer / transduction layers
    n_heads: int = 1  # attention heads
    max_seq_len: int = 50  # most recent items seen by the model
    dropout: float = 0.2  # dropout on embeddings and inside the layers
    loss: str = "ce"  # "ce" (full softmax), "sampled" (sampled softmax), "bce" (one negative, original SASRec)
    n_negatives: int = 256  # negatives for loss="sampled"
    batch_size: int = 128  # sequences per step
    epochs: int = 200  # maximum epochs (early stopping on validation)
    eval_every: int = 2  # validate every N epochs
    # every prefix of a training sequence is a sample with its loss at its last position (RecBole's sliding
    # window): the same (prefix -> next item) targets as the default, each its own sequence through the encoder
    train_prefixes: bool = False
    device: str = "cpu"  # cpu | cuda | cuda:N | auto: where the network trains and scores (bf16 autocast on CUDA)
    # ReaRec latent reasoning (recgen.models.sequential.reasoning): K steps after the last position, 0 = off
    reason_steps: int = 0
    reason_scheme: str = "erl"  # erl (ensemble reasoning learning) | prl (progressive reasoning learning)
    reason_kl: float = 0.05  # ERL: weight of the KL term that keeps the steps' distributions apart
    reason_temp_decay: float = 5.0  # PRL: step k's temperature is tau * decay ** (K - k)
    reason_noise: float = 0.01  # PRL: std of the noise on reasoning inputs for the contrastive term (0 = off)
    reason_warmup: int = 2  # PRL: epochs before the noisy pass starts
    # the state items are scored against (read when recommending): trained (the scheme's), valid (each state ranked
    # on validation after fit, the best kept), or one state: h0, hk, meank (reasoning.state_variants)
    reason_score: str = "trained"
    # item text as item features (recgen.models.sequential.text_items): which text, and how it enters
    item_text: str = "none"  # none | title | meta (title + metadata) | profile (title + LLM profile)
    text_mode: str = "fuse"  # init (ID table from its PCA) | fuse (ID + mapped text) | only (mapped text, no IDs)
    text_encoder: str = "minilm"  # sentence-transformers model: minilm or a local folder
    profiles: str = "profiles"  # item_text=profile: the --out folder of recgen augment profiles

    def validate(self) -> None:
        super().validate()
        check_device_spec(self.device)
        check(self.item_text in TEXT_ITEMS, f"item_text must be one of {list(TEXT_ITEMS)}, got {self.item_text!r}")
        check(self.text_mode in TEXT_MODES, f"text_mode must be one of {list(TEXT_MODES)}, got {self.text_mode!r}")
        # a mode without text would train plain IDs in silence (fuse, the default, cannot be told from unset)
        check(
            self.text_mode == "fuse" or self.item_text != "none",
            f"text_mode={self.text_mode!r} needs item text; set item_text to title, meta or profile",
        )
        check_reasoning(self)
        check(self.embedding_dim >= 1, f"embedding_dim must be >= 1, got {self.embedding_dim}")
        check(self.n_layers >= 1, f"n_layers must be >= 1, got {self.n_layers}")
        check(self.n_heads >= 1, f"n_heads must be >= 1, got {self.n_heads}")
        check(self.max_seq_len >= 2, f"max_seq_len must be >= 2, got {self.max_seq_len}")
        check(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}")
        check(self.loss in LOSSES, f"loss must be one of {list(LOSSES)}, got {self.loss!r}")
        check(self.n_negatives >= 1, f"n_negatives must be >= 1, got {self.n_negatives}")
        check(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")


def left_pad(seqs: Sequence[np.ndarray], length: int, dtype=np.int64) -> np.ndarray:
    """The last ``length`` entries of each sequence, left-padded with 0, as a (B, length) array."""
    out = np.zeros((len(seqs), length), dtype=dtype)
    for i, s in enumerate(seqs):
        s = np.asarray(s)[-length:]
        if len(s):
            out[i, length - len(s) :] = s
    return out


def length_bucketed_batches(lengths: torch.Tensor, batch_size: int, gen: torch.Generator):
    """Shuffled batches of row indices, cut from length-sorted chunks of 32 batches, each with the width of its
    longest row: left-padded data then costs its real length, not the padded maximum. Yields (indices, width)."""
    n = len(lengths)
    perm = torch.randperm(n, generator=gen)
    chunks = []
    for c in range(0, n, batch_size * 32):
        idx = perm[c : c + batch_size * 32]
        idx = idx[torch.argsort(lengths[idx], descending=True, stable=True)]
        chunks.extend(idx[s : s + batch_size] for s in range(0, len(idx), batch_size))
    for j in torch.randperm(len(chunks), generator=gen).tolist():
        yield chunks[j], int(lengths[chunks[j]].max())


def full_softmax_ce(h: torch.Tensor, emb: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the full softmax of ``h @ emb.T`` (P x N) against ``targets``.

    On a CPU it is ``recgen.ops.softmax_ce.fused_softmax_ce``: logits made a block of rows at a time and never kept,
    the backward pass fused into the block products. Each step of this loss's history was measured on real batches
    in ``benchmarks/train_step_speed.py``: the temperature on the queries and no padding column, then blocks of 256
    rows (1.8-1.9x faster per step on Yelp's 20k items, 1.3-1.7x on Beauty and Sports, one thread; the loss, not the
    encoder, dominated the step; ``speed/train_step_cpu.json``), then the fused blocks (``train_step_fused_cpu.json``).
    On a GPU it is one matrix."""
    if h.device.type != "cpu":
        return F.cross_entropy(h @ emb.T, targets)
    return fused_softmax_ce(h, emb, targets)


class SequenceEncoder(torch.nn.Module):
    """The input side SASRec's and HSTU's networks share (they set ``item_emb``, ``pos_emb``, ``drop`` and
    ``cfg`` and define ``transform``): item embeddings scaled by sqrt(D) plus learned positions aligned at the
    right end, dropout, padding zeroed; ``encode`` is ``transform`` over ``embed``. With item text
    (``text_items.attach_text``) the item vectors come from ``text_items`` (and ``item_emb``, unless text only)."""

    def __init__(self) -> None:
        super().__init__()
        self.text_items = None

    def embed(self, seq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L) left-padded item ids -> the encoder's inputs (B, L, D) and the non-padding mask (B, L)."""
        keep = seq > 0
        items = self.item_emb(seq) if self.text_items is None else self.text_items(seq, self.item_emb)
        x = items * math.sqrt(self.cfg.embedding_dim) + self.pos_emb.weight[-seq.shape[1] :]
        return self.drop(x) * keep.unsqueeze(-1), keep

    def attended(self, t: int, keep: torch.Tensor, ts: torch.Tensor | None, cache: dict | None):
        """What ``transform``'s T new positions attend over: without ``cache`` they are all; with it (a dict the first
        call fills, ``reasoning.reasoning_states``) the cached positions come first and these are added to them.
        Returns the non-padding mask (B, S) and timestamps (B, S) or None of all S positions, the causal rows of the
        new ones (T, S), and each layer's key / value cache (None without ``cache``)."""
        layers = [None] * self.cfg.n_layers
        if cache is not None:
            if "keep" in cache:
                keep = torch.cat([cache["keep"], keep], dim=1)
                ts = torch.cat([cache["ts"], ts], dim=1) if ts is not None else None
            cache["keep"], cache["ts"] = keep, ts
            layers = cache.setdefault("layers", [{} for _ in range(self.cfg.n_layers)])
        s = keep.shape[1]
        return keep, ts, torch.ones(s, s, dtype=torch.bool, device=keep.device).tril()[s - t :], layers

    def encode(self, seq: torch.Tensor, ts: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L) left-padded item ids (+ timestamps, for models that use them) -> (B, L, D) hidden states."""
        return self.transform(*self.embed(seq), ts)

    def item_embeddings(self) -> torch.Tensor:
        """The output item table (N + 1, D), tied with the input table; row 0 is padding."""
        return self.item_emb.weight if self.text_items is None else self.text_items.table(self.item_emb)


class SequentialRecommender(ScoredState, NetRecommender):
    """Base for next-item models trained with ``recgen.models.training.Trainer``."""

    uses_timestamps = False
    score_is_fresh = True  # _score returns a new (B, N) matrix product
    decode_fields = ("reason_score",)  # which ReaRec state scores (bench --decode-variant reason_score=h0)

    def _build_net(self, n_items: int) -> torch.nn.Module:
        raise NotImplementedError

    # ------------------------------------------------------------------------------------ training
    def _training_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Training sequences from the chronological histories ``fit`` stored (no second sort)."""
        L = self.config.max_seq_len
        indptr, items, ts = self.hist_indptr_, self.hist_items_, self.hist_ts_
        seqs, tss = [], []
        for u in range(1, len(indptr) - 1):
            a, b = indptr[u], indptr[u + 1]
            ends = range(a + 2, b + 1) if self.config.train_prefixes else (b,) if b - a >= 2 else ()
            for end in ends:
                start = max(a, end - (L + 1))
                seqs.append(items[start:end])
                tss.append(ts[start:end])
        # (U, L + 1): input = [:, :-1], target = [:, 1:]
        return left_pad(seqs, L + 1), left_pad(tss, L + 1, dtype=np.float64), np.array([len(s) for s in seqs])

    def flops_per_batch(self, batch: tuple[torch.Tensor, torch.Tensor]) -> float:
        """Training FLOPs of one step on ``batch`` (forward + backward = 3x forward), matrix multiplies only,
        on the shapes actually computed: ``B`` sequences of the batch's width through the encoder, and the
        output layer at the non-padding positions."""
        seq = batch[0]
        b, width = seq.shape[0], seq.shape[1] - 1
        positions = b if self.config.train_prefixes else int((seq[:, 1:] > 0).sum())
        # ReaRec: the chosen prefix re-encoded (unless every sample is a prefix), then the K steps' positions with
        # the items' keys and values cached (what width + K positions cost beyond width), and each step's loss
        k, cfg = self.config.reason_steps, self.config
        reasoning = self._encoder_flops(width + k) - self._encoder_flops(width)
        reasoning += k * 2 * self._output_width() * cfg.embedding_dim
        if k and not cfg.train_prefixes:
            reasoning += self._encoder_flops(width)
        text = getattr(self.net_, "text_items", None)  # (DreamRec's network has no text side)
        return 3.0 * (
            b * (self._encoder_flops(width) + reasoning)
            + positions * 2 * self._output_width() * self.config.embedding_dim
        ) + (text_flops(cfg, self.n_items_, text.text.shape[1], b * width) if text is not None else 0.0)

    def _encoder_flops(self, t: int) -> float:
        """Forward FLOPs of the encoder on one sequence of length t (subclasses)."""
        return 0.0

    def _output_width(self) -> int:
        loss = self.config.loss
        return self.n_items_ if loss == "ce" else (self.config.n_negatives + 1 if loss == "sampled" else 2)

    def _loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, int]:
        seq, ts = batch[0], batch[1]  # (ReaRec adds the draws that choose each row's prefix, see batches())
        inputs, targets = seq[:, :-1], seq[:, 1:]
        ts_in = ts[:, :-1] if self.uses_timestamps else None
        steps = self.config.reason_steps
        cache = {} if steps and self.config.train_prefixes else None  # the reasoning follows this pass's rows
        h = self.net_.transform(*self.net_.embed(inputs), ts_in, cache)  # (B, L, D)
        draws = batch[2] if len(batch) > 2 else None
        states = self._reasoning_sample(inputs, targets, ts_in, h, draws, cache) if steps else None
        if self.config.train_prefixes:  # a prefix is one sample: its loss is at its last position (RecBole's)
            h, pos = h[:, -1], targets[:, -1]  # (B, D), (B,): left-padded, so the last column is every target
        else:
            mask = targets > 0
            h = h[mask]  # (P, D)
            pos = targets[mask]  # (P,)
        emb = self.net_.item_embeddings()  # (N+1, D)
        if self.net_.l2_norm:
            h = F.normalize(h, dim=-1)
            emb = F.normalize(emb, dim=-1)
        tau = self.net_.temperature
        if tau != 1.0:  # scale the (P, D) queries, not the (P, N) logits: same values, a fraction of the work
            h = h / tau
        loss_name = self.config.loss
        if loss_name == "ce":
            # the padding row 0 is left out of the catalogue (it is never a target): targets shift by one
            loss = full_softmax_ce(h, *self._softmax_catalogue(emb, pos))
        elif loss_name == "sampled":
            neg = torch.randint(1, self.n_items_ + 1, (self.config.n_negatives,), device=h.device)
            pos_logit = (h * emb[pos]).sum(-1, keepdim=True)  # (P, 1)
            neg_logits = h @ emb[neg].T  # (P, K)
            neg_logits = neg_logits.masked_fill(neg[None, :] == pos[:, None], -torch.inf)
            logits = torch.cat([pos_logit, neg_logits], dim=1)
            loss = F.cross_entropy(logits, torch.zeros(len(pos), dtype=torch.long, device=h.device))
        else:  # bce
            neg = torch.randint(1, self.n_items_ + 1, pos.shape, device=h.device)
            pos_logit = (h * emb[pos]).sum(-1)
            neg_logit = (h * emb[neg]).sum(-1)
            loss = F.binary_cross_entropy_with_logits(
                pos_logit, torch.ones_like(pos_logit)
            ) + F.binary_cross_entropy_with_logits(neg_logit, torch.zeros_like(neg_logit))
        if states is not None:  # ReaRec: the reasoning steps' loss on one prefix of each sequence
            cfg = self.config
            states, target, prefix_cache = states
            noisy = None
            if cfg.reason_scheme == "prl" and cfg.reason_noise > 0 and getattr(self, "_epoch", 0) > cfg.reason_warmup:
                noisy = reasoning_states(self.net_, prefix_cache, states[:, 0], steps, noise=cfg.reason_noise)
            emb, target = self._softmax_catalogue(self.net_.item_embeddings(), target)
            r_loss = reasoning_loss(states, emb, target, cfg, tau, self.net_.l2_norm, noisy, full_softmax_ce)
            # a reasoning sample weighs what one position's sample weighs in the base loss (a mean over P
            # positions; with train_prefixes P = B, the reference's balance): at full weight, one prefix per row
            # against P positions took over the shared encoder and slowed its learning on ML-100K
            loss = loss + r_loss * (len(target) / max(int(pos.numel()), 1))
        return loss, int(seq.shape[0]), int(pos.numel())  # a mean over the positions (data-parallel weights)

    def _softmax_catalogue(self, emb: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The rows of the item table (N + 1, D) a full softmax runs over, and ``targets`` (item ids) as indices into
        them: every item but padding; with text-only items (``scores_unseen_items``), only the items with a
        training interaction. An item with none is never a target, and as a negative of every softmax the text map
        would learn to push its text's region down: on ML-100K's item cold start, text-only HSTU ranked the cold
        items at chance that way (cold R@10 0.0051, 1682 items)."""
        seen = getattr(self, "_seen_items", None)
        if seen is None:
            return emb[1:], targets - 1
        return emb[seen], self._seen_index[targets]

    def _reasoning_sample(self, inputs, targets, ts, h, draws=None, cache=None):
        """ReaRec's training sample of each row: the reasoning states (B, K + 1, D) after one prefix, its target (B,),
        and the prefix's key / value cache. With ``train_prefixes`` a row is one prefix (the reference's
        samples): its last position, ``h`` and ``cache`` from the pass over the rows. Otherwise the prefix
        ends at a position drawn uniformly among the row's real positions (``draws``: uniforms the batcher
        drew from the trainer's generator, the same in every data-parallel process and restored on resume),
        re-encoded right-aligned as it would be at inference: reasoning only at each sequence's last position
        saw one fixed (history, item) pair per user and epoch and learnt those pairs by heart (on ML-100K its
        validation NDCG@10 stayed at a fraction of the plain model's)."""
        steps = self.config.reason_steps
        if self.config.train_prefixes:
            return reasoning_states(self.net_, cache, h[:, -1], steps), targets[:, -1], cache
        w = inputs.shape[1]
        real = (inputs > 0) & (targets > 0)  # a prefix ending here has an item and a next item
        u = draws[:, -w:] if draws is not None else torch.rand(real.shape, device=real.device)
        end = torch.where(real, u, -1.0).argmax(dim=1)  # (B,): a uniform real position of each row
        src = torch.arange(w, device=inputs.device)[None] - (w - 1 - end)[:, None]  # right-align [.. end]
        ok = src >= 0
        seq = torch.where(ok, inputs.gather(1, src.clamp(min=0)), 0)
        tsr = torch.where(ok, ts.gather(1, src.clamp(min=0)), 0) if ts is not None else None
        cache = {}
        last = self.net_.transform(*self.net_.embed(seq), tsr, cache)[:, -1]
        target = targets.gather(1, end[:, None])[:, 0]
        return reasoning_states(self.net_, cache, last, steps), target, cache

    def _fit(self, dataset: Dataset, valid: Any) -> None:
        cfg = self.config
        self._start_state_choice(valid)
        dev = resolve_device(cfg.device, strict=True)  # a GPU that is not there is an error here, before training
        torch.manual_seed(cfg.seed)
        net = self._build_net(dataset.n_items)  # built on the CPU first: the same initial weights
        if cfg.item_text != "none":  # item text as features (text_items.py)
            attach_text(net, text_vectors(dataset, cfg), cfg.text_mode, cfg.seed)
        self._seen_items = None  # text-only items: the training softmax covers the trained items (_softmax_catalogue)
        if self.scores_unseen_items:
            seen = torch.from_numpy(np.unique(self.hist_items_[self.hist_items_ > 0]).astype(np.int64))
            self._seen_index = torch.full((dataset.n_items + 1,), -1, dtype=torch.long, device=dev)
            self._seen_index[seen.to(dev)] = torch.arange(len(seen), device=dev)  # item id -> softmax row
            self._seen_items = seen.to(dev)
        self.net_ = net.to(dev)
        self._infer_net_ = None
        seqs, tss, lengths = self._training_arrays()
        seqs_t, tss_t = torch.from_numpy(seqs).to(dev), torch.from_numpy(tss).to(dev)
        bs = cfg.batch_size
        n = len(seqs)

        # length bucketing: batches are cut from length-sorted chunks and trimmed to their longest sequence,
        # so short-sequence datasets (Amazon: ~9 items) do not pay for max_seq_len padded positions
        span = torch.from_numpy(np.minimum(lengths, cfg.max_seq_len + 1))
        draw_prefixes = cfg.reason_steps > 0 and not cfg.train_prefixes

        def batches(epoch: int, gen: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
            self._epoch = epoch  # PRL's noise starts after its warm-up epochs
            for idx, width in length_bucketed_batches(span, bs, gen):
                if draw_prefixes:  # ReaRec: uniforms that choose each row's reasoning prefix (see _reasoning_sample)
                    u = torch.rand((len(idx), width - 1), generator=gen).to(dev)
                    yield seqs_t[idx, -width:], tss_t[idx, -width:], u
                else:
                    yield seqs_t[idx, -width:], tss_t[idx, -width:]

        self._train(
            batches=batches,
            loss_fn=self._loss,
            valid=valid,
            steps_per_epoch=(n + bs - 1) // bs,
            flops_per_batch=self.flops_per_batch,
        )
        self._choose_state(valid)

    # ------------------------------------------------------------------------------------- scoring
    def _user_states(self, net: torch.nn.Module, histories: Sequence[np.ndarray], timestamps, cfg=None) -> torch.Tensor:
        """(B, D) state after each history's last item (normalised where the model compares on the sphere); with
        ReaRec, the state ``cfg``'s ``reason_score`` names (default: the fitted config's)."""
        dev = net.item_embeddings().device
        L = self.config.max_seq_len
        seq = torch.from_numpy(left_pad(histories, L)).to(dev)
        ts = None
        if self.uses_timestamps and timestamps is not None:
            ts = torch.from_numpy(left_pad(timestamps, L, dtype=np.float64)).to(dev)
        steps, scheme = state_variants(self.config.reason_steps)[self.reasoning_state(cfg)]
        cache = {} if steps else None
        h = net.transform(*net.embed(seq), ts, cache)[:, -1]
        if steps:  # ReaRec: more steps through the encoder, then the scheme's state (or the one named)
            return user_state(reasoning_states(net, cache, h, steps), scheme, net.l2_norm)
        return F.normalize(h, dim=-1) if net.l2_norm else h

    @torch.no_grad()
    def _score(
        self, user_ids: np.ndarray, histories: Sequence[np.ndarray], timestamps=None, *, decode=None
    ) -> torch.Tensor:
        net = self._inference_net()
        h = self._user_states(net, histories, timestamps, decode)
        emb = net.item_embeddings()
        if net.l2_norm:
            emb = F.normalize(emb, dim=-1)
        return (h @ emb.T).cpu()  # the harness ranks on the CPU

    @torch.no_grad()
    def _score_stream(self, user_ids, histories, timestamps):
        net = self._inference_net()
        dev = net.item_embeddings().device
        h = self._user_states(net, histories, timestamps)
        emb = net.item_embeddings()

        def rows(lo: int, hi: int) -> torch.Tensor:
            e = emb[lo:hi]
            return F.normalize(e, dim=-1) if net.l2_norm else e

        def block(lo: int, hi: int) -> torch.Tensor:
            return (h @ rows(lo, hi).T).cpu()

        def at(items: torch.Tensor) -> torch.Tensor:
            e = emb[items.to(dev)]  # (B, T, D)
            e = F.normalize(e, dim=-1) if net.l2_norm else e
            return torch.einsum("bd,btd->bt", h, e).cpu()

        return block, at

    def non_embedding_parameters(self) -> int:
        return sum(p.numel() for name, p in self.net_.named_parameters() if "item_emb" not in name)

    @property
    def scores_unseen_items(self) -> bool:  # type: ignore[override]
        """Text-only items (``text_mode=only``) give every item with a text a vector, trained on or not."""
        return self.config.item_text != "none" and self.config.text_mode == "only"

    # ---------------------------------------------------------------------------------------- state
    def _load_state(self, tensors: dict[str, np.ndarray]) -> None:
        net = self._build_net(self.n_items_)
        if "text_items.text" in tensors:  # the frozen text vectors travel with the weights
            attach_text(net, tensors["text_items.text"][1:], self.config.text_mode)
        self._set_net(net, tensors)
