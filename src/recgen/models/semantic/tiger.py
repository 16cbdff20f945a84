"""TIGER: generative retrieval over semantic item IDs (Rajput et al., NeurIPS 2023, "Recommender Systems with
Generative Retrieval").

Every item gets a short tuple of codes from an item tokenizer (``recgen.models.semantic.tokenizers``: RQ-VAE, residual
k-means, a LETTER-style collaborative RQ-VAE, or plain IDs), plus TIGER's extra level that makes each tuple unique.
A transformer encoder reads a hashed user token followed by the codes of the user's last ``max_items`` items; a
transformer decoder writes the next item's codes one level at a time. Recommending is beam search over codes:

- ``constrained=True`` (default): at every level only codes that continue a prefix of an existing item are
  allowed (a prefix trie, stored as one (prefixes x codes) table per level so the masks of all users and beams
  are gathered at once), so every finished beam is a catalogue item: the invalid-ID rate is 0 by construction;
- ``constrained=False``: free beam search over each level's codes, as in the paper; tuples that name no item are
  counted (``run_info()["stats"]["invalid_rate"]``) and dropped.

The beams' log-probabilities rank the items found (``beam`` >= K; seen items are removed afterwards by the
harness, so a wider beam keeps K left); the items no beam reached follow, ordered by the log-probability of their
first code (so the ranking is a full one, as the harness and the serving API expect; metrics at K <= beam come
from the beams alone unless seen items or invalid beams leave fewer than K). Decoding is batched over users and beams
with key/value caching: the encoder runs once per user, the cross-attention keys and values are projected once
per layer and shared by a user's beams (beams are extra query rows), and the decoder's self-attention keys and
values grow by one position per level, reordered with the surviving beams.

Where recgen differs from the paper and its public re-implementations (EdoardoBotta/RQ-VAE-Recommender,
the T5-based ports): the transformer is a small own pre-LayerNorm encoder-decoder with learned absolute
positions (T5 uses RMSNorm and relative position buckets), sized by default for the 2-core CPU
(``d_model`` 64, 2 + 2 layers; the paper: 128, 4 + 4, 6 heads, MLP 1024, dropout 0.1 - pass those for a GPU);
the output layer is tied to the token embeddings and restricted to the current level's codes; training pairs are
(prefix -> next item) for the last ``targets_per_user`` positions of every training sequence (0 = all, as TIGER);
the epoch is chosen on validation NDCG@10 by the shared trainer. On a CPU, dropout masks (attention weights too)
come from ``recgen.ops.dropout`` (same rate, cheaper draws than torch's per-element Bernoulli), and decoding encodes
users sorted by history length a few at a time at their own width (``encode_by_length``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recgen.config import check
from recgen.data.dataset import Dataset
from recgen.errors import DataError
from recgen.models.base import check_device_spec, resolve_device
from recgen.models.nn import TransformerBlock
from recgen.models.semantic.item_codes import EMBEDDINGS, TOKENIZERS, fit_item_tokenizer, level_sizes
from recgen.models.sequential.next_item import length_bucketed_batches
from recgen.models.training.netmodel import NetRecommender
from recgen.models.training.trainer import TrainerConfig
from recgen.ops.dropout import Dropout
from recgen.ops.trie import PrefixTrie

PAD, BOS, FIRST = 0, 1, 2  # token ids: padding, decoder start, first user-hash token
FALLBACK = -1e6  # score offset of items no beam reached (below any beam's log-probability)


@dataclass(frozen=True, kw_only=True)
class TIGERConfig(TrainerConfig):
    # item tokenizer
    tokenizer: str = "rqvae"  # rqvae | rqkmeans | collab (RQ-VAE aligned with SASRec item embeddings) | id | file
    codes_file: str = ""  # tokenizer=file: JSON mapping item ids to semantic IDs fitted elsewhere (e.g. LETTER)
    # item content vectors: text (sentence encoder over title + metadata) | title | profile (title + LLM profile,
    # from recgen augment profiles) | svd (train matrix)
    embeddings: str = "text"
    profiles: str = "profiles"  # embeddings=profile: the --out folder of recgen augment profiles
    text_encoder: str = "minilm"  # sentence-transformers model: minilm (embedded) or a local folder
    svd_dim: int = 64  # dimension of the svd embeddings
    levels: int = 3  # code levels before the collision level
    codebook_size: int = 256
    rqvae_epochs: int = 200
    rqvae_latent_dim: int = 32
    rqvae_hidden: str = "512,256,128"
    rqvae_lr: float = 1e-3
    rqvae_beta: float = 0.25
    collab_weight: float = 1.0  # collab: weight of the contrastive alignment with SASRec item embeddings
    diversity_weight: float = 0.1  # collab: weight of the code-usage diversity term
    collab_epochs: int = 20  # collab: epochs of the SASRec that provides collaborative embeddings
    # seq2seq transformer
    d_model: int = 64
    n_heads: int = 2
    head_dim: int = 0  # width of one attention head (0 = d_model / n_heads; the paper: 6 heads of 64 over d_model 128)
    ffn_dim: int = 256
    encoder_layers: int = 2
    decoder_layers: int = 2
    dropout: float = 0.1
    max_items: int = 20  # history items read by the encoder
    user_buckets: int = 2000  # hashed user tokens (0 = none)
    targets_per_user: int = 0  # training targets per user, the most recent ones (0 = every position)
    # decoding
    beam: int = 20
    constrained: bool = True
    # training
    device: str = "cpu"  # cpu | cuda | cuda:N | auto: where the transformer trains and decodes (tokenizers: CPU)
    batch_size: int = 256
    epochs: int = 50
    eval_every: int = 5
    patience: int = 3

    def validate(self) -> None:
        super().validate()
        check(self.tokenizer in TOKENIZERS, f"tokenizer must be one of {list(TOKENIZERS)}, got {self.tokenizer!r}")
        check(
            (self.tokenizer == "file") == bool(self.codes_file),
            "tokenizer=file reads codes_file=PATH (a JSON of item id -> codes), and codes_file needs tokenizer=file",
        )
        check(self.embeddings in EMBEDDINGS, f"embeddings must be one of {list(EMBEDDINGS)}, got {self.embeddings!r}")
        check(self.levels >= 1 and self.codebook_size >= 2, "need levels >= 1 and codebook_size >= 2")
        check(
            self.head_dim > 0 or self.d_model % self.n_heads == 0,
            f"n_heads must divide d_model when head_dim is 0, got {self.n_heads} and {self.d_model}; "
            "or set head_dim (the paper: n_heads=6 head_dim=64)",
        )
        check(self.head_dim >= 0, f"head_dim must be >= 0 (0 = d_model / n_heads), got {self.head_dim}")
        check(self.encoder_layers >= 1 and self.decoder_layers >= 1, "need >= 1 encoder and decoder layer")
        check(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}")
        check(self.max_items >= 1, f"max_items must be >= 1, got {self.max_items}")
        check(self.user_buckets >= 0 and self.targets_per_user >= 0, "user_buckets and targets_per_user are >= 0")
        check(self.beam >= 1, f"beam must be >= 1, got {self.beam}")
        check_device_spec(self.device)
        check(self.svd_dim >= 1 and self.rqvae_epochs >= 1, "svd_dim and rqvae_epochs must be >= 1")
        try:
            hidden = tuple(int(v) for v in self.rqvae_hidden.split(",") if v.strip())
        except ValueError:
            hidden = ()
        check(
            bool(hidden) and min(hidden) >= 1, f"rqvae_hidden must be comma-separated widths, got {self.rqvae_hidden!r}"
        )


def tiger_block(cfg: TIGERConfig, cross: bool) -> TransformerBlock:
    """One encoder (``cross=False``) or decoder layer, with the cheap CPU dropout masks."""
    return TransformerBlock(
        cfg.d_model, cfg.n_heads, cfg.ffn_dim, cfg.dropout, head_dim=cfg.head_dim, cross=cross, cheap_dropout=True
    )


class TIGERNet(nn.Module):
    def __init__(self, vocab: int, enc_len: int, cfg: TIGERConfig, levels: int) -> None:
        super().__init__()
        d = cfg.d_model
        self.tok = nn.Embedding(vocab, d, padding_idx=PAD)
        self.enc_pos = nn.Embedding(enc_len, d)
        self.dec_pos = nn.Embedding(levels, d)
        self.enc = nn.ModuleList(tiger_block(cfg, cross=False) for _ in range(cfg.encoder_layers))
        self.dec = nn.ModuleList(tiger_block(cfg, cross=True) for _ in range(cfg.decoder_layers))
        self.enc_norm, self.dec_norm = nn.LayerNorm(d), nn.LayerNorm(d)
        self.drop = Dropout(cfg.dropout)
        for e in (self.tok, self.enc_pos, self.dec_pos):
            nn.init.normal_(e.weight, std=0.02)
        with torch.no_grad():
            self.tok.weight[PAD].zero_()

    @staticmethod
    def key_mask(src: torch.Tensor) -> torch.Tensor:
        """(B, 1, 1, S) attention key mask of left-padded tokens (True = attend); an all-padding row attends to
        everything (a finite softmax)."""
        keep = src != PAD
        return (keep | (~keep.any(1, keepdim=True)))[:, None, None, :]

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, S) left-padded tokens -> memory (B, S, D) and key mask (B, 1, 1, S) (True = attend)."""
        t = src.shape[1]
        mask = self.key_mask(src)
        x = self.drop(self.tok(src) * math.sqrt(self.tok.embedding_dim) + self.enc_pos.weight[-t:])
        for layer in self.enc:
            x = layer(x, mask)
        return self.enc_norm(x), mask

    def decode_train(self, dec_in: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: (B, L) decoder inputs -> (B, L, D) states (causal self-attention)."""
        t = dec_in.shape[1]
        x = self.drop(self.tok(dec_in) * math.sqrt(self.tok.embedding_dim) + self.dec_pos.weight[:t])
        causal = torch.ones(t, t, dtype=torch.bool, device=dec_in.device).tril()
        for layer in self.dec:
            x = layer(x, causal, memory, mask)
        return self.dec_norm(x)

    def decode_step(self, tokens: torch.Tensor, pos: int, cache: dict[str, Any]) -> torch.Tensor:
        """One decoding position for (B, W) beams of tokens; cache holds per-layer cross K/V (B, H, S, Dh) and
        self K/V (B, W, H, t, Dh). Returns (B, W, D)."""
        x = self.tok(tokens) * math.sqrt(self.tok.embedding_dim) + self.dec_pos.weight[pos]
        for i, layer in enumerate(self.dec):
            h = layer.norm1(x)[:, :, None]  # (B, W, 1, D)
            k, v = layer.attn.keys_values(h)  # (B, W, H, 1, Dh)
            if pos > 0:
                k = torch.cat([cache["self"][i][0], k], dim=-2)
                v = torch.cat([cache["self"][i][1], v], dim=-2)
            cache["self"][i] = (k, v)
            x = x + layer.attn.attend(h, k, v, None)[:, :, 0]
            h = layer.cross_norm(x)  # (B, W, D): the W beams are W query rows over the user's memory
            ck, cv = cache["cross"][i]
            x = x + layer.cross.attend(h, ck, cv, cache["mask"])
            x = x + layer.ffn(layer.norm2(x))
        return self.dec_norm(x)


class TIGER(NetRecommender):
    name = "tiger"
    Config = TIGERConfig
    decode_fields = ("constrained", "beam")  # read only when recommending (bench --decode-variant)

    def _device(self, strict: bool = False) -> torch.device:
        """The configured device (``strict``: a GPU that is not there is an error; else the CPU stands in)."""
        return resolve_device(self.config.device, strict=strict)

    @property
    def eval_batch_size(self) -> int:  # users decoded at once: 1024 on a GPU, 64 on the CPU
        net = getattr(self, "net_", None)
        return 1024 if net is not None and net.tok.weight.device.type == "cuda" else 64

    @property
    def batch_size_recommend(self) -> int:
        return self.eval_batch_size

    # ------------------------------------------------------------------------------------ tokenizer
    def _fit_tokenizer(self, dataset: Dataset) -> None:
        codes, stats = fit_item_tokenizer(dataset, self.config)
        self.codes_, self.tokenizer_stats_ = codes, stats

    def _setup_vocab(self) -> None:
        """Token offsets per level and the trie tables from ``codes_`` (n_items + 1, L)."""
        codes = self.codes_[1:]
        self.level_sizes_ = level_sizes(self.codes_)
        users = self.config.user_buckets
        self.offsets_ = np.cumsum([FIRST + users] + self.level_sizes_[:-1]).astype(np.int64)
        self.vocab_ = int(FIRST + users + sum(self.level_sizes_))
        # the constrained-decoding trie as one table per level: child[l][p, c] = index of prefix (p, c) at level
        # l + 1 (the dense item at the last level), -1 where no item continues that way
        trie = PrefixTrie(codes)
        self.child_ = [torch.from_numpy(table) for table in trie.level_tables(self.level_sizes_)]
        self._child_dev_ = None  # the tables on the decoding device, made on first use

    # --------------------------------------------------------------------------------------- inputs
    def _user_token(self, users: np.ndarray) -> np.ndarray:
        b = self.config.user_buckets
        if not b:
            return np.zeros(len(users), dtype=np.int64)
        tok = FIRST + (np.asarray(users, dtype=np.int64) * 2654435761 % 2**32) % b
        return np.where(np.asarray(users) > 0, tok, PAD)

    def _source(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """(B, 1 + max_items * L) encoder tokens: user token, then the codes of the last items, left-padded."""
        m, L = self.config.max_items, self.codes_.shape[1]
        out = np.zeros((len(histories), 1 + m * L), dtype=np.int64)
        for i, h in enumerate(histories):
            h = np.asarray(h, dtype=np.int64)[-m:]
            if len(h):
                out[i, out.shape[1] - len(h) * L :] = (self.codes_[h] + self.offsets_).reshape(-1)
        first = out.shape[1] - np.array([min(len(h), m) * L for h in histories], dtype=np.int64) - 1
        out[np.arange(len(histories)), first] = self._user_token(users)
        return out

    def _training_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        users, hists, targets = [], [], []
        per = self.config.targets_per_user
        for u in range(1, self.n_users_ + 1):
            h = self.train_history(u)
            start = 1 if not per else max(1, len(h) - per)
            for j in range(start, len(h)):
                users.append(u)
                hists.append(h[:j])
                targets.append(h[j])
        if not targets:
            raise DataError("TIGER needs users with at least two training interactions")
        src = self._source(np.array(users), hists)
        tgt = self.codes_[np.array(targets)]  # (P, L) codes, not yet offset
        return src, tgt

    # -------------------------------------------------------------------------------------- training
    def _loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, int]:
        src, tgt = batch
        memory, mask = self.net_.encode(src)
        off = torch.from_numpy(self.offsets_).to(tgt.device)
        bos = torch.full((len(tgt), 1), BOS, dtype=torch.long, device=tgt.device)
        dec_in = torch.cat([bos, (tgt + off)[:, :-1]], dim=1)
        h = self.net_.decode_train(dec_in, memory, mask)  # (B, L, D)
        emb = self.net_.tok.weight
        loss = 0.0
        for lv, size in enumerate(self.level_sizes_):
            logits = h[:, lv] @ emb[self.offsets_[lv] : self.offsets_[lv] + size].T
            loss = loss + F.cross_entropy(logits, tgt[:, lv])
        return loss / len(self.level_sizes_), len(tgt)

    def _fit(self, dataset: Dataset, valid: Any) -> None:
        cfg = self.config
        torch.manual_seed(cfg.seed)
        self._fit_tokenizer(dataset)
        self._setup_vocab()
        src, tgt = self._training_pairs()
        self.reset_stats()
        dev = self._device(strict=True)
        self.net_ = TIGERNet(self.vocab_, src.shape[1], cfg, len(self.level_sizes_)).to(dev)
        self._infer_net_ = None
        src_t, tgt_t = torch.from_numpy(src).to(dev), torch.from_numpy(tgt).to(dev)
        n, bs = len(src), cfg.batch_size
        lengths = torch.from_numpy((src != PAD).sum(1))

        def batches(epoch: int, gen: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
            for idx, width in length_bucketed_batches(lengths, bs, gen):
                idx = idx.to(dev)
                yield src_t[idx, -width:], tgt_t[idx]

        self._train(
            batches=batches,
            loss_fn=self._loss,
            valid=valid,
            steps_per_epoch=(n + bs - 1) // bs,
            flops_per_batch=lambda b: 3.0 * len(b[1]) * self._sample_flops(b[0].shape[1]),
        )
        self.train_pairs_ = n
        self.reset_stats()

    def _sample_flops(self, s: int) -> float:
        """Forward FLOPs (matrix multiplies) of one training pair with a source of ``s`` tokens."""
        c, L = self.config, len(self.level_sizes_)
        d, f = c.d_model, c.ffn_dim
        a = c.n_heads * (c.head_dim or d // c.n_heads)  # attention width
        enc = c.encoder_layers * (8 * s * d * a + 4 * s * s * a + 4 * s * d * f)
        # self-attention, cross-attention (queries/outputs on L positions, keys/values on s), feed-forward
        dec = c.decoder_layers * (
            8 * L * d * a + 4 * L * L * a + 4 * L * d * a + 4 * s * d * a + 4 * L * s * a + 4 * L * d * f
        )
        return float(enc + dec + 2 * d * sum(self.level_sizes_))

    # -------------------------------------------------------------------------------------- decoding
    def reset_stats(self) -> None:
        self.stats_ = {"users": 0, "beams": 0, "invalid": 0, "decode_seconds": 0.0}

    def run_info(self) -> dict[str, Any]:
        st = dict(getattr(self, "stats_", {}))
        if st.get("beams"):
            st["invalid_rate"] = st["invalid"] / st["beams"]
            st["ms_per_user"] = 1000 * st["decode_seconds"] / max(st["users"], 1)
        return {
            "tokenizer": {"name": self.config.tokenizer, "levels": self.level_sizes_, **self.tokenizer_stats_},
            **self.decoded_with(),
            "train_pairs": getattr(self, "train_pairs_", None),
            "stats": st,
        }

    @torch.no_grad()
    def beam_search(
        self, users: np.ndarray, histories: Sequence[np.ndarray], decode: TIGERConfig | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, W) dense items (0 = invalid or dead beam) and their log-probabilities, best first; and (B, C) the
        log-probabilities of the first level's codes. ``decode``: the config whose ``beam`` and ``constrained``
        to use (default: the fitted one)."""
        net, cfg = self._inference_net(), decode or self.config
        dev = net.tok.weight.device
        if self._child_dev_ is None or self._child_dev_[0].device != dev:
            self._child_dev_ = [t.to(dev) for t in self.child_]
        src = torch.from_numpy(self._source(users, histories)).to(dev)
        memory, mask = encode_by_length(net, src)
        b, w = len(src), cfg.beam
        cache: dict[str, Any] = {"self": [None] * len(net.dec), "mask": mask, "cross": []}
        for layer in net.dec:
            cache["cross"].append(layer.cross.keys_values(memory))  # (B, H, S, Dh), shared by the beams
        emb = net.tok.weight
        tokens = torch.full((b, 1), BOS, dtype=torch.long, device=dev)
        logp = torch.zeros(b, 1, dtype=torch.float64, device=dev)
        prefix = torch.zeros(b, 1, dtype=torch.long, device=dev)  # trie prefix index of each beam (-1 = off the trie)
        first = None
        for lv, size in enumerate(self.level_sizes_):
            h = net.decode_step(tokens, lv, cache)  # (B, W', D)
            off = int(self.offsets_[lv])
            lp = torch.log_softmax(h @ emb[off : off + size].T, dim=-1)  # (B, W', size)
            if lv == 0:
                first = lp[:, 0]  # (B, size): log p(first code), the fallback ranking outside the beams
            child = self._child_dev_[lv][prefix.clamp(min=0)]  # (B, W', size)
            child = torch.where((prefix >= 0)[..., None], child, torch.full_like(child, -1))
            if cfg.constrained:
                lp = lp.masked_fill(child < 0, -torch.inf)
            cand = (logp[..., None] + lp).reshape(b, -1)
            k = min(w, cand.shape[1])
            top, idx = torch.topk(cand, k, dim=1)
            parent, code = idx // size, idx % size
            logp = top
            prefix = torch.gather(child.reshape(b, -1), 1, idx)
            tokens = code + off
            for i, kv in enumerate(cache["self"]):
                sel = parent[:, :, None, None, None].expand(-1, -1, *kv[0].shape[2:])
                cache["self"][i] = (torch.gather(kv[0], 1, sel), torch.gather(kv[1], 1, sel))
        items = torch.where(torch.isfinite(logp) & (prefix > 0), prefix, torch.zeros_like(prefix))
        return items, logp, first

    @torch.no_grad()
    def _score(self, user_ids: np.ndarray, histories: Sequence[np.ndarray], decode: TIGERConfig) -> torch.Tensor:
        t0 = time.perf_counter()
        items, logp, first = self.beam_search(user_ids, histories, decode)
        # every catalogue item outside the beams ranks below them, by the log-probability of its first code
        scores = FALLBACK + first[:, torch.from_numpy(self.codes_[:, 0]).to(first.device)]
        scores[:, 0] = -torch.inf
        finite = torch.isfinite(logp)
        valid = items > 0
        # a beam's item gets its log-probability (the first, best beam wins if an item appears twice: it cannot,
        # since item tuples are unique)
        rows = torch.arange(len(histories), device=items.device)[:, None].expand_as(items)
        scores[rows[valid], items[valid]] = logp[valid]
        scores = scores.cpu()  # the harness ranks on the CPU
        self.stats_["users"] += len(histories)
        self.stats_["beams"] += int(finite.sum())
        self.stats_["invalid"] += int((finite & ~valid).sum())
        self.stats_["decode_seconds"] += time.perf_counter() - t0
        return scores

    # ----------------------------------------------------------------------------------------- state
    def non_embedding_parameters(self) -> int:
        return sum(p.numel() for n, p in self.net_.named_parameters() if not n.startswith("tok."))

    def _extra_meta(self) -> dict[str, Any]:
        return {
            **super()._extra_meta(),
            "tokenizer_stats": self.tokenizer_stats_,
            "enc_len": int(self.net_.enc_pos.num_embeddings),
        }

    def _load_extra_meta(self, extra: dict[str, Any]) -> None:
        self.best_epoch_ = extra.get("best_epoch")
        self.tokenizer_stats_ = extra.get("tokenizer_stats", {})
        self.enc_len_ = extra["enc_len"]

    def _state(self) -> dict[str, np.ndarray]:
        return {**super()._state(), "_codes": self.codes_}

    def _load_state(self, tensors: dict[str, np.ndarray]) -> None:
        self.codes_ = tensors.pop("_codes")
        self._setup_vocab()
        net = TIGERNet(self.vocab_, self.enc_len_, self.config, len(self.level_sizes_))
        self._set_net(net, upgrade_state(tensors))
        self.net_ = self.net_.to(self._device())  # a GPU-trained model loads on a machine without one: CPU
        self.reset_stats()


_OLD_NAMES = {"n1": "norm1", "self_attn": "attn", "n2": "cross_norm", "n3": "norm2"}


def upgrade_state(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Weights saved before TIGER's layers became the shared ``TransformerBlock`` (layer parts ``n1``, ``self_attn``,
    ``n2``, ``n3``; separate ``q`` and ``kv`` projections) under today's names, with q and kv fused into ``qkv``."""
    if not any(".self_attn." in k for k in tensors):
        return tensors
    out: dict[str, np.ndarray] = {}
    for key, value in tensors.items():
        parts = key.split(".")
        if len(parts) > 2 and parts[0] in ("enc", "dec"):
            parts[2] = _OLD_NAMES.get(parts[2], parts[2])
        out[".".join(parts)] = value
    for key in [k for k in out if k.endswith(".q.weight") or k.endswith(".q.bias")]:
        stem, kind = key.rsplit(".q.", 1)
        out[f"{stem}.qkv.{kind}"] = np.concatenate([out.pop(key), out.pop(f"{stem}.kv.{kind}")])
    return out


def encode_by_length(net: TIGERNet, src: torch.Tensor, group: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """``net.encode(src)`` for decoding, with the users sorted by history length and encoded ``group`` at a time,
    each group trimmed to its longest source: left padding is masked out of every attention, so the memory at
    the real tokens is the full-width one (up to float rounding of the smaller matmuls) at a fraction of the cost
    (Toys: 37 of 81 source tokens on average, and nearly every batch of 64 holds one full-length user). The
    memory is (B, S, D) with zeros at padded positions; the key mask is the full-width one."""
    if group < 1:
        raise ValueError(f"group must be >= 1 (users encoded at once), got {group}")
    b, s = src.shape
    lengths = (src != PAD).sum(1)
    memory = None
    order = torch.argsort(lengths, stable=True)
    for start in range(0, b, group):
        rows = order[start : start + group]
        empty = bool((lengths[rows] == 0).any())  # an all-padding row is encoded at full width, as encode does
        width = s if empty else int(lengths[rows].max())
        out, _ = net.encode(src[rows, s - width :])
        if memory is None:
            memory = out.new_zeros(b, s, out.shape[-1])
        memory[rows, s - width :] = out
    return memory, net.key_mask(src)
