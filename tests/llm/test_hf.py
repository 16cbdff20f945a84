"""The hf backend loads the same embedded GGUF through transformers (dequantised) and agrees with llama.cpp."""

import pytest

from recgen.errors import ConfigError, DataError
from recgen.llm.hf import HFLLM


@pytest.fixture(scope="module")
def hf_llm(embedded_gguf):
    pytest.importorskip("transformers")
    return HFLLM(embedded_gguf)


def test_hf_agrees_with_llamacpp(hf_llm, embedded_llm):
    prompt = "Question: what colour is grass?\nAnswer:"
    conts = [" green", " purple", " light green"]
    for a, b in zip(hf_llm.score(prompt, conts), embedded_llm.score(prompt, conts), strict=True):
        assert a == pytest.approx(b, abs=0.5)  # Q4_1 weights either way; llama.cpp also quantises activations
    assert hf_llm.chat("Name a fruit.", max_tokens=12).text == embedded_llm.chat("Name a fruit.", max_tokens=12).text
    assert hf_llm.identity()["model_sha256"] == embedded_llm.identity()["model_sha256"]


def test_hf_refuses_constrained_generation_and_bad_paths(hf_llm, tmp_path):
    with pytest.raises(ConfigError, match="no constrained generation"):
        hf_llm.chat("hi", json_schema={"type": "object"})
    with pytest.raises(DataError, match="does not exist"):
        HFLLM(tmp_path / "nope")
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(DataError, match="not a .gguf"):
        HFLLM(tmp_path / "weights.bin")
