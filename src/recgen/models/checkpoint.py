"""Model folders: how a fitted Recommender is written (``save_model``) and read back, checked (``load_model_folder``).

A model folder holds ``config.json`` (model name, recgen version, config, dataset fingerprint, sizes),
``weights.safetensors`` (the model's state and its training histories), the user and item vocabularies as
Parquet, the item table where the data had one, and ``manifest.json`` with the SHA-256 of every member. Loading
checks, before any weight is used: the manifest, that ``config.json`` names a model this recgen knows and the class
asked for, that the vocabularies, histories and popularity counts have the sizes the config says, and that the
weights fit the network the config describes. Any failure is one ``IntegrityError`` (or ``DataError``) naming the
file and how to rebuild it; no pickle is ever read.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow.parquet as pq
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from recgen import __version__
from recgen.config import to_dict
from recgen.data.vocabulary import Vocabulary
from recgen.errors import ConfigError, DataError, IntegrityError
from recgen.io import atomic_dir, read_json_file, read_parquet, verify_manifest

if TYPE_CHECKING:
    from recgen.models.base import Recommender

CHECKPOINT_FORMAT = "recgen-model"


def _rebuild(path: Path) -> str:
    return f"retrain it with `recgen train -d DATASET -m MODEL --out {path}`"


def save_model(model: Recommender, path: str | Path) -> Path:
    """Write ``model``'s folder atomically (a temp folder with its manifest, renamed onto ``path``)."""
    path = Path(path)
    with atomic_dir(path, manifest=("model folder", _rebuild(path))) as tmp:
        meta = {
            "format": CHECKPOINT_FORMAT,
            "model": model.name,
            "recgen_version": __version__,
            "config": to_dict(model.config),
            "dataset_fingerprint": model.dataset_fingerprint_,
            "n_users": model.n_users_,
            "n_items": model.n_items_,
            "extra": model._extra_meta(),
        }
        (tmp / "config.json").write_text(json.dumps(meta, indent=2, default=str))
        tensors = {
            "_hist_indptr": model.hist_indptr_,
            "_hist_items": model.hist_items_,
            "_hist_ts": model.hist_ts_,
            "_item_counts": model.item_counts_,
            **{k: np.ascontiguousarray(v) for k, v in model._state().items()},
        }
        try:
            save_file(tensors, str(tmp / "weights.safetensors"))
        except SafetensorError as exc:  # an I/O failure inside the Rust writer: report it as the OSError it is
            raise _os_error(exc, path / "weights.safetensors") from None
        pq.write_table(model.users_.to_arrow(), tmp / "users_vocab.parquet")
        pq.write_table(model.items_.to_arrow(), tmp / "items_vocab.parquet")
        if getattr(model, "item_table_", None) is not None:
            pq.write_table(model.item_table_, tmp / "items.parquet")
    return path


def _os_error(exc: Exception, path: Path) -> OSError:
    text = str(exc)
    code = errno.ENOSPC if "No space left" in text else errno.EIO
    return OSError(code, os.strerror(code), str(path))


def load_model_folder(cls: type[Recommender], path: str | Path) -> Recommender:
    """Read and check a folder written by ``save_model``; the class comes from its config.json (``cls``: the class
    asked for, which the saved model must be or inherit from)."""
    from recgen.models.base import Recommender
    from recgen.models.registry import get_model_class

    path = Path(path)
    rebuild = _rebuild(path)
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise DataError(f"{path} is not a recgen model folder (no config.json); train one with `recgen train`")
    verify_manifest(path, "model folder", rebuild)
    meta = read_json_file(cfg_file, f"the model folder is corrupt: {rebuild}")
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise DataError(f"{cfg_file}: format is {found!r}, expected {CHECKPOINT_FORMAT!r}; not a recgen model folder")
    try:
        klass = get_model_class(meta["model"])
    except (KeyError, ConfigError) as exc:
        raise IntegrityError(f"{cfg_file} names no model this recgen knows ({exc}); {rebuild}") from None
    if cls is not Recommender and not issubclass(klass, cls):
        raise DataError(f"{path} holds a {meta['model']!r} model, not a {cls.name!r} model")
    fields = {f.name for f in dataclasses.fields(klass.Config)}
    try:
        model = klass(klass.Config(), **{k: v for k, v in meta["config"].items() if k in fields})
        n_users, n_items = int(meta["n_users"]), int(meta["n_items"])
    except (KeyError, TypeError, ValueError) as exc:
        msg = f"{cfg_file}: the saved config does not describe a {meta['model']} ({exc}); {rebuild}"
        raise IntegrityError(msg) from None
    try:
        tensors = load_file(str(path / "weights.safetensors"))
    except (SafetensorError, OSError, ValueError) as exc:
        raise IntegrityError(f"{path / 'weights.safetensors'}: not readable weights ({exc}); {rebuild}") from None
    model.users_ = Vocabulary.from_arrow(read_parquet(path / "users_vocab.parquet", rebuild))
    model.items_ = Vocabulary.from_arrow(read_parquet(path / "items_vocab.parquet", rebuild))
    item_table = path / "items.parquet"
    model.item_table_ = read_parquet(item_table, rebuild) if item_table.exists() else None
    _check_sizes(path, tensors, model.users_, model.items_, n_users, n_items, rebuild)
    model.hist_indptr_ = tensors.pop("_hist_indptr")
    model.hist_items_ = tensors.pop("_hist_items")
    model.hist_ts_ = tensors.pop("_hist_ts")
    model.item_counts_ = tensors.pop("_item_counts")
    model.n_users_, model.n_items_ = n_users, n_items
    model.dataset_fingerprint_ = meta.get("dataset_fingerprint")
    try:
        model._load_extra_meta(meta.get("extra", {}))
        model._load_state(tensors)
    except (RuntimeError, KeyError, ValueError, IndexError) as exc:
        if isinstance(exc, DataError):
            raise
        detail = str(exc).strip().splitlines()[0][:200]
        raise IntegrityError(
            f"{path / 'weights.safetensors'}: the weights do not fit the {meta['model']} that config.json describes "
            f"({detail}); {rebuild}"
        ) from None
    model.fitted_ = True
    return model


def _check_sizes(
    path: Path,
    tensors: dict[str, Any],
    users: Vocabulary,
    items: Vocabulary,
    n_users: int,
    n_items: int,
    rebuild: str,
) -> None:
    """Vocabularies, histories and popularity counts must have the sizes config.json records."""
    expected = {
        "users_vocab.parquet": (len(users), n_users),
        "items_vocab.parquet": (len(items), n_items),
        "weights.safetensors: _item_counts": (len(tensors.get("_item_counts", ())), n_items + 1),
        "weights.safetensors: _hist_indptr": (len(tensors.get("_hist_indptr", ())), n_users + 2),
    }
    for name, (got, want) in expected.items():
        if got != want:
            raise IntegrityError(
                f"{path}: {name} holds {got} entries but config.json says {want} (files from different models or "
                f"datasets); {rebuild}"
            )
    indptr, hist = tensors["_hist_indptr"], tensors.get("_hist_items", np.zeros(0))
    if len(hist) != int(indptr[-1]) or (len(hist) and (hist.min() < 1 or hist.max() > n_items)):
        raise IntegrityError(f"{path}: the saved histories name items outside the vocabulary; {rebuild}")
