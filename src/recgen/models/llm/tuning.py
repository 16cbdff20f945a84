"""LoRA supervised fine-tuning of a causal LM on (prompt, answer) pairs, loss on the answer tokens only.

Shared by TALLRec (answers "Yes."/"No.") and BIGRec (answers = the next item's title). peft provides the LoRA
layers; the loop is a short own one (AdamW, shuffled batches, right padding) rather than transformers' Trainer,
which would add an accelerate dependency and hide the per-step cost we report.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from recgen.errors import BackendUnavailableError, DataError


@dataclass(frozen=True, kw_only=True)
class LoraSFTConfig:
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")
    lr: float = 3e-4
    batch_size: int = 8
    epochs: int = 1
    max_length: int = 256  # prompt tokens kept (cut from the left: the oldest history goes first)
    seed: int = 0

    @classmethod
    def from_config(cls, cfg: Any, **overrides: Any):
        """This config from a model config's fields of the same names (the rest at their defaults), then
        ``overrides`` (e.g. a model's ``dpo_lr`` as ``lr``)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(overrides) - names
        if unknown:
            raise TypeError(f"{cls.__name__} has no field(s) {sorted(unknown)}")
        picked = {n: getattr(cfg, n) for n in names if hasattr(cfg, n)}
        return cls(**{**picked, **overrides})


def add_lora(model, cfg: LoraSFTConfig):
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise BackendUnavailableError("LoRA fine-tuning needs peft: pip install peft") from None
    lora = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=list(cfg.target_modules),
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


def lora_state(model) -> dict[str, np.ndarray]:
    """The LoRA adapter's weights of a peft model (what fine-tuning learnt, a few MB), as float32 numpy arrays."""
    from peft import get_peft_model_state_dict

    return {k: v.detach().float().cpu().numpy() for k, v in get_peft_model_state_dict(model).items()}


def apply_adapters(model, adapters: list[tuple[LoraSFTConfig, dict[str, np.ndarray]]]):
    """Rebuild a fine-tuned model from its base: each (config, weights) adapter in turn is added and loaded, and
    every adapter before the last is merged first (as ``dpo`` merges the SFT adapter before adding its own)."""
    import torch
    from peft import set_peft_model_state_dict

    for i, (cfg, weights) in enumerate(adapters):
        if i:
            model = model.merge_and_unload()
        model = add_lora(model, cfg)
        result = set_peft_model_state_dict(model, {k: torch.from_numpy(v) for k, v in weights.items()})
        if getattr(result, "unexpected_keys", None):
            bad = result.unexpected_keys[:3]
            raise DataError(f"adapter {i} does not fit the base model (unexpected weights {bad}); is it the same LLM?")
    model.eval()
    return model


def left_pad_embeds(seqs: list[Any]):
    """(inputs_embeds, attention_mask, position_ids) from (T_i, D) embedding sequences, left-padded with zeros to the
    longest, positions counted from each sequence's first real token: the batch form of prompts whose slots hold
    vectors instead of tokens (CoLLM, LLaRA)."""
    import torch

    width = max(len(e) for e in seqs)
    out = torch.zeros(len(seqs), width, seqs[0].shape[1])
    mask = torch.zeros(len(seqs), width, dtype=torch.long)
    for n, e in enumerate(seqs):
        out[n, width - len(e) :] = e
        mask[n, width - len(e) :] = 1
    return out, mask, (mask.cumsum(-1) - 1).clamp(min=0)


def answer_batch(tokenizer, prompts: list[str], answers: list[str], max_length: int):
    """(input_ids, attention_mask, labels) with right padding; labels are -100 except on answer tokens."""
    import torch

    if len(prompts) != len(answers):
        raise DataError(f"{len(prompts)} prompts but {len(answers)} answers")
    p_ids = []
    for p in prompts:
        ids = tokenizer(p)["input_ids"]
        p_ids.append(ids[-max_length:])
    a_ids = [tokenizer(a, add_special_tokens=False)["input_ids"] for a in answers]
    width = max(len(p) + len(a) for p, a in zip(p_ids, a_ids, strict=True))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    labels = torch.full((len(prompts), width), -100, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, (p, a) in enumerate(zip(p_ids, a_ids, strict=True)):
        seq = p + a
        ids[i, : len(seq)] = torch.tensor(seq)
        labels[i, len(p) : len(seq)] = torch.tensor(a)
        mask[i, : len(seq)] = 1
    return ids, mask, labels


def lora_sft(model, tokenizer, prompts: list[str], answers: list[str], cfg: LoraSFTConfig) -> tuple[Any, dict]:
    """Wrap ``model`` with LoRA and train it on the pairs; returns (peft model in eval mode, training log)."""
    import torch

    if not prompts:
        raise DataError("no training pairs for fine-tuning")
    torch.manual_seed(cfg.seed)
    model = add_lora(model, cfg)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr)
    rng = np.random.default_rng(cfg.seed + 1)
    log, t0, steps, tokens = [], time.perf_counter(), 0, 0
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        perm = rng.permutation(len(prompts))
        total = 0.0
        for s in range(0, len(perm), cfg.batch_size):
            idx = perm[s : s + cfg.batch_size]
            ids, mask, labels = answer_batch(
                tokenizer, [prompts[i] for i in idx], [answers[i] for i in idx], cfg.max_length
            )
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            steps += 1
            tokens += int(mask.sum())
        log.append({"epoch": epoch, "loss": total / len(prompts)})
    model.eval()
    seconds = time.perf_counter() - t0
    return model, {
        "epochs": cfg.epochs,
        "steps": steps,
        "train_seconds": seconds,
        "train_tokens_per_second": tokens / max(seconds, 1e-9),
        "log": log,
    }


def answer_logprobs(model, tokenizer, prompts: list[str], answers: list[str], max_length: int):
    """Summed log-probability of each answer given its prompt (a tensor with grad where the model has it)."""
    import torch

    ids, mask, labels = answer_batch(tokenizer, prompts, answers, max_length)
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
    target = labels[:, 1:]
    keep = target != -100
    logp = torch.log_softmax(logits, -1).gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (logp * keep).sum(-1)


@dataclass(frozen=True, kw_only=True)
class DPOConfig(LoraSFTConfig):
    beta: float = 0.1  # DPO temperature on the log-ratio margin
    lr: float = 1e-4


def dpo(model, tokenizer, prompts: list[str], chosen: list[str], rejected: list[str], cfg: DPOConfig):
    """Direct Preference Optimization (Rafailov et al. 2023) with a fresh LoRA on top of ``model``.

    ``model`` is the SFT model (a peft model is merged first); the reference policy is the same network with the
    new adapter disabled, so no second copy of the weights is held. Loss per pair:
    -log sigmoid(beta * ((log pi(c) - log ref(c)) - (log pi(r) - log ref(r)))). Returns (model, log).
    """
    import torch

    if not (len(prompts) == len(chosen) == len(rejected)) or not prompts:
        raise DataError("dpo needs equally many prompts, chosen and rejected answers (at least one)")
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    torch.manual_seed(cfg.seed)
    model = add_lora(model, cfg)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    rng = np.random.default_rng(cfg.seed + 2)
    log, t0, steps = [], time.perf_counter(), 0
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        total, acc = 0.0, 0.0
        perm = rng.permutation(len(prompts))
        for s in range(0, len(prompts), cfg.batch_size):
            idx = perm[s : s + cfg.batch_size]
            p = [prompts[i] for i in idx]
            c = [chosen[i] for i in idx]
            r = [rejected[i] for i in idx]
            with torch.no_grad(), model.disable_adapter():
                ref_c = answer_logprobs(model, tokenizer, p, c, cfg.max_length)
                ref_r = answer_logprobs(model, tokenizer, p, r, cfg.max_length)
            pol_c = answer_logprobs(model, tokenizer, p, c, cfg.max_length)
            pol_r = answer_logprobs(model, tokenizer, p, r, cfg.max_length)
            margin = cfg.beta * ((pol_c - ref_c) - (pol_r - ref_r))
            loss = -torch.nn.functional.logsigmoid(margin).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            acc += float((margin.detach() > 0).sum())
            steps += 1
        log.append({"epoch": epoch, "loss": total / len(prompts), "reward_accuracy": acc / len(prompts)})
    model.eval()
    return model, {"epochs": cfg.epochs, "steps": steps, "train_seconds": time.perf_counter() - t0, "log": log}
