"""CoLLM: collaborative embeddings inside the LLM for "will this user like this item?" (Zhang et al., TKDE 2025,
"CoLLM: Integrating Collaborative Embeddings into Large Language Models for Recommendation").

The prompt is TALLRec's (liked and disliked history titles, the target title, "Yes." or "No.") with two slots:
one after "user", one after the target title. A collaborative model (here CoLLM's MF variant: matrix
factorisation trained with binary cross-entropy on the labelled training pairs) gives a user and an item
embedding; a two-layer MLP maps each into the LLM's token-embedding space and the mapped vectors fill the slots
(``inputs_embeds``). Training follows the paper's two steps: (1) LoRA on text-only prompts (slots empty), then
(2) LoRA and the LLM frozen, the mapping trained on prompts with the slots filled. The score is P(Yes) from the
two answer tokens' logits at the answer position.

Data: the labelled time split of ``recgen.data.labels``; a training sample's history is the user's labelled
pairs before it, a validation / test pair's history the user's last training pairs (nothing after the cut).

Where recgen differs from the paper / zyang1580/CoLLM: the LLM is SmolLM2-135M-Instruct (Vicuna-7B there) and
tuning budgets are CPU-sized (hundreds of samples, one epoch per step, recorded in the results); the loss is the
cross-entropy of the two answer tokens at the answer position (the paper's loss on the answer text has the same
first-token term); MF's epoch is chosen by validation AUC; the MLP's width is fixed at 256.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recgen.config import check
from recgen.data.dataset import Dataset, title_map
from recgen.data.labels import LabelledSplit, Pairs
from recgen.errors import DataError
from recgen.eval.metrics import auc
from recgen.llm.safety import neutralize
from recgen.models.llm.tuning import left_pad_embeds

PROMPT_VERSION = "collm-v1"
INSTRUCTION = (
    "Given the user's preference and unpreference, identify whether the user will like the target item by "
    'answering "Yes." or "No.".'
)
SLOT = None  # a placeholder in a token list: filled by a mapped collaborative embedding


@dataclass(frozen=True, kw_only=True)
class CoLLMConfig:
    history_len: int = 10  # previous labelled items shown
    mf_dim: int = 64
    mf_epochs: int = 40
    mf_lr: float = 1e-2
    mf_weight_decay: float = 1e-5
    text_samples: int = 256  # step 1: LoRA on text-only prompts
    collab_samples: int = 512  # step 2: the mapping, LLM and LoRA frozen
    collab_epochs: int = 1  # passes over the step-2 samples
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lr: float = 3e-4  # LoRA
    map_lr: float = 1e-3  # the mapping
    map_hidden: int = 256
    batch_size: int = 8
    max_length: int = 320  # prompt positions kept (cut from the left, as TALLRec's prompts are)
    seed: int = 0

    def validate(self) -> None:
        check(self.history_len >= 0, f"history_len must be >= 0, got {self.history_len}")
        check(self.mf_dim >= 1 and self.mf_epochs >= 1, "mf_dim and mf_epochs must be >= 1")
        check(self.text_samples >= 0 and self.collab_samples >= 0, "sample counts must be >= 0")
        check(self.lr > 0 and self.map_lr > 0 and self.mf_lr > 0, "learning rates must be > 0")
        check(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        check(self.collab_epochs >= 1, f"collab_epochs must be >= 1, got {self.collab_epochs}")


@dataclass
class Sample:
    user: int
    item: int
    history: list[tuple[str, bool]]  # (title, liked), oldest first
    target: str
    label: int


def make_samples(ds: Dataset, split: LabelledSplit, pairs: Pairs, history_len: int, *, within_train: bool):
    """Samples for labelled pairs: titles neutralised (data, not instructions); history from training pairs only."""
    titles = {k: neutralize(v)[0] for k, v in title_map(ds.item_table).items()}
    if not titles:
        raise DataError(f"CoLLM needs item titles; {ds.name} has no item table with a 'title' column")
    ext = np.r_[[""], ds.items.external(np.arange(1, ds.items.size))]  # dense id -> external (0: padding)
    name = lambda i: titles.get(str(ext[i]), str(ext[i]))  # noqa: E731
    tr = split.train
    by_user: dict[int, list[int]] = {}
    for j, u in enumerate(tr.users.tolist()):
        by_user.setdefault(u, []).append(j)  # training pairs are in time order
    pos_in_user = {}
    for rows in by_user.values():
        for k, j in enumerate(rows):
            pos_in_user[j] = k
    out = []
    for j, (u, i, y) in enumerate(zip(pairs.users.tolist(), pairs.items.tolist(), pairs.labels.tolist(), strict=True)):
        rows = by_user.get(u, [])
        end = pos_in_user[j] if within_train else len(rows)
        hist = [(name(tr.items[r]), bool(tr.labels[r])) for r in rows[max(0, end - history_len) : end]]
        out.append(Sample(u, i, hist, name(i), int(y)))
    return out


def prompt_parts(s: Sample, slots: bool) -> list[str | None]:
    """The prompt as text pieces with ``SLOT`` where a collaborative embedding goes (dropped when text-only)."""
    liked = ", ".join(f'"{t}"' for t, ok in s.history if ok) or "none"
    disliked = ", ".join(f'"{t}"' for t, ok in s.history if not ok) or "none"
    parts: list[str | None] = [f"### Instruction:\n{INSTRUCTION}\n\n### Input:\nThe user"]
    parts += [SLOT] if slots else []
    parts += [f" has preference: {liked}\nUnpreference: {disliked}\nWhether the user will like the target item "
              f'"{s.target}"']  # fmt: skip
    parts += [SLOT] if slots else []
    parts += ["?\n\n### Response:"]
    return parts


class MFCTR:
    """Matrix factorisation for like / dislike: sigmoid(u . v + b_u + b_i + b), binary cross-entropy, Adam;
    the epoch with the best validation AUC is kept."""

    def __init__(self, n_users: int, n_items: int, cfg: CoLLMConfig) -> None:
        import torch

        g = torch.Generator().manual_seed(cfg.seed)
        self.cfg = cfg
        self.user = torch.nn.Parameter(torch.randn(n_users, cfg.mf_dim, generator=g) * 0.05)
        self.item = torch.nn.Parameter(torch.randn(n_items, cfg.mf_dim, generator=g) * 0.05)
        self.ub = torch.nn.Parameter(torch.zeros(n_users))
        self.ib = torch.nn.Parameter(torch.zeros(n_items))
        self.b = torch.nn.Parameter(torch.zeros(()))
        self.log: list[dict[str, float]] = []

    NAMES = ("user", "item", "ub", "ib", "b")  # params() in order, as saved

    def params(self):
        return [self.user, self.item, self.ub, self.ib, self.b]

    def logits(self, users: np.ndarray, items: np.ndarray):
        import torch

        u, i = torch.as_tensor(users), torch.as_tensor(items)
        return (self.user[u] * self.item[i]).sum(-1) + self.ub[u] + self.ib[i] + self.b

    def fit(self, train: Pairs, valid: Pairs) -> MFCTR:
        import torch

        opt = torch.optim.Adam(self.params(), lr=self.cfg.mf_lr, weight_decay=self.cfg.mf_weight_decay)
        y = torch.as_tensor(train.labels, dtype=torch.float32)
        rng = np.random.default_rng(self.cfg.seed)
        best, best_state = -1.0, None
        for epoch in range(1, self.cfg.mf_epochs + 1):
            perm = rng.permutation(len(train))
            for s in range(0, len(perm), 1024):
                idx = perm[s : s + 1024]
                loss = torch.nn.functional.binary_cross_entropy_with_logits(
                    self.logits(train.users[idx], train.items[idx]), y[idx]
                )
                opt.zero_grad()
                loss.backward()
                opt.step()
            v = auc(valid.labels, self.scores(valid))
            self.log.append({"epoch": epoch, "valid_auc": v})
            if v > best:
                best, best_state = v, [p.detach().clone() for p in self.params()]
        with torch.no_grad():
            for p, s in zip(self.params(), best_state, strict=True):
                p.copy_(s)
        return self

    def scores(self, pairs: Pairs) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self.logits(pairs.users, pairs.items).double().numpy()


class CoLLM:
    """Fit (MF, LoRA on text, the mapping), score P(Yes), save and load; ``model``/``tokenizer`` from ``load_hf``."""

    def __init__(self, model, tokenizer, config: CoLLMConfig | None = None) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.config = config or CoLLMConfig()
        self.config.validate()
        self.yes_id = tokenizer(" Yes", add_special_tokens=False)["input_ids"][0]
        self.no_id = tokenizer(" No", add_special_tokens=False)["input_ids"][0]
        self.mf: MFCTR | None = None
        self.mapping = None
        self.info: dict[str, Any] = {"prompt_version": PROMPT_VERSION}
        self._ids: dict[str, list[int]] = {}  # token ids of prompt pieces: each sample is seen every epoch

    # ------------------------------------------------------------------------------------ batches
    def _embeds(self, samples: list[Sample], slots: bool):
        """(inputs_embeds, attention_mask, position_ids), left-padded; slots filled by the mapped MF vectors."""
        import torch

        table = self.model.get_input_embeddings()
        seqs = []
        if slots:
            mapped_u = self.mapping(self.mf.user[torch.as_tensor([s.user for s in samples])].detach())
            mapped_i = self.mapping(self.mf.item[torch.as_tensor([s.item for s in samples])].detach())
        for n, s in enumerate(samples):
            pieces = []
            fill = iter([mapped_u[n], mapped_i[n]]) if slots else iter(())
            for part in prompt_parts(s, slots):
                if part is SLOT:
                    pieces.append(next(fill)[None])
                else:
                    if part not in self._ids:
                        self._ids[part] = self.tokenizer(part, add_special_tokens=False)["input_ids"]
                    pieces.append(table(torch.as_tensor(self._ids[part])))
            e = torch.cat(pieces)
            seqs.append(e[-self.config.max_length :])
        return left_pad_embeds(seqs)

    def _answer_logits(self, samples: list[Sample], slots: bool):
        import torch

        emb, mask, pos = self._embeds(samples, slots)
        logits = self.model(inputs_embeds=emb, attention_mask=mask, position_ids=pos, logits_to_keep=1).logits[:, -1]
        return torch.stack([logits[:, self.yes_id], logits[:, self.no_id]], -1).float()

    def p_yes(self, samples: list[Sample], *, slots: bool = True, batch_size: int = 16) -> np.ndarray:
        import torch

        slots = slots and self.mapping is not None
        self.model.eval()
        out = []
        with torch.no_grad():
            for s in range(0, len(samples), batch_size):
                pair = self._answer_logits(samples[s : s + batch_size], slots).double()
                out.append(torch.softmax(pair, -1)[:, 0].numpy())
        return np.concatenate(out) if out else np.zeros(0)

    def _train(self, samples: list[Sample], params, lr: float, slots: bool, epochs: int = 1) -> dict[str, Any]:
        import torch

        opt = torch.optim.AdamW(params, lr=lr)
        rng = np.random.default_rng(self.config.seed + (2 if slots else 1))
        perm = np.concatenate([rng.permutation(len(samples)) for _ in range(epochs)])
        total, steps, t0 = 0.0, 0, time.perf_counter()
        self.model.train()
        losses = []
        for s in range(0, len(perm), self.config.batch_size):
            batch = [samples[i] for i in perm[s : s + self.config.batch_size]]
            y = torch.as_tensor([0 if b.label else 1 for b in batch])  # class 0 = Yes
            loss = torch.nn.functional.cross_entropy(self._answer_logits(batch, slots), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(batch)
            losses.append(float(loss.detach()))
            steps += 1
        self.model.eval()
        return {"samples": len(samples), "epochs": epochs, "steps": steps, "seconds": time.perf_counter() - t0,
                "mean_loss": total / max(len(perm), 1), "first_losses": losses[:5],
                "last_losses": losses[-5:]}  # fmt: skip

    # ------------------------------------------------------------------------------------ fit
    def fit(self, ds: Dataset, split: LabelledSplit, *, log=print) -> CoLLM:
        import torch

        from recgen.models.llm.tuning import LoraSFTConfig, add_lora

        cfg = self.config
        torch.manual_seed(cfg.seed)
        t0 = time.perf_counter()
        self.mf = MFCTR(ds.users.size, ds.items.size, cfg).fit(split.train, split.valid)
        self.info["mf"] = {"seconds": time.perf_counter() - t0, "valid_auc": max(r["valid_auc"] for r in self.mf.log)}
        log(f"MF: valid AUC {self.info['mf']['valid_auc']:.4f} ({self.info['mf']['seconds']:.0f}s)")
        train = make_samples(ds, split, split.train, cfg.history_len, within_train=True)
        rng = np.random.default_rng(cfg.seed)
        order = rng.permutation(len(train))
        text = [train[i] for i in order[: cfg.text_samples]]
        collab = [train[i] for i in order[cfg.text_samples : cfg.text_samples + cfg.collab_samples]]
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.model = add_lora(self.model, LoraSFTConfig.from_config(cfg, epochs=1))
        lora = [p for p in self.model.parameters() if p.requires_grad]
        self.info["text_step"] = self._train(text, lora, cfg.lr, slots=False) if text else None
        log(f"step 1 (LoRA, text only): {self.info['text_step']}")
        for p in lora:
            p.requires_grad_(False)
        hidden = self.model.get_input_embeddings().weight.shape[1]
        self.mapping = torch.nn.Sequential(
            torch.nn.Linear(cfg.mf_dim, cfg.map_hidden), torch.nn.GELU(), torch.nn.Linear(cfg.map_hidden, hidden)
        )
        self.info["collab_step"] = (
            self._train(collab, list(self.mapping.parameters()), cfg.map_lr, slots=True, epochs=cfg.collab_epochs)
            if collab
            else None
        )
        log(f"step 2 (mapping, LLM frozen): {self.info['collab_step']}")
        return self

    # ------------------------------------------------------------------------------------ save / load
    def save(self, path: str | Path) -> Path:
        """LoRA weights, the mapping and MF as safetensors plus the config (written to a temp folder, renamed)."""
        import json

        from safetensors.numpy import save_file

        from recgen.io import atomic_dir
        from recgen.models.llm.tuning import lora_state

        with atomic_dir(path) as tmp:
            save_file(lora_state(self.model), str(tmp / "lora.safetensors"))
            tensors = {f"mapping.{k}": v.detach().numpy() for k, v in self.mapping.state_dict().items()}
            tensors.update({f"mf.{n}": p.detach().numpy() for n, p in zip(MFCTR.NAMES, self.mf.params(), strict=True)})
            save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(tmp / "collab.safetensors"))
            (tmp / "config.json").write_text(json.dumps({"config": dataclasses.asdict(self.config),
                                                         "info": self.info}, indent=1))  # fmt: skip
        return Path(path)

    @classmethod
    def load(cls, path: str | Path, model, tokenizer) -> CoLLM:
        import json

        import torch
        from safetensors.numpy import load_file

        from recgen.models.llm.tuning import LoraSFTConfig, apply_adapters

        path = Path(path)
        meta = json.loads((path / "config.json").read_text())
        cfg = CoLLMConfig(**meta["config"])
        self = cls(model, tokenizer, cfg)
        self.model = apply_adapters(model, [(LoraSFTConfig.from_config(cfg, epochs=1),
                                             load_file(str(path / "lora.safetensors")))])  # fmt: skip
        t = load_file(str(path / "collab.safetensors"))
        self.mf = MFCTR(t["mf.user"].shape[0], t["mf.item"].shape[0], cfg)
        with torch.no_grad():
            for n, p in zip(MFCTR.NAMES, self.mf.params(), strict=True):
                p.copy_(torch.from_numpy(t[f"mf.{n}"]).reshape(p.shape))  # a scalar is stored as shape (1,)
        hidden = model.get_input_embeddings().weight.shape[1]
        self.mapping = torch.nn.Sequential(
            torch.nn.Linear(cfg.mf_dim, cfg.map_hidden), torch.nn.GELU(), torch.nn.Linear(cfg.map_hidden, hidden)
        )
        self.mapping.load_state_dict({k[8:]: torch.from_numpy(v) for k, v in t.items() if k.startswith("mapping.")})
        self.info = meta["info"]
        return self
