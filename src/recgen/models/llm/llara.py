"""LLaRA: items as hybrid tokens (title text plus a projected sequential-recommender embedding) in the prompt of
an LLM that picks the next item from a candidate list (Liao et al., SIGIR 2024, "LLaRA: Large Language-
Recommendation Assistant").

The prompt lists the user's last ``history_len`` items and ``n_candidates`` candidates (the target and items the
user has not seen, sampled uniformly, seeded, shuffled), each written as its title followed by one slot; a
two-layer MLP (the projector) maps the item's embedding from a trained sequential recommender (the harness's
SASRec-CE) into the LLM's token-embedding space and the mapped vector fills the slot (``inputs_embeds``). LoRA
and the projector are trained together on the answer's tokens (the target's title and a newline). Curriculum as
in the reference code: at training step t of T a batch is hybrid with probability t / T, text-only otherwise
(the projector then gets no gradient); evaluation is always hybrid. ``curriculum="text"`` never uses the slots:
the text-only LLM with the same LoRA budget. Evaluation, as in ljy0ustc/LLaRA: greedy generation, its first
line; an answer is valid when exactly one candidate's title is contained in it (case-insensitive), and
HitRatio@1 is the share of valid answers that name the target (``hr1_of_valid``, the reference's figure); recgen
also reports hits over every user (``hr1``) and a grounded reading, the candidate whose answer has the highest
log-likelihood (``hr1_scored``, valid by construction).

Where recgen differs from the paper / the reference code: the LLM is SmolLM2-135M-Instruct in float32 on the CPU
(Llama2-7B in bfloat16 there), trained for a few hundred samples (5 epochs over every training prefix there);
one prompt template (the reference draws from three); a text-only prompt drops the slots instead of writing a
placeholder token (the reference adds ``[PH]``, whose new embedding is never trained); the projector's hidden
width is the LLM's (as the reference's ``MlpProjector``); the sequential model's item table is read as is
(the reference's ``cacu_x`` is its SASRec's item embedding lookup, the same thing).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recgen.config import check
from recgen.errors import DataError
from recgen.models.llm.tuning import left_pad_embeds

PROMPT_VERSION = "llara-v1"
CURRICULA = ("linear", "hybrid", "text")


@dataclass(frozen=True, kw_only=True)
class LLaRAConfig:
    n_candidates: int = 20
    history_len: int = 10
    min_history: int = 2  # training prefixes shorter than this are not used
    train_samples: int = 512  # (prefix -> next item) samples drawn from the training sequences
    epochs: int = 1
    curriculum: str = "linear"  # linear: hybrid with probability t / T; hybrid: always; text: never
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    lr: float = 5e-4  # LoRA and the projector (one optimizer, as the reference)
    batch_size: int = 8
    max_new_tokens: int = 32
    item_word: str = "movie"  # the prompt's noun for an item
    seed: int = 0

    def validate(self) -> None:
        check(self.n_candidates >= 2, f"n_candidates must be >= 2, got {self.n_candidates}")
        check(self.history_len >= 1 and self.min_history >= 1, "history_len and min_history must be >= 1")
        check(self.train_samples >= 1 and self.epochs >= 1, "train_samples and epochs must be >= 1")
        check(self.curriculum in CURRICULA, f"curriculum must be one of {CURRICULA}, got {self.curriculum!r}")
        check(self.lr > 0, f"lr must be > 0, got {self.lr}")
        check(self.batch_size >= 1 and self.max_new_tokens >= 1, "batch_size and max_new_tokens must be >= 1")


@dataclass
class Sample:
    user: int
    history: list[int]  # dense item ids, oldest first
    candidates: list[int]  # shuffled; the target is one of them
    target: int


def draw_candidates(target: int, seen: set[int], n_items: int, n: int, rng: np.random.Generator) -> list[int]:
    """The target and n - 1 items drawn uniformly from those not in ``seen`` (and not the target), shuffled."""
    pool = n_items - len(seen | {target})
    if pool < n - 1:
        raise DataError(f"{n} candidates need {n - 1} unseen items besides the target; only {pool} exist")
    out: set[int] = set()
    while len(out) < n - 1:
        for i in rng.integers(1, n_items + 1, size=2 * n).tolist():
            if i != target and i not in seen and len(out) < n - 1:
                out.add(i)
    cands = sorted(out) + [target]
    rng.shuffle(cands)
    return cands


def training_samples(sequences: list[np.ndarray], n_items: int, cfg: LLaRAConfig) -> list[Sample]:
    """``cfg.train_samples`` seeded (prefix -> next item) samples from training sequences (index = user id)."""
    rng = np.random.default_rng(cfg.seed)
    pairs = [(u, t) for u, s in enumerate(sequences) for t in range(cfg.min_history, len(s))]
    if not pairs:
        raise DataError(f"no training sequence is longer than min_history={cfg.min_history}")
    pick = rng.choice(len(pairs), min(cfg.train_samples, len(pairs)), replace=False)
    out = []
    for j in pick.tolist():
        u, t = pairs[j]
        s = sequences[u].tolist()
        cands = draw_candidates(s[t], set(s), n_items, cfg.n_candidates, rng)
        out.append(Sample(u, s[max(0, t - cfg.history_len) : t], cands, s[t]))
    return out


def eval_samples(users, histories, targets, n_items: int, cfg: LLaRAConfig, seed: int) -> list[Sample]:
    """One sample per evaluation user: candidates exclude everything in the user's history (all of it)."""
    rng = np.random.default_rng(seed)
    return [Sample(int(u), h.tolist()[-cfg.history_len :], draw_candidates(int(t), set(h.tolist()), n_items,
                                                                           cfg.n_candidates, rng), int(t))
            for u, h, t in zip(users, histories, targets, strict=True)]  # fmt: skip


def match_answer(text: str, candidate_titles: list[str]) -> int | None:
    """The reference's rule: the index of the one candidate whose title the answer's first line contains
    (case-insensitive), else None (none or several)."""
    line = text.strip().split("\n")[0].strip().lower()
    hits = [i for i, t in enumerate(candidate_titles) if t.strip().lower() in line]
    return hits[0] if len(hits) == 1 else None


class LLaRA:
    """Fit (LoRA and the projector, with the curriculum), generate, score candidates, save and load.

    ``item_vectors``: (n_items + 1, d) float array, row = dense item id (the sequential model's item table);
    ``titles``: dense item id -> title (index 0 unused)."""

    def __init__(
        self, model, tokenizer, item_vectors: np.ndarray, titles: list[str], config: LLaRAConfig | None = None
    ):
        import torch

        self.model, self.tokenizer = model, tokenizer
        self.config = config or LLaRAConfig()
        self.config.validate()
        if len(titles) != len(item_vectors):
            raise DataError(f"{len(titles)} titles but {len(item_vectors)} item vectors; they must align")
        self.items = torch.as_tensor(np.asarray(item_vectors, dtype=np.float32))
        self.titles = list(titles)
        hidden = model.get_input_embeddings().weight.shape[1]
        torch.manual_seed(self.config.seed)
        self.projector = torch.nn.Sequential(
            torch.nn.Linear(self.items.shape[1], hidden), torch.nn.GELU(), torch.nn.Linear(hidden, hidden)
        )
        self.info: dict[str, Any] = {"prompt_version": PROMPT_VERSION}
        self._ids: dict[str, list[int]] = {}

    # ------------------------------------------------------------------------------------ prompts
    def prompt_parts(self, s: Sample, hybrid: bool) -> list[str | int]:
        """Text pieces, with an item id (an int) where that item's projected embedding goes."""
        w, n = self.config.item_word, len(s.candidates)

        def listing(items: list[int]) -> list[str | int]:
            out: list[str | int] = []
            for k, i in enumerate(items):
                out.append((", " if k else "") + self.titles[i] + (" " if hybrid else ""))
                out += [i] if hybrid else []
            return out

        return ["This user has watched ", *listing(s.history),
                f" in the previous. Please predict the next {w} this user will watch. Choose the answer from the "
                f"following {n} {w} titles: ", *listing(s.candidates), ". Answer:"]  # fmt: skip

    def _tok(self, text: str) -> list[int]:
        if text not in self._ids:
            self._ids[text] = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return self._ids[text]

    def answer_ids(self, item: int) -> list[int]:
        return self._tok(" " + self.titles[item] + "\n")

    def _embeds(self, samples: list[Sample], hybrid: bool, answers: list[list[int]] | None = None):
        """(inputs_embeds, attention_mask, position_ids) left-padded; slots filled by the projector."""
        import torch

        table = self.model.get_input_embeddings()
        seqs = []
        for n, s in enumerate(samples):
            parts = self.prompt_parts(s, hybrid)
            slot_items = [p for p in parts if isinstance(p, int)]
            mapped = iter(self.projector(self.items[torch.as_tensor(slot_items)])) if slot_items else iter(())
            pieces = [next(mapped)[None] if isinstance(p, int) else table(torch.as_tensor(self._tok(p)))
                      for p in parts]  # fmt: skip
            if answers is not None:
                pieces.append(table(torch.as_tensor(answers[n])))
            seqs.append(torch.cat(pieces))
        return left_pad_embeds(seqs)

    def _answer_logprobs(self, samples: list[Sample], answers: list[list[int]], hybrid: bool):
        """Summed log-probability of each answer (token ids) after its prompt; logits only at answer positions."""
        import torch

        emb, mask, pos = self._embeds(samples, hybrid, answers)
        k = max(len(a) for a in answers)
        logits = self.model(inputs_embeds=emb, attention_mask=mask, position_ids=pos, logits_to_keep=k + 1).logits
        logp = torch.log_softmax(logits[:, :-1].float(), -1)  # position j predicts token j + 1 of the kept window
        total = torch.zeros(len(samples))
        for n, a in enumerate(answers):
            tgt = torch.as_tensor(a)
            rows = logp[n, k - len(a) :]
            total[n] = rows.gather(-1, tgt[:, None]).sum()
        return total

    # ------------------------------------------------------------------------------------ fit
    def fit(self, samples: list[Sample], *, log=print) -> LLaRA:
        import torch

        from recgen.models.llm.tuning import LoraSFTConfig, add_lora

        cfg = self.config
        if not samples:
            raise DataError("LLaRA needs training samples")
        torch.manual_seed(cfg.seed)
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.model = add_lora(self.model, LoraSFTConfig.from_config(cfg))
        params = [p for p in self.model.parameters() if p.requires_grad] + list(self.projector.parameters())
        opt = torch.optim.AdamW(params, lr=cfg.lr)
        rng = np.random.default_rng(cfg.seed + 1)
        perm = np.concatenate([rng.permutation(len(samples)) for _ in range(cfg.epochs)])
        n_steps = -(-len(perm) // cfg.batch_size)
        losses, hybrid_steps, tokens, t0 = [], 0, 0, time.perf_counter()
        self.model.train()
        for step in range(n_steps):
            batch = [samples[i] for i in perm[step * cfg.batch_size : (step + 1) * cfg.batch_size]]
            if cfg.curriculum == "linear":
                hybrid = bool(rng.random() < (step + 1) / n_steps)
            else:
                hybrid = cfg.curriculum == "hybrid"
            hybrid_steps += hybrid
            answers = [self.answer_ids(s.target) for s in batch]
            lp = self._answer_logprobs(batch, answers, hybrid)
            loss = -(lp.sum() / sum(len(a) for a in answers))  # mean over answer tokens, as the LM loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            tokens += sum(len(self._tok(p)) if isinstance(p, str) else 1 for s in batch
                          for p in self.prompt_parts(s, hybrid)) + sum(len(a) for a in answers)  # fmt: skip
            if step % 10 == 0 or step == n_steps - 1:
                rate = (step + 1) / (time.perf_counter() - t0)
                log(f"step {step + 1}/{n_steps} loss {losses[-1]:.3f} hybrid={hybrid} ({rate:.2f} steps/s)")
        self.model.eval()
        secs = time.perf_counter() - t0
        self.info["training"] = {"samples": len(samples), "epochs": cfg.epochs, "steps": n_steps,
                                 "hybrid_steps": hybrid_steps, "seconds": secs, "tokens": tokens,
                                 "tokens_per_second": tokens / max(secs, 1e-9),
                                 "first_losses": losses[:5], "last_losses": losses[-5:],
                                 "mean_loss_last_tenth": float(np.mean(losses[-max(1, n_steps // 10):]))}  # fmt: skip
        return self

    # ------------------------------------------------------------------------------------ evaluate
    def generate(self, samples: list[Sample], *, hybrid: bool = True, batch_size: int = 8) -> list[str]:
        """Greedy answers (decoded text) to each sample's prompt."""
        import torch

        out = []
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        with torch.no_grad():
            for s in range(0, len(samples), batch_size):
                emb, mask, _ = self._embeds(samples[s : s + batch_size], hybrid)
                ids = self.model.generate(inputs_embeds=emb, attention_mask=mask, do_sample=False,
                                          max_new_tokens=self.config.max_new_tokens, pad_token_id=pad)  # fmt: skip
                out += self.tokenizer.batch_decode(ids, skip_special_tokens=True)
        return out

    def candidate_scores(self, samples: list[Sample], *, hybrid: bool = True) -> np.ndarray:
        """(n_samples, n_candidates) summed log-likelihood of each candidate's answer."""
        import torch

        rows = []
        with torch.no_grad():
            for s in samples:  # the prompt once, its cache repeated for every candidate's answer
                emb, mask, pos = self._embeds([s], hybrid)
                out = self.model(inputs_embeds=emb, attention_mask=mask, position_ids=pos, use_cache=True,
                                 logits_to_keep=1)  # fmt: skip
                first = torch.log_softmax(out.logits[0, -1].float(), -1)
                answers = [self.answer_ids(c) for c in s.candidates]
                width, n, p = max(len(a) for a in answers), len(answers), emb.shape[1]
                ids = torch.zeros(n, width, dtype=torch.long)
                amask = torch.zeros(n, width, dtype=torch.long)
                for k, a in enumerate(answers):
                    ids[k, : len(a)], amask[k, : len(a)] = torch.as_tensor(a), 1
                cache = out.cache if getattr(out, "cache", None) is not None else out.past_key_values
                cache.batch_repeat_interleave(n)
                logits = self.model(input_ids=ids, cache=cache, use_cache=True,
                                    attention_mask=torch.cat([mask.expand(n, -1), amask], 1),
                                    position_ids=(p + torch.arange(width)).expand(n, -1)).logits  # fmt: skip
                logp = torch.log_softmax(logits[:, :-1].float(), -1)
                row = []
                for k, a in enumerate(answers):
                    rest = logp[k, : len(a) - 1].gather(-1, torch.as_tensor(a[1:])[:, None]).sum()
                    row.append(float(first[a[0]] + rest))
                rows.append(row)
        return np.asarray(rows, dtype=np.float64)

    def evaluate(self, samples: list[Sample], *, hybrid: bool = True, score: bool = True) -> dict[str, Any]:
        """ValidRatio, HitRatio@1 (of valid answers, and over every sample), and the scored HitRatio@1."""
        t0 = time.perf_counter()
        texts = self.generate(samples, hybrid=hybrid)
        gen_s = time.perf_counter() - t0
        picks = [match_answer(t, [self.titles[c] for c in s.candidates]) for t, s in zip(texts, samples, strict=True)]
        valid = [p is not None for p in picks]
        hits = [p is not None and s.candidates[p] == s.target for p, s in zip(picks, samples, strict=True)]
        row: dict[str, Any] = {"users": len(samples), "valid_ratio": float(np.mean(valid)),
                               "hr1_of_valid": float(sum(hits) / max(sum(valid), 1)), "hr1": float(np.mean(hits)),
                               "generate_seconds": gen_s,
                               "examples": [{"answer": t.strip().split("\n")[0][:120], "target": self.titles[s.target]}
                                            for t, s in zip(texts[:5], samples[:5], strict=True)]}  # fmt: skip
        if score:
            t0 = time.perf_counter()
            sc = self.candidate_scores(samples, hybrid=hybrid)
            best = [s.candidates[int(np.argmax(r))] for r, s in zip(sc, samples, strict=True)]
            row["hr1_scored"] = float(np.mean([b == s.target for b, s in zip(best, samples, strict=True)]))
            row["score_seconds"] = time.perf_counter() - t0
        return row

    # ------------------------------------------------------------------------------------ save / load
    def save(self, path: str | Path) -> Path:
        """LoRA weights and the projector as safetensors, the config and training info (temp folder, renamed)."""
        import json

        from safetensors.numpy import save_file

        from recgen.io import atomic_dir
        from recgen.models.llm.tuning import lora_state

        with atomic_dir(path) as tmp:
            save_file(lora_state(self.model), str(tmp / "lora.safetensors"))
            save_file({k: np.ascontiguousarray(v.detach().numpy()) for k, v in self.projector.state_dict().items()},
                      str(tmp / "projector.safetensors"))  # fmt: skip
            (tmp / "config.json").write_text(json.dumps({"config": dataclasses.asdict(self.config),
                                                         "info": self.info}, indent=1))  # fmt: skip
        return Path(path)

    @classmethod
    def load(cls, path: str | Path, model, tokenizer, item_vectors: np.ndarray, titles: list[str]) -> LLaRA:
        """A saved LLaRA on its base model; the item table and titles are the sequential model's and dataset's."""
        import json

        import torch
        from safetensors.numpy import load_file

        from recgen.models.llm.tuning import LoraSFTConfig, apply_adapters

        path = Path(path)
        meta = json.loads((path / "config.json").read_text())
        raw = meta["config"]
        cfg = LLaRAConfig(**{**raw, "target_modules": tuple(raw["target_modules"])})
        self = cls(model, tokenizer, item_vectors, titles, cfg)
        lora = load_file(str(path / "lora.safetensors"))
        self.model = apply_adapters(model, [(LoraSFTConfig.from_config(cfg), lora)])
        state = {k: torch.from_numpy(v) for k, v in load_file(str(path / "projector.safetensors")).items()}
        if state["0.weight"].shape[1] != self.items.shape[1]:
            raise DataError(f"{path} was trained on {state['0.weight'].shape[1]}-d item vectors, "
                            f"these are {self.items.shape[1]}-d; load it with the same sequential model")  # fmt: skip
        self.projector.load_state_dict(state)
        self.info = meta["info"]
        return self
