"""One interface for generation and scoring over every LLM backend.

A backend implements four primitives on plain strings / chat messages:

- ``_complete(prompt, params)`` and ``_chat(messages, params)`` -> ``Generation``;
- ``_score(prompt, continuations)`` -> the summed log-probability of each continuation given the prompt;
- ``_next_token_logprobs(prompt, options)`` -> log p(first token of each option | prompt), renormalisable over
  the options (the verbalizer scoring of LlamaRec: the model only ever picks among the given labels).

The base class adds parameter checks, JSON-schema / grammar constrained output, and the persistent response cache
(keyed by backend, model identity, call kind, input and parameters: a different model file or temperature never
returns a stale answer).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from recgen.errors import ConfigError, DataError
from recgen.llm.cache import ResponseCache, cache_key

Message = dict[str, str]
ROLES = ("system", "user", "assistant")


class EndOfTextError(DataError):
    """A server's likeliest next token is end-of-text, and it returns no log-probabilities for the options then."""


@dataclass(frozen=True, kw_only=True)
class GenParams:
    max_tokens: int = 128  # most new tokens
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    seed: int = 0  # sampling seed (part of the cache key)
    stop: tuple[str, ...] = ()  # stop strings (not included in the output)
    json_schema: dict[str, Any] | None = None  # constrain the output to this JSON schema
    grammar: str | None = None  # or to this GBNF grammar (llama.cpp backends)

    def validate(self) -> None:
        if not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise ConfigError(f"max_tokens must be an integer >= 1, got {self.max_tokens!r}")
        if not 0.0 <= float(self.temperature) <= 5.0:
            raise ConfigError(f"temperature must be in [0, 5], got {self.temperature!r}")
        if not 0.0 < float(self.top_p) <= 1.0:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p!r}")
        if self.json_schema is not None and self.grammar is not None:
            raise ConfigError("give json_schema or grammar, not both")
        if self.json_schema is not None and not isinstance(self.json_schema, dict):
            raise ConfigError(f"json_schema must be a dict (a JSON schema), got {type(self.json_schema).__name__}")


def make_params(params: GenParams | None = None, **overrides: Any) -> GenParams:
    base = params or GenParams()
    if "stop" in overrides and overrides["stop"] is not None:
        stop = overrides["stop"]
        overrides["stop"] = (stop,) if isinstance(stop, str) else tuple(stop)
    unknown = set(overrides) - {f.name for f in dataclasses.fields(GenParams)}
    if unknown:
        raise ConfigError(
            f"unknown generation parameter(s) {sorted(unknown)}; use {[f.name for f in dataclasses.fields(GenParams)]}"
        )
    p = dataclasses.replace(base, **{k: v for k, v in overrides.items() if v is not None})
    p.validate()
    return p


@dataclass
class Generation:
    text: str
    finish_reason: str = "stop"  # "stop" or "length"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    cached: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_completion(cls, text: str, choice: dict[str, Any], response: dict[str, Any]) -> Generation:
        """From an OpenAI-format completion response (llama-cpp-python returns the same shape in process)."""
        usage = response.get("usage") or {}
        return cls(
            text=text,
            finish_reason=choice.get("finish_reason") or "stop",
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
        )

    def json(self) -> Any:
        """The output parsed as JSON (for schema-constrained calls)."""
        try:
            return json.loads(self.text)
        except json.JSONDecodeError as exc:
            raise DataError(f"the model's output is not valid JSON ({exc}): {self.text[:200]!r}") from None


def check_messages(messages: Any) -> list[Message]:
    if not isinstance(messages, list | tuple) or not messages:
        raise DataError("messages must be a non-empty list of {'role': ..., 'content': ...} dicts")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise DataError(f"message {i} must be a dict with role in {ROLES} and a string content, got {m!r}")
        out.append({"role": m["role"], "content": m["content"]})
    return out


class LLM:
    """Base class of the backends (see the module docstring)."""

    backend: str = ""

    def __init__(self, *, cache: ResponseCache | None = None) -> None:
        self.cache = cache

    # identity -----------------------------------------------------------------------------------
    def identity(self) -> dict[str, Any]:
        """What identifies the model: backend, model name/path and, for a local file, its SHA-256."""
        raise NotImplementedError

    def info(self) -> dict[str, Any]:
        return {**self.identity(), "cache": str(self.cache.path) if self.cache else None}

    # primitives (backends) ------------------------------------------------------------------------
    def _complete(self, prompt: str, params: GenParams) -> Generation:
        raise NotImplementedError

    def _chat(self, messages: list[Message], params: GenParams) -> Generation:
        raise NotImplementedError

    def _chat_many(self, conversations: list[list[Message]], params: GenParams) -> list[Generation]:
        """Several conversations (a backend that batches them overrides this; the same outputs as ``_chat``)."""
        return [self._chat(m, params) for m in conversations]

    def _score(self, prompt: str, continuations: Sequence[str]) -> list[float]:
        raise NotImplementedError

    def _next_token_logprobs(self, prompt: str, options: Sequence[str]) -> list[float]:
        raise NotImplementedError

    # cached public API ----------------------------------------------------------------------------
    def _cache_key(self, kind: str, payload: Any, params: dict[str, Any]) -> str:
        return cache_key({"identity": self.identity(), "kind": kind, "payload": payload, "params": params})

    def _cached(self, kind: str, payload: Any, params: dict[str, Any], compute):
        if self.cache is None:
            return compute(), False
        key = self._cache_key(kind, payload, params)
        hit = self.cache.get(key)
        if hit is not None:
            return hit, True
        value = compute()
        self.cache.put(key, value, {"kind": kind, "backend": self.backend})
        return value, False

    def complete(self, prompt: str, params: GenParams | None = None, **overrides: Any) -> Generation:
        """Continue ``prompt`` (raw completion, no chat template)."""
        if not isinstance(prompt, str):
            raise DataError(f"prompt must be a string, got {type(prompt).__name__}")
        p = make_params(params, **overrides)
        value, hit = self._cached(
            "complete",
            prompt,
            dataclasses.asdict(p),
            lambda: dataclasses.asdict(self._timed(self._complete, prompt, p)),
        )
        return Generation(**{**value, "cached": hit})

    def chat(self, messages: Sequence[Message] | str, params: GenParams | None = None, **overrides: Any) -> Generation:
        """Answer a conversation (the model's chat template applies). A string is one user message."""
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        msgs = check_messages(messages)
        p = make_params(params, **overrides)
        value, hit = self._cached(
            "chat", msgs, dataclasses.asdict(p), lambda: dataclasses.asdict(self._timed(self._chat, msgs, p))
        )
        return Generation(**{**value, "cached": hit})

    def chat_many(
        self, conversations: Sequence[Sequence[Message] | str], params: GenParams | None = None, **overrides: Any
    ) -> list[Generation]:
        """``chat`` on several conversations, in one batch where the backend can (llama.cpp's greedy generation
        under a schema or grammar: the same outputs, more tokens per second). Cached answers are reused and the
        others stored one by one, under the same keys as ``chat``; each generation's seconds are its share of the
        batch's."""
        msgs = [check_messages([{"role": "user", "content": m}] if isinstance(m, str) else m) for m in conversations]
        p = make_params(params, **overrides)
        keys = [self._cache_key("chat", m, dataclasses.asdict(p)) if self.cache is not None else None for m in msgs]
        out: list[Generation | None] = [None] * len(msgs)
        for n, key in enumerate(keys):
            hit = self.cache.get(key) if key is not None else None
            if hit is not None:
                out[n] = Generation(**{**hit, "cached": True})
        todo = [n for n in range(len(msgs)) if out[n] is None]
        if todo:
            t0 = time.perf_counter()
            made = self._chat_many([msgs[n] for n in todo], p)
            share = (time.perf_counter() - t0) / len(todo)
            for n, g in zip(todo, made, strict=True):
                g.seconds = share
                if keys[n] is not None:
                    self.cache.put(keys[n], dataclasses.asdict(g), {"kind": "chat", "backend": self.backend})
                out[n] = g
        return [g for g in out if g is not None]

    def score(self, prompt: str, continuations: Sequence[str]) -> list[float]:
        """Summed log-probability of each continuation given the prompt (natural log)."""
        conts = self._check_options(prompt, continuations, "continuations")
        value, _ = self._cached(
            "score", {"prompt": prompt, "continuations": conts}, {}, lambda: self._score(prompt, conts)
        )
        return [float(v) for v in value]

    def next_token_logprobs(self, prompt: str, options: Sequence[str]) -> list[float]:
        """log p(first token of each option | prompt): verbalizer scoring over fixed labels (e.g. 'A'..'T')."""
        opts = self._check_options(prompt, options, "options")
        value, _ = self._cached(
            "next_token", {"prompt": prompt, "options": opts}, {}, lambda: self._next_token_logprobs(prompt, opts)
        )
        return [float(v) for v in value]

    @staticmethod
    def _distinct_first(options: Sequence[str], firsts: Sequence[Sequence[int]]) -> None:
        """Verbalizer options must begin with different tokens: options that share their first token (" 1" and
        " 2" are " " + digit for many tokenizers) get equal log-probabilities, so they cannot be told apart."""
        seen: dict[int, str] = {}
        for o, f in zip(options, firsts, strict=True):
            if f and f[0] in seen:
                raise DataError(
                    f"options {seen[f[0]]!r} and {o!r} begin with the same token, so their next-token "
                    f"log-probabilities are equal; end the prompt with the shared text (e.g. a space) and drop it "
                    f"from the options"
                )
            if f:
                seen[f[0]] = o

    @staticmethod
    def _check_options(prompt: str, options: Sequence[str], what: str) -> list[str]:
        if not isinstance(prompt, str):
            raise DataError(f"prompt must be a string, got {type(prompt).__name__}")
        if isinstance(options, str) or not options or not all(isinstance(o, str) and o for o in options):
            raise DataError(f"{what} must be a non-empty list of non-empty strings, got {options!r}")
        return list(options)

    @staticmethod
    def _timed(fn, arg, params: GenParams) -> Generation:
        t0 = time.perf_counter()
        g = fn(arg, params)
        g.seconds = time.perf_counter() - t0
        return g

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()
