"""BIGRec: a bi-step grounding paradigm for LLM recommenders (Bao et al., 2023, "A Bi-Step Grounding Paradigm
for Large Language Models in Recommendation Systems").

Step 1 grounds the LLM in the recommendation space: LoRA supervised fine-tuning to write the next item's title
from the titles of the user's last ``history_len`` items. Step 2 grounds its output in the catalogue, two ways:

- ``grounding="trie"``: beam search constrained by a prefix trie of the catalogue's title token sequences
  (transformers' ``prefix_allowed_tokens_fn``), so every finished beam is an existing item; the beams' scores
  rank them (``beam`` >= K). Out-of-catalogue rate: 0 by construction.
- ``grounding="l2"`` (the paper's): greedy free generation, then the L2 distance between the generated text's
  embedding and every title's embedding (the LLM's last-layer state at the last token) ranks the whole
  catalogue. The share of generations that are not exactly a catalogue title is recorded.

Where recgen differs from the paper / SAI990323/BIGRec: the base model is SmolLM2-135M-Instruct (LLaMA-7B in the
paper), trained on one (history -> last training item) pair per user (``max_train_samples`` caps it) for a fixed
number of epochs on the CPU; the paper also adds popularity and collaborative signals in some variants, which
are not here. Seen items are excluded after decoding (the harness's rule), so the trie beam is wider than K.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from recgen.config import check
from recgen.data.dataset import Dataset
from recgen.errors import DataError
from recgen.io import path_sha256
from recgen.llm.files import model_label
from recgen.models.base import Recommender
from recgen.ops.trie import PrefixTrie

PROMPT_VERSION = "bigrec-v1"


@dataclass(frozen=True, kw_only=True)
class BIGRecConfig:
    llm: str = "smollm2"  # hf model: smollm2 (embedded GGUF), a folder or a .gguf file
    history_len: int = 10
    grounding: str = "trie"  # "trie" (constrained beam search) or "l2" (free generation + embedding distance)
    beam: int = 20  # trie: beams (and items returned before seen ones are removed)
    max_new_tokens: int = 32
    max_train_samples: int = 0  # 0 = one pair per training user
    epochs: int = 1
    lr: float = 3e-4
    batch_size: int = 8
    lora_r: int = 8
    lora_alpha: int = 16
    max_length: int = 256
    dpo_samples: int = 0  # > 0: after SFT, DPO on this many (true next title vs the model's own wrong top title)
    dpo_beta: float = 0.1
    dpo_epochs: int = 1
    dpo_lr: float = 1e-4
    seed: int = 0

    def validate(self) -> None:
        check(self.dpo_samples >= 0 and self.dpo_beta > 0, "dpo_samples must be >= 0 and dpo_beta > 0")
        check(self.grounding in ("trie", "l2"), f"grounding must be trie or l2, got {self.grounding!r}")
        check(self.beam >= 1, f"beam must be >= 1, got {self.beam}")
        check(self.history_len >= 1 and self.epochs >= 0, "history_len must be >= 1 and epochs >= 0")
        check(self.max_train_samples >= 0, "max_train_samples must be >= 0 (0 = all)")


def build_prompt(history: Sequence[str]) -> str:
    lines = "\n".join(f"- {t}" for t in history)
    return f"A user watched or bought these items, oldest first:\n{lines}\nThe next item the user will choose is:"


class BIGRec(Recommender):
    name = "bigrec"
    Config = BIGRecConfig
    selects_on_valid = False
    batch_size_recommend = 16
    decode_fields = ("grounding", "beam", "max_new_tokens")

    def _fit(self, dataset: Dataset, valid: Any) -> None:
        from recgen.llm.hf import load_hf
        from recgen.models.llm.tuning import LoraSFTConfig, lora_sft, lora_state

        cfg = self.config
        self.titles_ = self.dense_titles()
        self.model_, self.tokenizer_, self.model_path_ = load_hf(cfg.llm)
        self.adapters_: list[tuple[Any, dict[str, np.ndarray]]] = []  # (LoRA config, weights) per tuning stage
        rng = np.random.default_rng(cfg.seed)
        prompts, answers = [], []
        for u in rng.permutation(np.arange(1, self.n_users_ + 1)):
            h = self.train_history(int(u))
            if len(h) < 2:
                continue
            prompts.append(self._prompt(h[:-1]))
            answers.append(" " + self.titles_[int(h[-1])] + self.tokenizer_.eos_token)
            if cfg.max_train_samples and len(prompts) >= cfg.max_train_samples:
                break
        self.train_info_: dict[str, Any] = {"pairs": len(prompts)}
        if cfg.epochs:
            sft = LoraSFTConfig.from_config(cfg)
            self.tokenizer_.padding_side = "right"
            self.model_, info = lora_sft(self.model_, self.tokenizer_, prompts, answers, sft)
            self.train_info_.update(info)
            self.adapters_.append((sft, lora_state(self.model_)))
        self.train_pairs_ = (prompts, answers)
        self._setup_decoding()
        if cfg.dpo_samples:
            self.run_dpo(cfg.dpo_samples)

    def _top_title(self, prompt: str) -> str | None:
        """The model's own best catalogue title for a prompt (trie-constrained beam search)."""
        tok = self.tokenizer_
        enc = tok([prompt], return_tensors="pt")
        n = enc["input_ids"].shape[1]
        out = self.model_.generate(
            **enc,
            max_new_tokens=self.config.max_new_tokens,
            num_beams=min(self.config.beam, 5),
            do_sample=False,
            prefix_allowed_tokens_fn=lambda _b, ids: self.trie_.allowed(ids[n:].tolist()) or [tok.eos_token_id],
            pad_token_id=tok.pad_token_id,
        )
        gen = out[0, n:].tolist()
        if tok.eos_token_id in gen:
            gen = gen[: gen.index(tok.eos_token_id) + 1]
        item = self.trie_.lookup(gen)
        return None if item is None else self.titles_[item]

    def run_dpo(self, n_samples: int) -> dict[str, Any]:
        """DPO on the first ``n_samples`` training pairs: the true next title (chosen) vs the current model's own
        top title when it is wrong (rejected); pairs where the model is already right are skipped."""
        from recgen.models.llm.tuning import DPOConfig, dpo, lora_state

        check(n_samples >= 1, f"DPO needs at least one sample, got {n_samples}")
        if not hasattr(self, "train_pairs_"):
            raise DataError("run_dpo needs a fitted BIGRec model (call fit first)")
        prompts, answers = (x[:n_samples] for x in self.train_pairs_)
        cfg, tok = self.config, self.tokenizer_
        p, c, r = [], [], []
        with torch.no_grad():
            for prompt, answer in zip(prompts, answers, strict=True):
                top = self._top_title(prompt)
                if top is not None and " " + top + tok.eos_token != answer:
                    p.append(prompt)
                    c.append(answer)
                    r.append(" " + top + tok.eos_token)
        info: dict[str, Any] = {"pairs": len(p), "candidates": len(prompts)}
        if p:
            tok.padding_side = "right"
            dcfg = DPOConfig.from_config(cfg, lr=cfg.dpo_lr, epochs=cfg.dpo_epochs, beta=cfg.dpo_beta)
            self.model_, log = dpo(self.model_, tok, p, c, r, dcfg)
            info.update(log)
            self.adapters_.append((dcfg, lora_state(self.model_)))
            tok.padding_side = "left"
            self.title_emb_ = None  # the weights changed: L2 grounding must re-embed the titles with them
        self.train_info_["dpo"] = info
        return info

    @torch.no_grad()
    def target_logprob(self, histories: Sequence[np.ndarray], targets: Sequence[int], batch: int = 16) -> float:
        """Mean per-token log-probability of the true next titles given the prompts: a signal of what SFT or DPO
        taught the model that does not need the title to reach the top-K."""
        from recgen.models.llm.tuning import answer_logprobs

        tok = self.tokenizer_
        tok.padding_side = "right"
        total, n_tok = 0.0, 0
        try:
            for s in range(0, len(targets), batch):
                p = [self._prompt(np.asarray(h)) for h in histories[s : s + batch]]
                a = [" " + self.titles_[int(t)] + tok.eos_token for t in targets[s : s + batch]]
                total += float(answer_logprobs(self.model_, tok, p, a, self.config.max_length).sum())
                n_tok += sum(len(tok(x, add_special_tokens=False)["input_ids"]) for x in a)
        finally:
            tok.padding_side = "left"
        return total / max(n_tok, 1)

    def _prompt(self, hist: np.ndarray) -> str:
        return build_prompt([self.titles_[int(i)] for i in hist[-self.config.history_len :]])

    def _setup_decoding(self) -> None:
        tok = self.tokenizer_
        tok.padding_side = "left"
        self.reset_stats()
        seqs = [
            tuple(tok(" " + self.titles_[i], add_special_tokens=False)["input_ids"]) + (tok.eos_token_id,)
            for i in range(1, self.n_items_ + 1)
        ]
        # items with the same title share one sequence; the trie then returns the first of them
        self.trie_ = PrefixTrie(seqs)
        self.title_index_ = {self.titles_[i].strip().lower(): i for i in range(self.n_items_, 0, -1)}
        self.title_emb_ = None

    def reset_stats(self) -> None:
        self.stats_ = {"users": 0, "generations": 0, "out_of_catalogue": 0, "decode_seconds": 0.0}

    def run_info(self) -> dict[str, Any]:
        st = dict(self.stats_)
        if st["generations"]:
            st["out_of_catalogue_rate"] = st["out_of_catalogue"] / st["generations"]
        p = self.model_path_
        return {
            "llm": {"backend": "hf", "model_file": model_label(p), "model_sha256": path_sha256(p)},
            "prompt_template": PROMPT_VERSION,
            "temperature": 0.0,
            "seed": self.config.seed,
            **self.decoded_with(),
            "train": getattr(self, "train_info_", {}),
            "stats": st,
        }

    # ------------------------------------------------------------------------------------ decoding
    @torch.no_grad()
    def _embed(self, texts: list[str], batch: int = 64) -> torch.Tensor:
        tok = self.tokenizer_
        out = []
        for s in range(0, len(texts), batch):
            enc = tok(texts[s : s + batch], return_tensors="pt", padding=True, add_special_tokens=False)
            h = self.model_(**enc, output_hidden_states=True).hidden_states[-1]
            out.append(h[:, -1].double())  # left padding: the last position is each text's last token
        return torch.cat(out)

    @torch.no_grad()
    def _score(self, user_ids: np.ndarray, histories: Sequence[np.ndarray], decode: BIGRecConfig) -> torch.Tensor:
        cfg, tok = decode, self.tokenizer_
        scores = torch.full((len(histories), self.n_items_ + 1), -torch.inf, dtype=torch.float64)
        t0 = time.perf_counter()
        for b, h in enumerate(histories):
            if len(h) == 0:
                continue
            enc = tok([self._prompt(np.asarray(h))], return_tensors="pt")
            n = enc["input_ids"].shape[1]
            if cfg.grounding == "trie":

                def allowed(_batch_id, ids, n=n):
                    nxt = self.trie_.allowed(ids[n:].tolist())
                    return nxt or [tok.eos_token_id]

                out = self.model_.generate(
                    **enc,
                    max_new_tokens=cfg.max_new_tokens,
                    num_beams=cfg.beam,
                    num_return_sequences=cfg.beam,
                    do_sample=False,
                    prefix_allowed_tokens_fn=allowed,
                    output_scores=True,
                    return_dict_in_generate=True,
                    pad_token_id=tok.pad_token_id,
                    early_stopping=True,
                )
                for rank, seq in enumerate(out.sequences):
                    gen = seq[n:].tolist()
                    if tok.eos_token_id in gen:
                        gen = gen[: gen.index(tok.eos_token_id) + 1]
                    item = self.trie_.lookup(gen)
                    if item is not None and not torch.isfinite(scores[b, item]):
                        scores[b, item] = float(out.sequences_scores[rank])
                self.stats_["generations"] += 1  # constrained: never out of catalogue
            else:
                out = self.model_.generate(
                    **enc, max_new_tokens=cfg.max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id
                )
                text = tok.decode(out[0, n:], skip_special_tokens=True).strip()
                self.stats_["generations"] += 1
                if text.lower() not in self.title_index_:
                    self.stats_["out_of_catalogue"] += 1
                if self.title_emb_ is None:
                    self.title_emb_ = self._embed([" " + t for t in self.titles_[1:]])
                e = self._embed([" " + (text or " ")])
                scores[b, 1:] = -torch.cdist(e, self.title_emb_)[0]
            self.stats_["users"] += 1
        self.stats_["decode_seconds"] += time.perf_counter() - t0
        return scores

    # ------------------------------------------------------------------------------------ save/load
    # A saved BIGRec holds what fine-tuning learnt, not the LLM: the LoRA adapters (SFT, then DPO's on the merged
    # SFT model) in weights.safetensors, their configs in config.json, and the base model by its spec and
    # SHA-256, which loading checks before rebuilding the same network.
    def _state(self) -> dict[str, np.ndarray]:
        return {f"adapter{i}/{k}": v for i, (_, weights) in enumerate(self.adapters_) for k, v in weights.items()}

    def _extra_meta(self) -> dict[str, Any]:
        return {
            "llm_sha256": path_sha256(self.model_path_),
            "adapters": [{"kind": type(c).__name__, **dataclasses.asdict(c)} for c, _ in self.adapters_],
            "train": self.train_info_,
        }

    def _load_extra_meta(self, extra: dict[str, Any]) -> None:
        self._saved_meta = extra

    def _load_state(self, tensors: dict[str, np.ndarray]) -> None:
        from recgen.llm.hf import load_hf
        from recgen.models.llm.tuning import DPOConfig, LoraSFTConfig, apply_adapters

        meta = self._saved_meta
        model, self.tokenizer_, self.model_path_ = load_hf(self.config.llm)
        if path_sha256(self.model_path_) != meta["llm_sha256"]:
            raise DataError(
                f"this BIGRec model was tuned on an LLM with SHA-256 {meta['llm_sha256'][:12]}..., but "
                f"{self.config.llm!r} is {model_label(self.model_path_)} with another SHA-256; install the same "
                "base model (its adapters do not fit another one)"
            )
        kinds = {"LoraSFTConfig": LoraSFTConfig, "DPOConfig": DPOConfig}
        self.adapters_ = []
        for i, c in enumerate(meta["adapters"]):
            fields = {k: tuple(v) if isinstance(v, list) else v for k, v in c.items() if k != "kind"}
            weights = {k.split("/", 1)[1]: v for k, v in tensors.items() if k.startswith(f"adapter{i}/")}
            self.adapters_.append((kinds[c["kind"]](**fields), weights))
        self.model_ = apply_adapters(model, self.adapters_) if self.adapters_ else model
        self.train_info_ = meta.get("train", {})
        self.titles_ = self.dense_titles()
        self._setup_decoding()
