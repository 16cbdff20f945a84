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

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from recgen.config import check
from recgen.data.dataset import Dataset
from recgen.errors import DataError
from recgen.models.base import Recommender

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


class TitleTrie:
    """Prefix trie over token sequences; ``allowed(prefix)`` lists the next tokens that stay inside it."""

    def __init__(self, sequences: Sequence[Sequence[int]]) -> None:
        self.root: dict[int, Any] = {}
        for seq in sequences:
            node = self.root
            for t in seq:
                node = node.setdefault(int(t), {})

    def allowed(self, prefix: Sequence[int]) -> list[int]:
        node = self.root
        for t in prefix:
            node = node.get(int(t))
            if node is None:
                return []
        return list(node)


class BIGRec(Recommender):
    name = "bigrec"
    Config = BIGRecConfig
    selects_on_valid = False
    batch_size_recommend = 16

    def _fit(self, dataset: Dataset, valid: Any) -> None:
        from recgen.llm.hf import load_hf
        from recgen.llm.sft import LoraSFTConfig, lora_sft

        cfg = self.config
        self.titles_ = self.dense_titles()
        self.model_, self.tokenizer_, self.model_path_ = load_hf(cfg.llm)
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
        item = self.seq_item_.get(tuple(gen))
        return None if item is None else self.titles_[item]

    def run_dpo(self, n_samples: int) -> dict[str, Any]:
        """DPO on the first ``n_samples`` training pairs: the true next title (chosen) vs the current model's own
        top title when it is wrong (rejected); pairs where the model is already right are skipped."""
        from recgen.llm.sft import DPOConfig, dpo

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
            tok.padding_side = "left"
            self.title_emb_ = None  # the weights changed: L2 grounding must re-embed the titles with them
        self.train_info_["dpo"] = info
        return info

    @torch.no_grad()
    def target_logprob(self, histories: Sequence[np.ndarray], targets: Sequence[int], batch: int = 16) -> float:
        """Mean per-token log-probability of the true next titles given the prompts: a signal of what SFT or DPO
        taught the model that does not need the title to reach the top-K."""
        from recgen.llm.sft import answer_logprobs

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
        seqs, self.seq_item_ = {}, {}
        for i in range(1, self.n_items_ + 1):
            ids = tuple(tok(" " + self.titles_[i], add_special_tokens=False)["input_ids"]) + (tok.eos_token_id,)
            # items with the same title share one sequence; the trie then returns the first of them
            if ids not in seqs:
                seqs[ids] = i
        self.seq_item_ = seqs
        self.trie_ = TitleTrie(list(seqs))
        self.title_index_ = {self.titles_[i].strip().lower(): i for i in range(self.n_items_, 0, -1)}
        self.title_emb_ = None

    def reset_stats(self) -> None:
        self.stats_ = {"users": 0, "generations": 0, "out_of_catalogue": 0, "decode_seconds": 0.0}

    def run_info(self) -> dict[str, Any]:
        from recgen.llm.llamacpp import file_sha256

        st = dict(self.stats_)
        if st["generations"]:
            st["out_of_catalogue_rate"] = st["out_of_catalogue"] / st["generations"]
        p = self.model_path_
        return {
            "llm": {"backend": "hf", "model_file": str(p), "model_sha256": file_sha256(p) if p.is_file() else None},
            "prompt_template": PROMPT_VERSION,
            "temperature": 0.0,
            "seed": self.config.seed,
            "grounding": self.config.grounding,
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
    def _score(self, user_ids: np.ndarray, histories: Sequence[np.ndarray]) -> torch.Tensor:
        cfg, tok = self.config, self.tokenizer_
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
                    item = self.seq_item_.get(tuple(gen))
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

    def _state(self) -> dict[str, np.ndarray]:
        raise DataError("saving bigrec models is not supported yet (the LoRA adapter would need its own format)")


def run_bigrec_study(
    dataset: str,
    *,
    max_eval_users: int = 100,
    dpo_samples: int = 128,
    baselines: Sequence[str] = ("pop", "ease"),
    data_dir: str | None = None,
    sets: dict[str, Any] | None = None,
    out_dir: str = "benchmarks/results/llm",
    command: str | None = None,
    log=print,
) -> dict[str, Any]:
    """One SFT fit, evaluated with both groundings, then DPO on top and evaluated again, on the same seeded test
    users as the retrievers fitted beside it (leave-one-out, full ranking). Writes one results JSON.

    Fitting once and evaluating every stage on it isolates what each step changes (grounding, DPO) from the
    run-to-run variance of SFT, which a separate ``recgen bench`` per variant would mix in.
    """
    import dataclasses
    from pathlib import Path

    from recgen.config import make_config
    from recgen.data.loaders import load_dataset
    from recgen.data.split import make_split
    from recgen.eval.bench import git_commit, headline, provenance, restrict_eval_users, write_json
    from recgen.eval.evaluator import evaluate
    from recgen.models.registry import create_model

    check(dpo_samples >= 0, f"--dpo-samples must be >= 0, got {dpo_samples}")
    cfg = make_config(BIGRecConfig, {**(sets or {}), "dpo_samples": 0})
    commit = git_commit()
    ds = load_dataset(dataset, data_dir=data_dir)
    split = make_split(ds, "leave-one-out")
    restrict_eval_users(split, max_eval_users)
    test = split.test
    log(f"{ds.name}: {ds.n_users} users, {ds.n_items} items; {len(test)} test users ({split.describe()})")
    ks = (5, 10, 20)

    retrievers = {}
    for name in baselines:
        b = create_model(name)
        t = time.perf_counter()
        b.fit(split.train, valid=split.valid)
        r = evaluate(b, test, ks=ks)
        retrievers[name] = {
            "test": r.metrics,
            "fit_seconds": time.perf_counter() - t,
            "config": dataclasses.asdict(b.config),
        }
        log(f"{name}: {headline(r.metrics)}")

    model = BIGRec(cfg)
    t = time.perf_counter()
    model.fit(split.train)
    fit_s = time.perf_counter() - t
    log(f"SFT: {model.train_info_.get('pairs')} pairs, {model.train_info_.get('steps')} steps, {fit_s:.0f}s")
    histories = [test.history(i) for i in range(len(test))]
    targets = [int(test.targets(i)[0]) for i in range(len(test))]
    stages = []

    def run_stage(stage: str) -> None:
        lp = model.target_logprob(histories, targets)
        for grounding in ("trie", "l2"):
            model.config = dataclasses.replace(model.config, grounding=grounding)
            model.reset_stats()
            r = evaluate(model, test, ks=ks, batch_size=16)
            stats = model.run_info()["stats"]
            stages.append(
                {
                    "stage": stage,
                    "grounding": grounding,
                    "test": r.metrics,
                    "target_logprob_per_token": lp,
                    "eval_seconds": r.seconds,
                    "seconds_per_user": r.seconds / max(len(test), 1),
                    "stats": stats,
                }
            )
            log(f"{stage} / {grounding}: {headline(r.metrics)}; OOC {stats.get('out_of_catalogue_rate', 0):.3f}")
        model.config = dataclasses.replace(model.config, grounding=cfg.grounding)

    run_stage("sft")
    if dpo_samples:
        t = time.perf_counter()
        info = model.run_dpo(dpo_samples)
        log(f"DPO: {info.get('pairs')} pairs of {info.get('candidates')} samples, {time.perf_counter() - t:.0f}s")
        run_stage("sft+dpo")
    info = model.run_info()
    result = {
        "schema": "recgen-llm/1",
        "task": "bigrec",
        "dataset": ds.name,
        "dataset_fingerprint": ds.fingerprint(),
        "protocol": {
            **split.protocol,
            "description": split.describe(),
            "exclude_seen": True,
            "ranking": "full catalogue",
        },
        "backend": info["llm"]["backend"],
        "model_file": info["llm"]["model_file"],
        "model_sha256": info["llm"]["model_sha256"],
        "prompt_template": PROMPT_VERSION,
        "temperature": 0.0,
        "seed": cfg.seed,
        "config": dataclasses.asdict(cfg),
        "dpo_samples": dpo_samples,
        "n_test": len(test),
        "fit_seconds": fit_s,
        "train": info["train"],
        "stages": stages,
        "retrievers": retrievers,
        **provenance(commit, command),
    }
    users = f"-u{max_eval_users}" if max_eval_users else ""
    path_out = Path(out_dir) / f"{ds.name}__bigrec-study{users}__seed{cfg.seed}.json"
    write_json(result, path_out)
    result["_path"] = str(path_out)
    return result
