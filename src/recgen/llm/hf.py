"""``hf:PATH`` backend: transformers + torch, for fine-tuning (LoRA through peft) and exact scoring.

PATH is a local model folder (``config.json`` + weights) or a GGUF file, which transformers dequantises to
float32 (needs the ``gguf`` package); ``hf:smollm2`` loads the embedded SmolLM2 GGUF this way. Nothing is
downloaded: loading is ``local_files_only``. Schema- or grammar-constrained generation is not offered here (the
llamacpp and openai backends have it); asking for it is a clear error.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from recgen.errors import BackendUnavailableError, ConfigError, DataError
from recgen.io import path_sha256
from recgen.llm.base import LLM, Generation, GenParams, Message
from recgen.llm.cache import ResponseCache
from recgen.llm.files import EMBEDDED, embedded_model_path, model_label


def load_hf(path: str | Path):
    """(model, tokenizer) from a local folder or GGUF file, float32 on the CPU, eval mode."""
    try:
        import transformers
    except ImportError:
        raise BackendUnavailableError("the hf backend needs transformers: pip install transformers gguf") from None
    p = embedded_model_path(str(path)) if str(path) in EMBEDDED else Path(path).expanduser()
    if not p.exists():
        raise DataError(f"{p} does not exist; give a local model folder or a .gguf file")
    kwargs: dict[str, Any] = {"local_files_only": True}
    folder = p
    if p.is_file():
        if p.suffix != ".gguf":
            raise DataError(f"{p} is a file but not a .gguf model; give a model folder or a GGUF file")
        kwargs["gguf_file"] = p.name
        folder = p.parent
    try:
        tok = transformers.AutoTokenizer.from_pretrained(str(folder), **kwargs)
        model = transformers.AutoModelForCausalLM.from_pretrained(str(folder), dtype="float32", **kwargs)
    except ImportError as exc:
        raise BackendUnavailableError(f"loading {p} needs a missing package ({exc}); pip install gguf") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"transformers could not load {p} ({exc})") from None
    model.eval()
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return model, tok, p


class HFLLM(LLM):
    backend = "hf"

    def __init__(self, path: str | Path, *, cache: ResponseCache | None = None, model=None, tokenizer=None) -> None:
        super().__init__(cache=cache)
        if model is not None and tokenizer is not None:  # an in-memory (e.g. fine-tuned) model
            self.model, self.tokenizer, self.path = model, tokenizer, Path(str(path))
        else:
            self.model, self.tokenizer, self.path = load_hf(path)
        self.adapter_id: str | None = None  # set by fine-tuning code: part of the cache identity

    def identity(self) -> dict[str, Any]:
        ident: dict[str, Any] = {"backend": self.backend, "model": self.path.name, "model_file": model_label(self.path)}
        if self.path.exists():
            ident["model_sha256"] = path_sha256(self.path)
        if self.adapter_id:
            ident["adapter"] = self.adapter_id
        return ident

    # ------------------------------------------------------------------------------- generation
    def _generate(self, prompt_ids, params: GenParams) -> Generation:
        import torch

        if params.json_schema is not None or params.grammar is not None:
            raise ConfigError("the hf backend has no constrained generation; use llamacpp:... or openai:... for it")
        ids = torch.tensor([prompt_ids])
        gen = torch.Generator().manual_seed(params.seed)
        out_ids: list[int] = []
        past = None
        x = ids
        eos = self.tokenizer.eos_token_id
        finish = "length"
        text = ""
        with torch.no_grad():
            for _ in range(params.max_tokens):
                out = self.model(input_ids=x, past_key_values=past, use_cache=True)
                past = out.past_key_values
                logits = out.logits[0, -1].double()
                if params.temperature <= 0:
                    nxt = int(torch.argmax(logits))
                else:
                    probs = torch.softmax(logits / params.temperature, -1)
                    if params.top_p < 1.0:
                        sp, si = torch.sort(probs, descending=True)
                        keep = torch.cumsum(sp, 0) - sp < params.top_p
                        probs = torch.zeros_like(probs).scatter_(0, si[keep], sp[keep])
                    nxt = int(torch.multinomial(probs / probs.sum(), 1, generator=gen))
                if nxt == eos:
                    finish = "stop"
                    break
                out_ids.append(nxt)
                text = self.tokenizer.decode(out_ids, skip_special_tokens=True)
                hit = [s for s in params.stop if s in text]
                if hit:
                    text = text[: min(text.index(s) for s in hit)]
                    finish = "stop"
                    break
                x = torch.tensor([[nxt]])
        return Generation(
            text=text, finish_reason=finish, prompt_tokens=len(prompt_ids), completion_tokens=len(out_ids)
        )

    def _complete(self, prompt: str, params: GenParams) -> Generation:
        return self._generate(self.tokenizer(prompt)["input_ids"], params)

    def chat_prompt(self, messages: list[Message], add_generation_prompt: bool = True) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)

    def _chat(self, messages: list[Message], params: GenParams) -> Generation:
        return self._generate(self.tokenizer(self.chat_prompt(messages))["input_ids"], params)

    # ---------------------------------------------------------------------------------- scoring
    def _logprobs(self, ids: list[int]):
        import torch

        with torch.no_grad():
            logits = self.model(input_ids=torch.tensor([ids])).logits[0].double()
        return torch.log_softmax(logits, -1)

    def _next_token_logprobs(self, prompt: str, options: Sequence[str]) -> list[float]:
        lp = self._logprobs(self.tokenizer(prompt)["input_ids"])[-1]
        firsts = [self.tokenizer(o, add_special_tokens=False)["input_ids"][:1] for o in options]
        self._distinct_first(options, firsts)
        return [float(lp[f[0]]) if f else float("-inf") for f in firsts]

    def _score(self, prompt: str, continuations: Sequence[str]) -> list[float]:
        p = self.tokenizer(prompt)["input_ids"]
        out = []
        for cont in continuations:
            c = self.tokenizer(cont, add_special_tokens=False)["input_ids"]
            lp = self._logprobs(p + c)
            out.append(float(sum(lp[len(p) - 1 + i, t] for i, t in enumerate(c))))
        return out
