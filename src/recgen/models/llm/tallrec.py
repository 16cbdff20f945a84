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
from dataclasses import dataclass
from typing import Any

import numpy as np

from recgen.config import check
from recgen.data.dataset import Dataset, title_map
from recgen.errors import DataError
from recgen.llm.safety import neutralize

# config ``prompt`` -> recorded prompt version
PROMPTS = {"v1": "tallrec-v1", "counts": "tallrec-v2-counts", "stats": "tallrec-v2-stats"}
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
    prompt: str = "v1"  # v1: the paper's; counts: + "The user liked K of these N items."; stats: + the item's likes
    targets_per_user: int = 1  # samples per user (distinct target positions); > 1 gives more samples to tune on
    seed: int = 0

    def validate(self) -> None:
        check(self.history_len >= 1, f"history_len must be >= 1, got {self.history_len}")
        check(0 < self.test_frac < 1, f"test_frac must be in (0, 1), got {self.test_frac}")
        check(self.n_test >= 10, f"n_test must be >= 10, got {self.n_test}")
        check(self.lora_r >= 1 and self.lora_alpha >= 1, "lora_r and lora_alpha must be >= 1")
        check(self.lr > 0 and self.batch_size >= 1, "lr must be > 0 and batch_size >= 1")
        check(self.epochs >= 0, f"epochs must be >= 0 (0 = by sample count), got {self.epochs}")
        check(self.prompt in PROMPTS, f"prompt must be one of {sorted(PROMPTS)}, got {self.prompt!r}")
        check(self.targets_per_user >= 1, f"targets_per_user must be >= 1, got {self.targets_per_user}")

    @property
    def prompt_version(self) -> str:
        return PROMPTS[self.prompt]


@dataclass
class Sample:
    user: int
    history: list[tuple[str, bool]]  # (title, liked), oldest first
    target: str
    label: int
    item_liked: int = 0  # likes and ratings of the target by the train-pool users, this user's own left out
    item_rated: int = 0


def build_prompt(s: Sample, prompt: str = "v1") -> str:
    """The paper's prompt; ``counts`` adds one line stating how many of the shown items the user liked (the
    history like-rate baseline's whole input, spelt out so a small model need not count the lists itself);
    ``stats`` adds a second line with how the train-pool users rated the target (the item like-rate baseline's
    input: collaborative statistics in text, CoLLM's signal without its embeddings)."""
    liked = ", ".join(f'"{t}"' for t, ok in s.history if ok) or "none"
    disliked = ", ".join(f'"{t}"' for t, ok in s.history if not ok) or "none"
    n_liked = sum(ok for _, ok in s.history)
    counts = f"The user liked {n_liked} of these {len(s.history)} items.\n" if prompt in ("counts", "stats") else ""
    if prompt == "stats":
        counts += (
            f"Other users liked the target item in {s.item_liked} of their {s.item_rated} ratings.\n"
            if s.item_rated
            else "No other user has rated the target item.\n"
        )
    return (
        f"### Instruction:\n{INSTRUCTION}\n\n### Input:\nUser Preference: {liked}\nUser Unpreference: {disliked}\n"
        f'{counts}Whether the user will like the target item "{s.target}"?\n\n### Response:'
    )


def make_samples(ds: Dataset, cfg: TALLRecConfig) -> tuple[list[Sample], list[Sample]]:
    """(train pool, test samples): ``targets_per_user`` random targets per user (the first as with one; the others
    from their own seeded stream, so ``targets_per_user=1`` draws what it always drew), users split by
    ``test_frac`` (seeded). Each sample carries its target's likes and ratings among the train-pool users (the users
    with a training sample), the sample's own user left out: no label reaches its own prompt."""
    if ds.ratings is None:
        raise DataError(f"TALLRec needs ratings (like = rating >= {cfg.like_threshold}); {ds.name} has none")
    titles = {k: neutralize(v)[0] for k, v in title_map(ds.item_table).items()}  # data, not instructions
    if not titles:
        raise DataError(f"TALLRec needs item titles; {ds.name} has no item table with a 'title' column")
    rng = np.random.default_rng(cfg.seed)
    extra_rng = np.random.default_rng([cfg.seed, 1])
    order = ds.chronological_order()
    users = ds.user_ids[order]
    bounds = np.r_[0, np.flatnonzero(np.diff(users)) + 1, len(order)]
    item_ext = ds.items.external(ds.item_ids[order])
    ratings = ds.ratings[order]
    n_users = len(bounds) - 1
    test_users = set(rng.permutation(n_users)[: int(round(n_users * cfg.test_frac))].tolist())
    train, test, targets = [], [], []
    for u in rng.permutation(n_users):
        a, b = bounds[u], bounds[u + 1]
        if b - a <= cfg.min_history:
            continue
        first = int(rng.integers(a + cfg.min_history, b))
        others = np.setdiff1d(np.arange(a + cfg.min_history, b), [first])
        k = min(cfg.targets_per_user - 1, len(others))
        for t in [first, *extra_rng.choice(others, size=k, replace=False).tolist()] if k else [first]:
            hist = [
                (titles.get(str(item_ext[j]), str(item_ext[j])), bool(ratings[j] >= cfg.like_threshold))
                for j in range(max(a, t - cfg.history_len), t)
            ]
            label = int(ratings[t] >= cfg.like_threshold)
            s = Sample(int(users[a]), hist, titles.get(str(item_ext[t]), str(item_ext[t])), label)
            (test if u in test_users else train).append(s)
            targets.append((s, str(item_ext[t]), float(ratings[t])))
    pool_users = {s.user for s in train}
    mask = np.isin(users, list(pool_users))
    liked: dict[str, list[int]] = {}
    for e, r in zip(item_ext[mask], ratings[mask], strict=True):
        c = liked.setdefault(str(e), [0, 0])
        c[0] += int(r >= cfg.like_threshold)
        c[1] += 1
    for s, e, r in targets:
        own = s.user in pool_users  # the user's own rating of the target is in the counts: take it out
        c = liked.get(e, [0, 0])
        s.item_liked = c[0] - (own and r >= cfg.like_threshold)
        s.item_rated = c[1] - own
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
        self.tokenizer.truncation_side = "left"  # a long prompt loses its oldest titles, never the answer slot

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
                enc = self._encode([build_prompt(x, self.config.prompt) for x in samples[s : s + batch_size]])
                logits = self.model(**enc).logits[:, -1].double()  # left padding: last position = answer slot
                pair = torch.stack([logits[:, self.yes_id], logits[:, self.no_id]], -1)
                out.append(torch.softmax(pair, -1)[:, 0].numpy())
        return np.concatenate(out) if out else np.zeros(0)

    def tune(self, samples: list[Sample]) -> dict[str, Any]:
        """LoRA fine-tuning on the answer tokens (``recgen.models.llm.tuning``); returns the training log."""
        from recgen.models.llm.tuning import LoraSFTConfig, lora_sft

        cfg = self.config
        sft = LoraSFTConfig.from_config(cfg, epochs=cfg.epochs or default_epochs(len(samples)))
        self.tokenizer.padding_side = "right"
        prompts = [build_prompt(x, cfg.prompt) for x in samples]
        answers = [" Yes." if x.label else " No." for x in samples]
        self.model, info = lora_sft(self.model, self.tokenizer, prompts, answers, sft)
        self.tokenizer.padding_side = "left"
        return info


def config_dict(cfg: TALLRecConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)
