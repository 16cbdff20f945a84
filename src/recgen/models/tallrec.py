"""TALLRec: few-shot LoRA instruction tuning of an LLM for "will the user like this item?" (Bao et al.,
RecSys 2023, "TALLRec: An Effective and Efficient Tuning Framework to Align Large Language Model with
Recommendation").

Samples come from a rated dataset (ML-100K): for a user and a target position, the prompt lists the titles of
the user's previous ``history_len`` items split into liked (rating >= ``like_threshold``) and disliked, names the
target item, and asks for "Yes." or "No."; the label is whether the user rated the target >= the threshold.
Users are split (seeded) into train / test pools, so no test user is seen in tuning. The LLM's answer
probability P(Yes) = softmax(log p(" Yes"), log p(" No")) at the answer position is the score; AUC over the
test samples is the metric, as in the paper.

Tuning: LoRA (peft) on the attention projections of the ``hf`` backend's model (the embedded SmolLM2 GGUF,
dequantised), cross-entropy on the answer tokens only, AdamW; ``n_train`` samples (16 / 64 / 256 in the paper's
few-shot table) for ``epochs`` epochs.

Where recgen differs from the paper / SAI990323/TALLRec: the base model is SmolLM2-135M-Instruct instead of
LLaMA-7B (the paper's row is printed beside ours for scale, not as a like-for-like comparison); the paper tunes
in two stages (Alpaca instruction tuning, then rec-tuning) and we run only the rec-tuning stage on the
instruction-tuned model; epochs are fixed per sample size (no validation-based early stopping: with 16
samples there is no validation set to speak of), which the results file records.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from recgen.config import check
from recgen.data.dataset import Dataset, title_map
from recgen.errors import DataError

PROMPT_VERSION = "tallrec-v1"
INSTRUCTION = (
    "Given the user's preference and unpreference, identify whether the user will like the target item by "
    'answering "Yes." or "No.".'
)


@dataclass(frozen=True, kw_only=True)
class TALLRecConfig:
    history_len: int = 10  # previous items shown
    like_threshold: float = 4.0  # rating >= this = like
    min_history: int = 3  # targets need at least this many earlier items
    test_frac: float = 0.2  # users held out for testing
    n_test: int = 400  # test samples (one per test user, at most)
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lr: float = 3e-4
    batch_size: int = 8
    epochs: int = 0  # 0 = by sample count: 16 -> 4, 64 -> 2, 256 -> 1 (64 to 256 examples seen; 8 to 32 steps)
    max_length: int = 256  # prompt tokens kept (history titles are cut from the oldest end first)
    seed: int = 0

    def validate(self) -> None:
        check(self.history_len >= 1, f"history_len must be >= 1, got {self.history_len}")
        check(0 < self.test_frac < 1, f"test_frac must be in (0, 1), got {self.test_frac}")
        check(self.n_test >= 10, f"n_test must be >= 10, got {self.n_test}")
        check(self.lora_r >= 1 and self.lora_alpha >= 1, "lora_r and lora_alpha must be >= 1")
        check(self.lr > 0 and self.batch_size >= 1, "lr must be > 0 and batch_size >= 1")
        check(self.epochs >= 0, f"epochs must be >= 0 (0 = by sample count), got {self.epochs}")


@dataclass
class Sample:
    user: int
    history: list[tuple[str, bool]]  # (title, liked), oldest first
    target: str
    label: int


def build_prompt(s: Sample) -> str:
    liked = ", ".join(f'"{t}"' for t, ok in s.history if ok) or "none"
    disliked = ", ".join(f'"{t}"' for t, ok in s.history if not ok) or "none"
    return (
        f"### Instruction:\n{INSTRUCTION}\n\n### Input:\nUser Preference: {liked}\nUser Unpreference: {disliked}\n"
        f'Whether the user will like the target item "{s.target}"?\n\n### Response:'
    )


def make_samples(ds: Dataset, cfg: TALLRecConfig) -> tuple[list[Sample], list[Sample]]:
    """(train pool, test samples): one random target per user, users split by ``test_frac`` (seeded)."""
    if ds.ratings is None:
        raise DataError(f"TALLRec needs ratings (like = rating >= {cfg.like_threshold}); {ds.name} has none")
    titles = title_map(ds.item_table)
    if not titles:
        raise DataError(f"TALLRec needs item titles; {ds.name} has no item table with a 'title' column")
    rng = np.random.default_rng(cfg.seed)
    order = ds.chronological_order()
    users = ds.user_ids[order]
    bounds = np.r_[0, np.flatnonzero(np.diff(users)) + 1, len(order)]
    item_ext = ds.items.external(ds.item_ids[order])
    ratings = ds.ratings[order]
    n_users = len(bounds) - 1
    test_users = set(rng.permutation(n_users)[: int(round(n_users * cfg.test_frac))].tolist())
    train, test = [], []
    for u in rng.permutation(n_users):
        a, b = bounds[u], bounds[u + 1]
        if b - a <= cfg.min_history:
            continue
        t = int(rng.integers(a + cfg.min_history, b))
        hist = [
            (titles.get(str(item_ext[j]), str(item_ext[j])), bool(ratings[j] >= cfg.like_threshold))
            for j in range(max(a, t - cfg.history_len), t)
        ]
        s = Sample(
            int(users[a]), hist, titles.get(str(item_ext[t]), str(item_ext[t])), int(ratings[t] >= cfg.like_threshold)
        )
        (test if u in test_users else train).append(s)
    return train, test[: cfg.n_test]


def default_epochs(n: int) -> int:
    """Epochs for a training-set size when none is given: sized for a 2-core CPU (about 8 to 32 LoRA steps)."""
    return 4 if n <= 16 else 2 if n <= 64 else 1


class TALLRec:
    """Score, tune and evaluate; ``model``/``tokenizer`` come from the hf backend (``load_hf``)."""

    def __init__(self, model, tokenizer, config: TALLRecConfig | None = None) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.config = config or TALLRecConfig()
        self.yes_id = tokenizer(" Yes", add_special_tokens=False)["input_ids"][0]
        self.no_id = tokenizer(" No", add_special_tokens=False)["input_ids"][0]
        self.tokenizer.padding_side = "left"

    def _encode(self, prompts: list[str]):
        return self.tokenizer(
            prompts, return_tensors="pt", padding=True, truncation=True, max_length=self.config.max_length
        )

    def p_yes(self, samples: list[Sample], batch_size: int = 16) -> np.ndarray:
        """P(Yes) for each sample (softmax over the two answer tokens at the answer position)."""
        import torch

        self.model.eval()
        out = []
        with torch.no_grad():
            for s in range(0, len(samples), batch_size):
                enc = self._encode([build_prompt(x) for x in samples[s : s + batch_size]])
                logits = self.model(**enc).logits[:, -1].double()  # left padding: last position = answer slot
                pair = torch.stack([logits[:, self.yes_id], logits[:, self.no_id]], -1)
                out.append(torch.softmax(pair, -1)[:, 0].numpy())
        return np.concatenate(out) if out else np.zeros(0)

    def tune(self, samples: list[Sample]) -> dict[str, Any]:
        """LoRA fine-tuning on the answer tokens (``recgen.llm.sft``); returns the training log."""
        from recgen.llm.sft import LoraSFTConfig, lora_sft

        cfg = self.config
        sft = LoraSFTConfig.from_config(cfg, epochs=cfg.epochs or default_epochs(len(samples)))
        self.tokenizer.padding_side = "right"
        prompts = [build_prompt(x) for x in samples]
        answers = [" Yes." if x.label else " No." for x in samples]
        self.model, info = lora_sft(self.model, self.tokenizer, prompts, answers, sft)
        self.tokenizer.padding_side = "left"
        return info


def config_dict(cfg: TALLRecConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def baselines(train_pool: list[Sample], test: list[Sample], ds: Dataset, cfg: TALLRecConfig) -> dict[str, float]:
    """Non-LLM AUCs on the same test samples: the like-rate of the history shown in the prompt (uses exactly
    the prompt's information, no training), and the target item's like-rate among the train-pool users' ratings
    (uses more data than any few-shot sample set; a strong reference, not a few-shot method)."""
    from recgen.eval.metrics import auc

    y = np.array([s.label for s in test])
    hist_rate = np.array([np.mean([ok for _, ok in s.history]) if s.history else 0.5 for s in test])
    titles = title_map(ds.item_table)
    train_users = {s.user for s in train_pool}
    mask = np.isin(ds.user_ids, list(train_users))
    ext = ds.items.external(ds.item_ids[mask])
    liked = ds.ratings[mask] >= cfg.like_threshold
    stats: dict[str, list[float]] = {}
    for e, ok in zip(ext, liked, strict=True):
        t = titles.get(str(e), str(e))
        c = stats.setdefault(t, [0.0, 0.0])
        c[0] += ok
        c[1] += 1
    prior = float(liked.mean()) if len(liked) else 0.5
    item_rate = np.array(
        [(stats.get(s.target, [0, 0])[0] + 5 * prior) / (stats.get(s.target, [0, 0])[1] + 5) for s in test]
    )
    return {"history_like_rate_auc": float(auc(y, hist_rate)), "item_like_rate_auc": float(auc(y, item_rate))}


def run_tallrec(
    dataset: str,
    n_trains: tuple[int, ...] = (16, 64, 256),
    *,
    llm: str = "smollm2",
    data_dir: str | None = None,
    sets: dict[str, Any] | None = None,
    out_dir: str = "benchmarks/results/llm",
    command: str | None = None,
    log=print,
) -> dict[str, Any]:
    """Zero-shot and tuned AUC at each training-set size; writes one results JSON."""
    from pathlib import Path

    from recgen.config import make_config
    from recgen.data.loaders import load_dataset
    from recgen.eval.bench import git_commit, provenance, write_json
    from recgen.eval.metrics import auc
    from recgen.llm.hf import load_hf
    from recgen.llm.llamacpp import file_sha256

    cfg = make_config(TALLRecConfig, sets or {})
    commit = git_commit()
    ds = load_dataset(dataset, data_dir=data_dir)
    pool, test = make_samples(ds, cfg)
    if max(n_trains) > len(pool):
        raise DataError(f"asked for {max(n_trains)} training samples but the train pool has {len(pool)}")
    y = np.array([s.label for s in test])
    log(f"{ds.name}: {len(pool)} train-pool samples, {len(test)} test samples ({y.mean():.2f} positive)")
    model, tok, path = load_hf(llm)
    t0 = time.perf_counter()
    zero = float(auc(y, TALLRec(model, tok, cfg).p_yes(test)))
    zero_s = time.perf_counter() - t0
    log(f"zero-shot AUC {zero:.4f} ({zero_s:.0f}s for {len(test)} samples)")
    runs = []
    for n in n_trains:
        model, tok, _ = load_hf(llm)  # a fresh base model for every size
        tr = TALLRec(model, tok, cfg)
        info = tr.tune(pool[:n])
        score = float(auc(y, tr.p_yes(test)))
        runs.append({"n_train": n, "test_auc": score, **info})
        log(f"n={n}: AUC {score:.4f} after {info['steps']} steps ({info['train_seconds']:.0f}s)")
    result = {
        "schema": "recgen-llm/1",
        "task": "tallrec",
        "dataset": ds.name,
        "dataset_fingerprint": ds.fingerprint(),
        "protocol": {
            "name": "tallrec-user-split",
            "test_frac": cfg.test_frac,
            "description": "one random target per user (>= min_history earlier items); users split train/test",
        },
        "backend": "hf",
        "model_file": str(path),
        "model_sha256": file_sha256(path) if path.is_file() else None,
        "prompt_template": PROMPT_VERSION,
        "temperature": 0.0,
        "seed": cfg.seed,
        "config": dataclasses.asdict(cfg),
        "n_test": len(test),
        "test_positive_rate": float(y.mean()),
        "zero_shot_auc": zero,
        "runs": runs,
        "baselines": baselines(pool, test, ds, cfg),
        "published": {"model": "TALLRec (LLaMA-7B), ML (MovieLens-100K)", "auc": {16: 0.6724, 64: 0.6748, 256: 0.7198}},
        **provenance(commit, command),
    }
    path_out = Path(out_dir) / f"{ds.name}__tallrec__seed{cfg.seed}.json"
    write_json(result, path_out)
    result["_path"] = str(path_out)
    return result
