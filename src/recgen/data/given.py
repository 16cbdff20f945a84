"""Splits as the user gives them (protocol ``given``): train / valid / test files used as they are.

Two layouts of a folder are recognised:

- **RecBole benchmark files** ``NAME.train.inter`` / ``NAME.valid.inter`` / ``NAME.test.inter``, one row per
  (user, history, target) with a ``item_id_list:token_seq`` history column: the evaluation sets take each
  row's own history and target; training takes, per user, the first training row's history followed by the
  targets of all its training rows in file order (RecBole writes every prefix of a sequence as a row, with the
  history cut to its maximum length).
- **Interaction files** ``train.*`` / ``valid.*`` / ``test.*`` in any format recgen reads (CSV, Parquet,
  sequence files ...): validation targets are a user's valid interactions with the user's training
  interactions as history, test targets the test interactions with training + validation as history, in time
  order (the file order where the files have no timestamps).

Items that appear only in validation or test files are part of the catalogue (ranked like every item; a model
that never saw them scores them cold). The protocol records the files and their SHA-256.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from recgen.data.dataset import Dataset, from_columns
from recgen.data.formats.recbole import read_atomic
from recgen.data.split import TEST, TRAIN, VALID, EvalSet, Split, _from_roles
from recgen.data.vocabulary import Vocabulary
from recgen.errors import DataError
from recgen.io import file_sha256

PARTS = ("train", "valid", "test")


def find_split_files(folder: Path) -> tuple[str, dict[str, Path]]:
    """The layout (``recbole-benchmark`` or ``files``) and the train/valid/test files of a split folder."""
    if not folder.is_dir():
        raise DataError(f"--protocol given reads a folder with train, valid and test files; {folder} is not a folder")
    bench = {p: sorted(folder.glob(f"*.{p}.inter")) for p in PARTS}
    if all(len(v) == 1 for v in bench.values()):
        return "recbole-benchmark", {p: v[0] for p, v in bench.items()}
    plain = {p: sorted(f for f in folder.glob(f"{p}.*") if f.is_file()) for p in PARTS}
    if all(len(v) == 1 for v in plain.values()):
        return "files", {p: v[0] for p, v in plain.items()}
    found = sorted(f.name for f in folder.iterdir())
    raise DataError(
        f"{folder} does not hold one train, one valid and one test file (NAME.train.inter, NAME.valid.inter, "
        f"NAME.test.inter, or train.*, valid.*, test.*); it holds {found[:8]}"
    )


def load_given_split(path: str | os.PathLike[str], *, format: str | None = None, **options: Any) -> Split:
    """The split a folder of train / valid / test files gives (see the module docstring)."""
    folder = Path(path)
    layout, files = find_split_files(folder)
    if layout == "recbole-benchmark":
        split = _recbole_benchmark(files, folder.name)
    else:
        split = _interaction_files(files, folder.name, format, options)
    split.protocol.update(
        {
            "name": "given",
            "layout": layout,
            "files": {p: {"name": f.name, "sha256": file_sha256(f)} for p, f in files.items()},
        }
    )
    return split


def _interaction_files(files: dict[str, Path], name: str, format: str | None, options: dict[str, Any]) -> Split:
    from recgen.data.loaders import load_path

    parts = [load_path(files[p], format, **options) for p in PARTS]
    users = np.concatenate([d.users.external(d.user_ids) for d in parts])
    items = np.concatenate([d.items.external(d.item_ids) for d in parts])
    roles = np.concatenate(
        [np.full(d.n_interactions, role, np.int8) for d, role in zip(parts, (TRAIN, VALID, TEST), strict=True)]
    )
    timed = [d.meta.get("timestamp_source") == "file" for d in parts]
    if all(timed):
        ts = np.concatenate([d.timestamps for d in parts])
    elif not any(timed):  # file order: training rows come before validation rows, before test rows
        ts = np.arange(len(users), dtype=np.float64)
    else:
        raise DataError("the train, valid and test files must all have timestamps or none of them")
    ds = from_columns(users, items, ts, name=name, meta={"format": "given", "timestamp_source": "file"})
    return _from_roles(ds, roles, {"name": "given"})


def _recbole_benchmark(files: dict[str, Path], name: str) -> Split:
    rows = {p: _benchmark_rows(files[p]) for p in PARTS}
    user_vocab = Vocabulary(list(dict.fromkeys(u for p in PARTS for u, _, _ in rows[p])))
    item_vocab = Vocabulary(list(dict.fromkeys(i for p in PARTS for _, h, t in rows[p] for i in (*h, t))))
    # a user's training sequence: the first row's history, then every row's target in file order (RecBole writes
    # one row per prefix with the history cut to MAX_ITEM_LIST_LENGTH, so no single row holds the whole sequence)
    sequences: dict[str, list[str]] = {}
    for user, history, target in rows["train"]:
        sequences.setdefault(user, list(history)).append(target)
    users = [u for u, seq in sequences.items() for _ in seq]
    items = [i for seq in sequences.values() for i in seq]
    train = Dataset(
        user_ids=user_vocab.lookup(users, default=0),
        item_ids=item_vocab.lookup(items, default=0),
        timestamps=np.concatenate([np.arange(len(s), dtype=np.float64) for s in sequences.values()]),
        ratings=None,
        users=user_vocab,
        items=item_vocab,
        name=name,
        meta={"format": "recbole-benchmark", "timestamp_source": "position"},
    )
    valid, test = (_eval_set(rows[p], user_vocab, item_vocab) for p in ("valid", "test"))
    protocol = {
        "n_users": len(user_vocab),
        "n_items": len(item_vocab),
        "n_train": train.n_interactions,
        "n_valid_users": valid.n_users,
        "n_test_users": test.n_users,
        "order": "as given (each row's history list)",
        "dataset_fingerprint": train.fingerprint(),
    }
    return Split(train=train, valid=valid, test=test, protocol=protocol)


def _benchmark_rows(path: Path) -> list[tuple[str, list[str], str]]:
    names, types, _, rows = read_atomic(path)
    cols = {n: i for i, n in enumerate(names)}
    user = next((c for c in ("user_id", "session_id", "user", "uid") if c in cols), None)
    history = next((n for n, t in zip(names, types, strict=True) if t == "token_seq" and "item" in n), None)
    target = next((c for c in ("item_id", "item", "iid") if c in cols), None)
    if user is None or history is None or target is None:
        raise DataError(
            f"{path.name}: a RecBole benchmark file needs a user (user_id or session_id), an item history "
            f"(item_id_list:token_seq) and a target (item_id) field; found {names}"
        )
    return [(r[cols[user]], r[cols[history]].split(), r[cols[target]]) for r in rows]


def _eval_set(rows: list[tuple[str, list[str], str]], users: Vocabulary, items: Vocabulary) -> EvalSet:
    histories = [items.lookup(h, default=0) for _, h, _ in rows]
    return EvalSet(
        user_ids=users.lookup([u for u, _, _ in rows], default=0).astype(np.int64),
        history_indptr=np.r_[0, np.cumsum([len(h) for h in histories])].astype(np.int64),
        history_items=np.concatenate(histories).astype(np.int64) if histories else np.zeros(0, np.int64),
        target_indptr=np.arange(len(rows) + 1, dtype=np.int64),
        target_items=items.lookup([t for _, _, t in rows], default=0).astype(np.int64),
        history_timestamps=None,
    )
