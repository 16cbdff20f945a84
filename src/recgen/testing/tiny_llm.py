"""A tiny, randomly initialised causal LM with the embedded model's tokenizer, for contract tests.

The LLM recommenders' conformance tests check contracts (save/load identical, determinism, the same metrics at
any batch size), not quality, so they run on a one-layer, 32-wide Llama built here from a config (nothing is
downloaded) with SmolLM2's tokenizer (read from the embedded GGUF): a fit and an evaluation take seconds.
"""

from __future__ import annotations

from pathlib import Path

from recgen.errors import BackendUnavailableError


def make_tiny_llm(
    folder: str | Path, seed: int = 0, *, init_range: float = 0.02, layers: int = 1, hidden: int = 32
) -> Path:
    """Write the tiny model folder (``config.json``, safetensors weights, tokenizer files) and return it; an
    existing complete folder is reused. ``init_range`` (the weights' standard deviation): at the default, a random
    one-layer model's last position barely attends to the prompt; larger values let a planted signal in the prompt
    reach the answer logits, which the learnability tests of prompt-conditioned models need. ``layers`` and
    ``hidden``: a task that must route a signal between prompt positions (pick a candidate) needs two layers."""
    folder = Path(folder)
    if (folder / "config.json").is_file() and (folder / "tokenizer_config.json").is_file():
        return folder
    try:
        import torch
        import transformers
    except ImportError:
        raise BackendUnavailableError("the tiny test LLM needs transformers: pip install recgen[llm-train]") from None
    from recgen.io import atomic_dir
    from recgen.llm.files import embedded_model_path

    gguf = embedded_model_path()
    tok = transformers.AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name, local_files_only=True)
    config = transformers.LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        initializer_range=init_range,
    )
    torch.manual_seed(seed)
    model = transformers.LlamaForCausalLM(config)
    with atomic_dir(folder) as tmp:
        model.save_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))
    return folder
