"""``recgen llm llara``: LLaRA (hybrid item tokens) beside the text-only LLM with the same LoRA budget, the
SASRec-CE whose item table LLaRA reads, and popularity, all on the same seeded test users and the same 20
candidates per user (the target and 19 items the user has not seen); ValidRatio and HitRatio@1."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from recgen.config import make_config
from recgen.data.dataset import title_map
from recgen.data.loaders import load_dataset
from recgen.data.split import make_split
from recgen.experiments.bench import restrict_eval_users
from recgen.experiments.results import git_commit, provenance, write_json
from recgen.io import path_sha256
from recgen.llm.files import model_label
from recgen.llm.safety import neutralize
from recgen.models.llm.llara import PROMPT_VERSION, LLaRA, LLaRAConfig, eval_samples, training_samples
from recgen.models.registry import create_model

# LLaRA's own figures (ljy0ustc/LLaRA README, July 2024 update): Llama2-7B with SASRec embeddings, their splits
PUBLISHED = {
    "ml-100k": {"dataset": "MovieLens-100K (LLaRA's split)", "hr1_of_valid": 0.4526, "valid_ratio": 0.9789},
    "lastfm": {"dataset": "LastFM (LLaRA's split)", "hr1_of_valid": 0.5246, "valid_ratio": 0.9754},
}
SASREC_DEFAULTS = {"epochs": 60, "eval_every": 5, "patience": 3, "max_seq_len": 50}


def _titles(ds, word: str) -> list[str]:
    """Titles by dense item id (neutralised); an item without one is named by its kind and external id."""
    names = title_map(ds.item_table)
    ext = ds.items.external(np.arange(1, ds.items.size))
    return [""] + [neutralize(names[str(e)])[0] if str(e) in names else f"{word} {e}" for e in ext]


def _candidate_hr1(model, samples) -> float:
    """HitRatio@1 of a harness model ranking each sample's candidates by its full-history scores."""
    hits = []
    for s, h in samples:
        scores = model.score(np.array([s.user]), [h])[0].numpy()
        c = np.array(s.candidates)
        hits.append(c[np.argmax(scores[c])] == s.target)  # ties: the first listed, as an argmax does
    return float(np.mean(hits))


def run_llara_study(
    dataset: str,
    *,
    llm: str = "smollm2",
    n_test: int = 200,
    variants: tuple[str, ...] = ("text", "linear"),
    sasrec_sets: dict[str, Any] | None = None,
    save: str | None = None,
    sets: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    out_dir: str = "benchmarks/results/llm",
    command: str | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    from recgen.llm.hf import load_hf

    cfg = make_config(LLaRAConfig, sets or {})
    commit = git_commit()
    ds = load_dataset(dataset, **(data or {}))
    if "item_word" not in (sets or {}) and ds.name != "ml-100k":
        cfg = dataclasses.replace(cfg, item_word="artist" if ds.name == "lastfm" else "item")
    split = make_split(ds, "leave-one-out")
    restrict_eval_users(split, n_test)
    log(f"{ds.name}: {split.describe()}")
    t0 = time.perf_counter()
    sasrec = create_model("sasrec", **{**SASREC_DEFAULTS, **(sasrec_sets or {})})
    sasrec.fit(split.train, valid=split.valid)
    sasrec_s = time.perf_counter() - t0
    vectors = sasrec._inference_net().item_embeddings().detach().float().numpy()
    titles = _titles(ds, cfg.item_word)
    n_items = ds.items.size - 1
    sequences = [sasrec.train_history(u) for u in range(ds.users.size)]
    train = training_samples(sequences, n_items, cfg)
    te = split.test
    hist = te.histories(np.arange(len(te)))
    test = eval_samples(te.user_ids, hist, [te.targets(i)[0] for i in range(len(te))], n_items, cfg, cfg.seed + 7)
    pairs = list(zip(test, hist, strict=True))
    pop = create_model("pop").fit(split.train)
    rows = [
        {"model": "pop", "kind": "counting", "hr1_scored": _candidate_hr1(pop, pairs)},
        {"model": "sasrec", "kind": "sequential (the item table LLaRA reads)",
         "hr1_scored": _candidate_hr1(sasrec, pairs), "fit_seconds": sasrec_s},
        {"model": "random", "kind": "chance", "hr1_scored": 1.0 / cfg.n_candidates},
    ]  # fmt: skip
    runs = {}
    for variant in variants:
        vcfg = dataclasses.replace(cfg, curriculum=variant)
        model, tok, path = load_hf(llm)
        t0 = time.perf_counter()
        m = LLaRA(model, tok, vectors, titles, vcfg).fit(train, log=log)
        fit_s = time.perf_counter() - t0
        hybrid = variant != "text"
        row = m.evaluate(test, hybrid=hybrid)
        label = "LLM text only (LoRA, same budget)" if not hybrid else f"LLaRA (curriculum {variant})"
        rows.append({"model": label, "kind": "LLM", "curriculum": variant, **row, "fit_seconds": fit_s})
        runs[variant] = m.info
        log(f"{label}: valid ratio {row['valid_ratio']:.3f}, HR@1 of valid {row['hr1_of_valid']:.4f}, "
            f"HR@1 {row['hr1']:.4f}, scored HR@1 {row['hr1_scored']:.4f}")  # fmt: skip
        if save and hybrid:
            m.save(save)
        del m, model
    published = PUBLISHED.get(ds.name)
    if published:
        rows.append({"model": "LLaRA, published (Llama2-7B, SASRec)", "kind": "published, another split and model",
                     **published})  # fmt: skip
    result = {
        "schema": "recgen-llara/1",
        "task": "llara",
        "dataset": ds.name,
        "dataset_fingerprint": ds.fingerprint(),
        "protocol": {
            **split.protocol,
            "description": split.describe(),
            "test_users": len(test),
            "candidates": cfg.n_candidates,
            "candidate_seed": cfg.seed + 7,
            "candidates_from": "items not in the user's history, uniformly, and the target",
        },  # fmt: skip
        "backend": "hf",
        "model_file": model_label(path),
        "model_sha256": path_sha256(path),
        "prompt_template": PROMPT_VERSION,
        "config": dataclasses.asdict(cfg),
        "sasrec_config": dataclasses.asdict(sasrec.config),
        "training": runs,
        "rows": rows,
        **provenance(commit, command),
    }
    out = Path(out_dir) / f"{ds.name}__llara__n{cfg.train_samples}__seed{cfg.seed}.json"
    result["_path"] = str(write_json(result, out))
    return result


def is_llara_result(r: dict[str, Any]) -> bool:
    return r.get("schema") == "recgen-llara/1"


def llara_table(results: list[dict[str, Any]]) -> str:
    """One row per model: ValidRatio and HitRatio@1 as LLaRA counts it (hits among valid answers), over every
    user, and by scoring each candidate's answer; models that only score show the last."""
    f = lambda v: f"{v:.4f}" if isinstance(v, float) else "–"  # noqa: E731
    lines = [
        "| dataset | model | kind | test users | ValidRatio | HR@1 of valid (LLaRA's) | HR@1, all users "
        "| HR@1, candidates scored | LLM samples (hybrid steps / steps) | fit (s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        n = r["protocol"]["test_users"]
        for row in r["rows"]:
            users = row.get("users", n) if "published" not in row["kind"] else "–"
            fit = f"{row['fit_seconds']:.0f}" if "fit_seconds" in row else "–"
            t = r["training"].get(row.get("curriculum"), {}).get("training")
            budget = f"{t['samples']} ({t['hybrid_steps']} / {t['steps']})" if t else "–"
            lines.append(
                f"| {r['dataset']} | {row['model']} | {row['kind']} | {users} | {f(row.get('valid_ratio'))} "
                f"| {f(row.get('hr1_of_valid'))} | {f(row.get('hr1'))} | {f(row.get('hr1_scored'))} "
                f"| {budget} | {fit} |"
            )
    return "\n".join(lines)
