"""``openai:URL`` backend: any OpenAI-compatible server (llama.cpp's server, llama-cpp-python's
``python -m llama_cpp.server``, Ollama, vLLM), over HTTP with httpx.

Several servers of one model (``openai:URL1,URL2#MODEL``): requests go round robin, at most ``concurrency`` in
flight per server; a connection error, time-out, HTTP 429 or 5xx moves a request to the next server, and after
all failed, rounds of retries with exponential back-off. A time-out per request. JSON-schema output uses the
``response_format`` of the OpenAI API (``json_schema``), falling back to llama-cpp-python's ``json_object`` +
``schema`` form when a server rejects the first; a GBNF ``grammar`` is passed as the extra field llama.cpp
servers read. Scoring uses ``/v1/completions`` with ``logprobs`` (``echo`` for continuations), which the server
must support (llama-cpp-python's does; many hosted APIs do not, and say so in their error).
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from recgen.errors import BackendUnavailableError, ConfigError, DataError
from recgen.llm.base import LLM, EndOfTextError, Generation, GenParams, Message
from recgen.llm.cache import ResponseCache

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class OpenAIError(DataError):
    """The server answered with an error that retrying will not fix."""


class OpenAILLM(LLM):
    backend = "openai"

    def __init__(
        self,
        url: str | Sequence[str],
        *,
        model: str | None = None,
        api_key: str | None = None,
        timeout: float = 120.0,
        max_retries: int = 3,
        concurrency: int = 4,
        cache: ResponseCache | None = None,
    ) -> None:
        super().__init__(cache=cache)
        try:
            import httpx
        except ImportError:  # pragma: no cover - a declared dependency
            raise BackendUnavailableError("the openai backend needs httpx: pip install httpx") from None
        urls = [u.strip() for u in (url.split(",") if isinstance(url, str) else url) if u.strip()]
        if not urls:
            raise ConfigError("the openai backend needs at least one server URL")
        for u in urls:
            if not u.startswith(("http://", "https://")):
                raise ConfigError(f"openai backend URL must start with http:// or https://, got {u!r}")
        if concurrency < 1 or max_retries < 0 or timeout <= 0:
            raise ConfigError("concurrency must be >= 1, max_retries >= 0 and timeout > 0")
        self.bases = [u.rstrip("/") if u.rstrip("/").endswith("/v1") else u.rstrip("/") + "/v1" for u in urls]
        self.base = self.bases[0]
        self.timeout, self.max_retries, self.concurrency = timeout, max_retries, concurrency
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(timeout=timeout, headers=headers, limits=httpx.Limits(max_connections=64))
        self._httpx = httpx
        # per server: at most `concurrency` requests in flight; a server that failed rests for a while
        self._slots = [threading.BoundedSemaphore(concurrency) for _ in self.bases]
        self._down_until = [0.0] * len(self.bases)
        self._next = itertools.count()
        self._lock = threading.Lock()
        self.served = [0] * len(self.bases)  # requests answered by each server
        self.failovers = 0  # requests moved to another server after a failure
        self.model = model or self._first_model()

    # ------------------------------------------------------------------------------------- http
    def _order(self) -> list[int]:
        """Servers to try for one request: round robin, servers resting after a failure last."""
        start = next(self._next) % len(self.bases)
        order = [(start + i) % len(self.bases) for i in range(len(self.bases))]
        now = time.monotonic()
        return sorted(order, key=lambda i: self._down_until[i] > now)

    def _request(self, method: str, path: str, json: dict[str, Any] | None = None) -> dict[str, Any]:
        """One request, spread over the servers: a connection error, time-out, 429 or 5xx moves it to the next
        server (the failed one rests 30 s); after every server failed, back off and try them all again, up to
        ``max_retries`` rounds."""
        delay, last = 0.5, None
        for attempt in range(self.max_retries + 1):
            for n, i in enumerate(self._order()):
                base = self.bases[i]
                with self._slots[i]:
                    try:
                        r = self._http.request(method, base + path, json=json)
                    except self._httpx.TransportError as exc:  # connect errors, time-outs, resets
                        last = f"{base}: {type(exc).__name__}: {exc}"
                        r = None
                if r is not None and r.status_code < 400:
                    with self._lock:
                        self.served[i] += 1
                        self.failovers += int(n > 0 or attempt > 0)
                    return r.json()
                if r is not None:
                    # some servers (llama-cpp-python's) answer a request validation error with HTTP 500: not retryable
                    if r.status_code not in RETRY_STATUS or "validation error" in r.text:
                        raise OpenAIError(f"{method} {base + path} -> HTTP {r.status_code}: {r.text[:500]}")
                    last = f"{base}: HTTP {r.status_code}: {r.text[:200]}"
                self._down_until[i] = time.monotonic() + 30.0
            if attempt < self.max_retries:
                time.sleep(delay)
                delay *= 2
        where = ", ".join(self.bases)
        raise BackendUnavailableError(
            f"{method} {path} failed after {self.max_retries + 1} rounds over {len(self.bases)} server(s) ({last}); "
            f"is a server running at {where}? (e.g. python -m llama_cpp.server --model FILE.gguf --port 8000)"
        )

    def _first_model(self) -> str:
        data = self._request("GET", "/models").get("data", [])
        if not data:
            raise ConfigError(f"the server at {self.base} lists no models; pass one as openai:URL#MODEL")
        return data[0]["id"]

    def identity(self) -> dict[str, Any]:
        """Backend and model name (and the server for one URL): servers of one model share cached answers."""
        ident = {"backend": self.backend, "model": self.model}
        if len(self.bases) == 1:
            ident["url"] = self.base
        return ident

    def info(self) -> dict[str, Any]:
        return {**super().info(), "urls": self.bases, "served": list(self.served), "failovers": self.failovers}

    # ------------------------------------------------------------------------------- primitives
    def _body(self, params: GenParams) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "seed": params.seed,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        if params.grammar is not None:
            body["grammar"] = params.grammar
        return body

    def _with_schema(self, path: str, body: dict[str, Any], schema: dict[str, Any] | None) -> dict[str, Any]:
        if schema is None:
            return self._request("POST", path, body)
        try:
            fmt = {"type": "json_schema", "json_schema": {"name": "output", "schema": schema, "strict": True}}
            return self._request("POST", path, {**body, "response_format": fmt})
        except OpenAIError:
            return self._request("POST", path, {**body, "response_format": {"type": "json_object", "schema": schema}})

    def _complete(self, prompt: str, params: GenParams) -> Generation:
        data = self._with_schema("/completions", {**self._body(params), "prompt": prompt}, params.json_schema)
        choice = data["choices"][0]
        return Generation.from_completion(choice["text"], choice, data)

    def _chat(self, messages: list[Message], params: GenParams) -> Generation:
        data = self._with_schema("/chat/completions", {**self._body(params), "messages": messages}, params.json_schema)
        choice = data["choices"][0]
        return Generation.from_completion(choice["message"].get("content") or "", choice, data)

    def _next_token_logprobs(self, prompt: str, options: Sequence[str]) -> list[float]:
        # Tokens come back as text and are compared without surrounding spaces, so a prompt's trailing space belongs
        # to the next token: "Rating: " + "4" is scored as "Rating:" + " 4" (a server's tokenizer, unlike the
        # in-process one, cannot be told to end the prompt on a bare space, and its model then predicts end-of-text).
        prompt = prompt.rstrip(" ")
        body = {"model": self.model, "prompt": prompt, "max_tokens": 1, "temperature": 0.0, "logprobs": 20}
        data = self._request("POST", "/completions", body)
        choice = data["choices"][0]
        lp = choice.get("logprobs") or {}
        tops = (lp.get("top_logprobs") or [None])[0]
        if not tops:
            if not choice.get("text") and choice.get("finish_reason") == "stop":
                raise EndOfTextError(
                    f"the model's most likely next token after the prompt is end-of-text, and the server at "
                    f"{self.base} returns no log-probabilities then; end the prompt so that a label follows "
                    f"(e.g. '... Answer: The letter is')"
                )
            raise OpenAIError(f"the server at {self.base} returned no top_logprobs; it cannot score options")
        best: dict[str, float] = {}
        for tok, v in tops.items():
            key = tok.strip()
            best[key] = max(best.get(key, -math.inf), float(v))
        return [best.get(o.strip(), -math.inf) for o in options]

    def _echo_is_aligned(self) -> bool:
        """Probe the server once: with OpenAI's convention, the echoed log-probability of a token equals the
        log-probability the server gives that token as the next token of its prefix. llama-cpp-python's server
        (0.3.x) reports each echoed token's value from the following position instead."""
        if getattr(self, "_aligned", None) is None:
            probe = "The sky is"
            nxt = self._request(
                "POST",
                "/completions",
                {"model": self.model, "prompt": probe, "max_tokens": 1, "temperature": 0.0, "logprobs": 5},
            )
            tops = ((nxt["choices"][0].get("logprobs") or {}).get("top_logprobs") or [None])[0]
            if not tops:
                raise OpenAIError(f"the server at {self.base} returns no logprobs; it cannot score continuations")
            token, value = max(tops.items(), key=lambda kv: kv[1])
            echo = self._request(
                "POST",
                "/completions",
                {
                    "model": self.model,
                    "prompt": probe + token,
                    "max_tokens": 1,
                    "temperature": 0.0,
                    "logprobs": 1,
                    "echo": True,
                },
            )
            lp = echo["choices"][0].get("logprobs") or {}
            offsets, values = lp.get("text_offset") or [], lp.get("token_logprobs") or []
            got = [v for o, v in zip(offsets, values, strict=False) if o == len(probe)]
            self._aligned = bool(got) and got[0] is not None and abs(got[0] - value) < 1e-3
        return self._aligned

    def _score(self, prompt: str, continuations: Sequence[str]) -> list[float]:
        if not self._echo_is_aligned():
            raise OpenAIError(
                f"the server at {self.base} reports echoed log-probabilities that do not match its next-token "
                f"log-probabilities (llama-cpp-python's server does this), so continuations cannot be scored "
                f"exactly over HTTP; use next_token_logprobs, or the llamacpp:/hf: backend for score()"
            )
        out = []
        for cont in continuations:
            body = {
                "model": self.model,
                "prompt": prompt + cont,
                "max_tokens": 1,
                "temperature": 0.0,
                "logprobs": 1,
                "echo": True,
            }
            data = self._request("POST", "/completions", body)
            lp = data["choices"][0].get("logprobs") or {}
            offsets, values = lp.get("text_offset"), lp.get("token_logprobs")
            if not offsets or values is None:
                raise OpenAIError(f"the server at {self.base} does not return echoed logprobs; cannot score")
            # echoed prompt tokens, then one generated token: keep tokens that start inside the continuation
            n_echo = len(offsets) - 1
            total = sum(v for o, v in zip(offsets[:n_echo], values[:n_echo], strict=True) if o >= len(prompt) and v)
            out.append(float(total))
        return out

    # ---------------------------------------------------------------------------------- batches
    def many(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        """Apply ``fn`` (e.g. ``lambda p: llm.chat(p)``) to items with at most ``concurrency`` in flight per server."""
        with ThreadPoolExecutor(max_workers=self.concurrency * len(self.bases)) as pool:
            return list(pool.map(fn, items))

    def close(self) -> None:
        self._http.close()
        super().close()
