"""Item codes for TIGER: fit an item tokenizer on the training data (from text embeddings, an SVD of the
interaction matrix, or SASRec's item embeddings) and cache the codes on disk.

The codes are a table ((n_items + 1, levels + 1), row 0 = padding) with TIGER's extra level that makes every
item's tuple unique. Fitting is cached (``$RECGEN_CACHE_DIR/codes``), keyed by the training data's fingerprint,
the item texts, every tokenizer field and the seed, so a second TIGER run on the same data reuses the codes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from recgen.cache import cache_dir
from recgen.data.dataset import Dataset
from recgen.errors import IntegrityError
from recgen.io import atomic_write_sealed, read_sealed

log = logging.getLogger(__name__)

TOKENIZERS = ("rqvae", "rqkmeans", "collab", "id", "file")
EMBEDDINGS = ("text", "title", "profile", "svd")  # text: title + metadata; profile: title + the LLM profile


def level_sizes(codes: np.ndarray) -> list[int]:
    """Codes used at each level of an item-code table ((n_items + 1, levels), row 0 = padding)."""
    return [int(codes[1:, lv].max()) + 1 for lv in range(codes.shape[1])]


def item_vectors(dataset: Dataset, cfg: Any) -> np.ndarray:
    """(n_items, d) content vectors of dense items 1..n: sentence embeddings of the item texts, or the truncated
    SVD of the item x user training matrix."""
    if cfg.embeddings != "svd":
        from recgen.data.text import TextEncoder

        return TextEncoder(cfg.text_encoder).encode(_texts(dataset, cfg))
    from recgen.data.matrix import interaction_matrix, svd_item_vectors

    return svd_item_vectors(interaction_matrix(dataset), cfg.svd_dim, cfg.seed, power=0.5).astype(np.float32)


def _texts(dataset: Dataset, cfg: Any) -> list[str]:
    """The item texts ``cfg.embeddings`` names (``text`` is the title with metadata; ``profile`` reads the side
    table of ``recgen augment profiles`` under ``cfg.profiles``)."""
    from recgen.data.text import source_texts

    source = "meta" if cfg.embeddings == "text" else cfg.embeddings
    return source_texts(dataset, source, getattr(cfg, "profiles", "profiles"))


def collab_vectors(dataset: Dataset, cfg: Any) -> np.ndarray:
    """Item embeddings of a SASRec-CE fitted on the same training data (no validation: a fixed epoch budget)."""
    from recgen.models.sequential.sasrec import SASRec

    sas = SASRec(epochs=cfg.collab_epochs, eval_every=cfg.collab_epochs, seed=cfg.seed)
    sas.fit(dataset)
    return sas.net_.item_embeddings().detach()[1:].numpy()


CODES_CACHE_VERSION = 1  # raise when a tokenizer's fitting changes, so codes cached by the old code are refitted


TOKENIZER_FIELDS = (
    "tokenizer", "embeddings", "text_encoder", "svd_dim", "levels", "codebook_size", "rqvae_epochs",
    "rqvae_latent_dim", "rqvae_hidden", "rqvae_lr", "rqvae_beta", "collab_weight", "diversity_weight",
    "collab_epochs", "seed",
)  # fmt: skip


def codes_cache_path(dataset: Dataset, cfg: Any) -> Path | None:
    """Where the fitted codes of this tokenizer on this training data are cached: ``$RECGEN_CACHE_DIR/codes``
    (default ``~/.cache/recgen/codes``; ``RECGEN_CACHE_DIR=off`` disables caching), keyed by the data's fingerprint,
    the item texts (text embeddings), every field the tokenizer reads (the seed too) and ``CODES_CACHE_VERSION``.
    None for ID tokens (nothing to fit)."""
    folder = cache_dir("codes")
    if cfg.tokenizer in ("id", "file") or folder is None:  # nothing to fit: read every time
        return None
    key = {"version": CODES_CACHE_VERSION, "data": dataset.fingerprint()}
    key.update({f: getattr(cfg, f) for f in TOKENIZER_FIELDS})
    h = hashlib.sha256(json.dumps(key, sort_keys=True).encode())
    if cfg.embeddings != "svd":
        for t in _texts(dataset, cfg):
            h.update(t.encode("utf-8") + b"\x00")
    return folder / f"{cfg.tokenizer}-{h.hexdigest()[:24]}.npz"


def fit_item_tokenizer(dataset: Dataset, cfg: Any) -> tuple[np.ndarray, dict[str, Any]]:
    """The item codes ((n_items + 1, levels + 1), row 0 = padding) of ``cfg.tokenizer`` and its statistics
    (perplexity per level, collision rate before the extra level, reconstruction error, seconds).

    Fitted codes are cached on disk (``codes_cache_path``): a second run with the same data, tokenizer fields and
    seed reads them back (its statistics then say ``cached: true``, with the seconds the original fit took)."""
    path = codes_cache_path(dataset, cfg)
    if path is not None and path.is_file():
        try:
            payload = read_sealed(path, "cached item codes", "it is refitted")
            with np.load(io.BytesIO(payload), allow_pickle=False) as z:
                codes, stats = z["codes"], json.loads(str(z["stats"]))
            if codes.shape[0] == dataset.n_items + 1:
                return codes, {**stats, "cached": True}
            log.warning(
                "%s: cached codes for %d items, the data has %d; refitting", path, len(codes) - 1, dataset.n_items
            )
        except (IntegrityError, OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            log.warning("%s: unreadable cache entry (%s); refitting the item codes", path, exc)
    codes, stats = _fit_item_tokenizer(dataset, cfg)
    if path is not None:
        buffer = io.BytesIO()
        np.savez(buffer, codes=codes, stats=np.array(json.dumps(stats, default=float)))
        atomic_write_sealed(path, buffer.getvalue())
    return codes, stats


def _fit_item_tokenizer(dataset: Dataset, cfg: Any) -> tuple[np.ndarray, dict[str, Any]]:
    from recgen.models.semantic.tokenizers import FileTokenizer, IDTokenizer, RQKMeansTokenizer, RQVAETokenizer

    t0 = time.perf_counter()
    extra: dict[str, Any] = {}
    if cfg.tokenizer == "id":
        tok = IDTokenizer().fit(dataset.n_items)
    elif cfg.tokenizer == "file":
        tok = FileTokenizer().fit(cfg.codes_file, list(dataset.items.external(np.arange(1, dataset.n_items + 1))))
    else:
        vectors = item_vectors(dataset, cfg)
        if cfg.tokenizer == "rqkmeans":
            tok = RQKMeansTokenizer(cfg.levels, cfg.codebook_size, seed=cfg.seed).fit(vectors)
        else:
            collab = collab_vectors(dataset, cfg) if cfg.tokenizer == "collab" else None
            tok = RQVAETokenizer(
                cfg.levels,
                cfg.codebook_size,
                latent_dim=cfg.rqvae_latent_dim,
                hidden=tuple(int(v) for v in cfg.rqvae_hidden.split(",") if v.strip()),
                beta=cfg.rqvae_beta,
                epochs=cfg.rqvae_epochs,
                lr=cfg.rqvae_lr,
                collab_weight=cfg.collab_weight,
                diversity_weight=cfg.diversity_weight,
                seed=cfg.seed,
            ).fit(vectors, collab)
            extra = {"dead_code_restarts": tok.restarts_, "log": tok.log_}
    stats = {**dataclasses.asdict(tok.stats_), **extra, "seconds": time.perf_counter() - t0}
    return tok.codes_, stats
