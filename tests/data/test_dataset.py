import numpy as np
import pytest

from recgen.data.dataset import Dataset, Vocabulary, from_columns
from recgen.errors import DataError


def test_vocabulary_roundtrip_and_padding():
    v = Vocabulary(["a", "b", 3])
    assert len(v) == 3 and v.size == 4
    assert v.index("a") == 1 and v.index(3) == 3
    assert v.lookup(["b", "zz"]).tolist() == [2, 0]  # unknown -> padding
    assert list(v.external([3, 1])) == ["3", "a"]
    with pytest.raises(DataError, match="unknown id"):
        v.index("zz")
    with pytest.raises(DataError, match="duplicate"):
        Vocabulary(["a", "a"])
    with pytest.raises(DataError, match="dense ids"):
        v.external([0])


def test_from_columns_positions_when_no_timestamps():
    ds = from_columns(["u1", "u2", "u1", "u1"], ["a", "b", "c", "a"])
    assert ds.meta["timestamp_source"] == "position"
    assert ds.timestamps.tolist() == [0, 0, 1, 2]
    indptr, items = ds.user_sequences()
    assert list(ds.items.external(items[indptr[1] : indptr[2]])) == ["a", "c", "a"]
    assert ds.stats()["duplicate_pairs"] == 1


def test_chronological_order_is_stable_for_equal_timestamps():
    # u1 rates c, a, b all at t=5 (file order c, a, b) and d at t=1
    ds = from_columns(["u1", "u1", "u1", "u1"], ["c", "a", "b", "d"], [5, 5, 5, 1])
    indptr, items = ds.user_sequences()
    assert list(ds.items.external(items)) == ["d", "c", "a", "b"]


def test_save_load_roundtrip(tmp_path, tiny_dataset):
    path = tiny_dataset.save(tmp_path / "ds")
    back = Dataset.load(path)
    assert back.fingerprint() == tiny_dataset.fingerprint()
    np.testing.assert_array_equal(back.ratings, tiny_dataset.ratings)
    assert back.users == tiny_dataset.users and back.items == tiny_dataset.items
    # overwrite in place, atomically; no temp folders left
    tiny_dataset.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_load_detects_corruption(tmp_path, tiny_dataset):
    path = tiny_dataset.save(tmp_path / "ds")
    other = from_columns(["x"], ["y"])
    other.save(tmp_path / "other")
    (path / "interactions.parquet").write_bytes((tmp_path / "other" / "interactions.parquet").read_bytes())
    with pytest.raises(DataError):
        Dataset.load(path)
    with pytest.raises(DataError, match="not a recgen dataset"):
        Dataset.load(tmp_path)


def test_side_tables_align_to_vocabulary():
    import pyarrow as pa

    items = pa.table({"item_id": ["b", "a", "zz"], "title": ["B", "A", "Z"]})
    ds = from_columns(["u", "u", "v"], ["a", "b", "c"], item_table=items)
    assert ds.item_table.column("item_id").to_pylist() == ["a", "b", "c"]
    assert ds.item_table.column("title").to_pylist() == ["A", "B", None]


def test_bad_columns():
    with pytest.raises(DataError, match="align"):
        from_columns(["a"], ["b", "c"])
    with pytest.raises(DataError, match="no interactions"):
        from_columns([], [])
    with pytest.raises(DataError, match="NaN"):
        from_columns(["a"], ["b"], [float("nan")])


def test_atomic_writes_leave_usual_permissions_and_no_temp_files(tmp_path, tiny_dataset):
    import os

    from recgen.io import atomic_write_file

    mask = os.umask(0o022)
    try:
        f = atomic_write_file(tmp_path / "r.json", lambda tmp: open(tmp, "w").write("{}"))
        assert f.read_text() == "{}" and (f.stat().st_mode & 0o777) == 0o644
        tiny_dataset.save(tmp_path / "ds")
        assert ((tmp_path / "ds").stat().st_mode & 0o777) == 0o755
    finally:
        os.umask(mask)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "r.json"]
