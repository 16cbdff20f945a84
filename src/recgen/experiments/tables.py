"""Markdown tables built from results files: the main results table and one table per study or comparison.

Every figure in ``benchmarks/RESULTS.md`` and the README's generated blocks comes from one of these builders,
applied to the JSON files ``recgen bench`` and the studies wrote; nothing here holds a number of its own except
the published rows (``published.py``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from recgen.experiments.published import PUBLISHED
from recgen.experiments.results import fit_seconds_cell

DATASET_ORDER = ["ml-100k", "beauty", "sports", "toys", "yelp", "lastfm"]


COLS = ("recall@5", "ndcg@5", "recall@10", "ndcg@10", "mrr")


def _fmt(result: dict[str, Any], key: str) -> str:
    v = result["test"].get(key)
    if v is None:
        return "–"
    s = result.get("test_std", {}).get(key, 0.0)
    return f"{v:.4f} ± {s:.4f}" if len(result.get("seeds", [])) > 1 else f"{v:.4f}"


def _speed(v: float) -> str:
    """Users/s: whole numbers when fast, three significant digits for the slow LLM rows (0.16, not 0)."""
    return f"{v:.0f}" if v >= 100 else f"{v:.3g}"


def _config_str(cfg: dict[str, Any], model: str | None = None) -> str:
    """The fields that differ from the model's defaults (all fields if the model is unknown)."""
    defaults: dict[str, Any] = {}
    if model is not None:
        try:
            from recgen.config import to_dict
            from recgen.models.registry import get_model_class

            defaults = to_dict(get_model_class(model).Config())
        except Exception:  # noqa: BLE001 - a results file from a model this version lacks
            defaults = {}
    shown = [f"{k}={v}" for k, v in cfg.items() if k != "seed" and (k not in defaults or defaults[k] != v)]
    return ", ".join(shown) or "defaults"


def protocol_label(p: dict[str, Any]) -> str:
    """Short protocol name for table rows: '' for leave-one-out, e.g. 'temporal 7:1:2' otherwise."""
    name = p.get("name", "?")
    users = f"{p['eval_users']} seeded test users" if p.get("eval_users") else ""
    if name in ("leave-one-out", "loo"):
        return users
    if "valid_frac" in p:
        v, t = p["valid_frac"], p["test_frac"]
        name = f"{name} {round(10 * (1 - v - t))}:{round(10 * v)}:{round(10 * t)}"
    return f"{name}, {users}" if users else name


def _sort_key(r: dict[str, Any]) -> tuple:
    d = r["dataset"]
    return (
        DATASET_ORDER.index(d) if d in DATASET_ORDER else len(DATASET_ORDER),
        d,
        protocol_label(r["protocol"]),
        r["model"],
        _config_str(r["config"], r["model"]),
    )


def _seeds_cell(r: dict[str, Any]) -> str:
    """Seeds run; a file with fewer than planned (an interrupted run, or seeds run apart with --only-seed) says so."""
    n, planned = len(r["seeds"]), r.get("seeds_planned", len(r["seeds"]))
    return str(n) if n >= planned else f"{n} of {planned} planned"


def below_pop_note(r: dict[str, Any], results: list[dict[str, Any]]) -> str:
    """``", below Pop"`` when the run's test NDCG@10 is below Pop's on the same split and users; for a run on a
    user subsample with no Pop run on it, against Pop on all users of that split (said so). ``""`` otherwise."""
    if r["model"] == "pop":
        return ""
    label = protocol_label(r["protocol"])
    pops = [p for p in results if p["model"] == "pop" and p["dataset"] == r["dataset"]]
    same = [p for p in pops if protocol_label(p["protocol"]) == label]
    if same:
        return ", below Pop" if r["test"]["ndcg@10"] < same[0]["test"]["ndcg@10"] else ""
    full = {**r["protocol"], "eval_users": 0}
    whole = [p for p in pops if protocol_label(p["protocol"]) == protocol_label(full)]
    if whole and r["test"]["ndcg@10"] < whole[0]["test"]["ndcg@10"]:
        return ", below Pop on all users"
    return ""


def results_table(results: list[dict[str, Any]], *, with_published: bool = True) -> str:
    """Markdown table of test metrics (mean ± std over seeds), with published rows beside ours."""
    lines = [
        "| dataset | model | config | seeds | R@5 | N@5 | R@10 | N@10 | MRR | eval users/s | fit s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    by_dataset: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in sorted(results, key=_sort_key):
        by_dataset.setdefault((r["dataset"], protocol_label(r["protocol"])), []).append(r)
    for (dataset, proto), rows in by_dataset.items():
        label = f"{dataset} ({proto})" if proto else dataset
        for r in rows:
            conf = _config_str(r["config"], r["model"])
            if r.get("grid"):
                conf += f" ({', '.join(r['grid']['chosen'])} chosen on validation)"
            cells = [label, f"**{r['model']}** (recgen{below_pop_note(r, results)})", conf, _seeds_cell(r)]
            cells += [_fmt(r, c) for c in COLS]
            if by_device := r.get("throughput_by_device"):  # seeds on several devices: their speeds apart
                speed = " / ".join(f"{d} {_speed(v['eval_users_per_second'])}" for d, v in by_device.items())
            else:
                speed = _speed(r["throughput"]["eval_users_per_second"])
            cells += [speed, fit_seconds_cell(r)]
            lines.append("| " + " | ".join(cells) + " |")
        if with_published and not proto:
            for p in PUBLISHED:
                if p["dataset"] == dataset:
                    cells = [dataset, f"{p['model']} (published: {p['source']})", "", ""]
                    cells += [f"{p[c]:.4f}" if c in p else "–" for c in COLS] + ["", ""]
                    lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


VARIANTS_INTRO = (
    "`recgen bench --decode-variant`: each seed's fitted model evaluated on test again with decode-time fields "
    "changed (TIGER: trie-constrained or free beam search, beam width); invalid-ID rate = finished beams that name "
    "no item."
)


H2H_INTRO = "Each model's run with the most seeds (ties: the better validation NDCG@10); leave-one-out, all users."


def head_to_head_table(results: list[dict[str, Any]], a: str = "hstu", b: str = "sasrec") -> str:
    """Model ``a`` against model ``b`` per dataset (leave-one-out, all users): for each model the run with the most
    seeds, ties broken by validation NDCG@10 (never by test), then test NDCG@10 / Recall@10 side by side and a
    count of the datasets where ``a`` is at least as good."""

    def pick(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
        rows = [r for r in rows if r.get("valid")]
        return max(rows, key=lambda r: (len(r["seeds"]), r["valid"].get("ndcg@10", 0.0)), default=None)

    lines = [
        f"| dataset | {a} config | seeds | {a} R@10 | {a} N@10 | {b} config | seeds | {b} R@10 | {b} N@10 | "
        f"N@10 {a} - {b} |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    wins = total = 0
    close: list[str] = []  # behind by no more than the larger seed std of the two (both with >= 2 seeds)
    order = {d: i for i, d in enumerate(DATASET_ORDER)}
    datasets = sorted({r["dataset"] for r in results}, key=lambda d: (order.get(d, len(order)), d))
    for d in datasets:
        rows = [r for r in results if r["dataset"] == d and protocol_label(r["protocol"]) == ""]
        ra, rb = pick([r for r in rows if r["model"] == a]), pick([r for r in rows if r["model"] == b])
        if ra is None or rb is None:
            continue
        diff = ra["test"]["ndcg@10"] - rb["test"]["ndcg@10"]
        total += 1
        wins += diff >= 0
        if diff < 0 and min(len(ra["seeds"]), len(rb["seeds"])) >= 2:
            spread = max(ra.get("test_std", {}).get("ndcg@10", 0.0), rb.get("test_std", {}).get("ndcg@10", 0.0))
            if -diff <= spread:
                close.append(d)
        lines.append(
            f"| {d} | {_config_str(ra['config'], a)} | {_seeds_cell(ra)} | {_fmt(ra, 'recall@10')} | "
            f"{_fmt(ra, 'ndcg@10')} | {_config_str(rb['config'], b)} | {_seeds_cell(rb)} | {_fmt(rb, 'recall@10')} | "
            f"{_fmt(rb, 'ndcg@10')} | {diff:+.4f} |"
        )
    if not total:
        return ""
    summary = f"{a} >= {b} on test NDCG@10 on {wins} of {total} datasets."
    if close:
        summary += (
            f" Behind by no more than the larger seed standard deviation of the two (a tie at this many seeds) on: "
            f"{', '.join(close)}."
        )
    return "\n".join(lines) + "\n\n" + summary


def _variant_row(r: dict[str, Any], label: str, entries: list[dict[str, Any]]) -> str:
    mean = {k: sum(e["test"][k] for e in entries) / len(entries) for k in ("recall@10", "ndcg@10")}
    rates = [e.get("run_info", {}).get("stats", {}).get("invalid_rate") for e in entries]
    rate = f"{sum(rates) / len(rates):.4f}" if None not in rates else "–"
    ups = sum(e["eval_users_per_second"] for e in entries) / len(entries)
    cells = [r["dataset"], r["model"], _config_str(r["config"], r["model"]), label, str(len(entries))]
    cells += [f"{mean['recall@10']:.4f}", f"{mean['ndcg@10']:.4f}", rate, _speed(ups)]
    return "| " + " | ".join(cells) + " |"


def variants_table(results: list[dict[str, Any]]) -> str:
    """Runs evaluated again with decode-time fields changed (``bench --decode-variant``): the run's own decoding
    first, then each variant, seed means; '' when no run has variants."""
    lines = []
    for r in sorted(results, key=_sort_key):
        seeds = [e for e in r.get("per_seed", []) if e.get("test_variants")]
        if not seeds:
            continue
        lines.append(_variant_row(r, "as run", seeds))
        for label in seeds[0]["test_variants"]:
            entries = [e["test_variants"][label] for e in seeds if label in e["test_variants"]]
            lines.append(_variant_row(r, label, entries))
    if not lines:
        return ""
    head = "| dataset | model | config | decoding | seeds | R@10 | N@10 | invalid-ID rate | eval users/s |"
    return "\n".join([head, "|---|---|---|---|---|---|---|---|---|", *lines])


TOKENIZERS_INTRO = (
    "TIGER over each item tokenizer with everything else equal (same data, recipe and seeds); best test NDCG@10 "
    "first. Free search: the same fitted weights decoded without the trie (`--decode-variant constrained=false`); "
    "the invalid-ID rate is the share of its finished beams that name no item (0 with the trie). Codebook columns "
    "from the tokenizer fitted for the run (seed 0): codes per level, perplexity per level (256 = every code used "
    "equally), share of items that collided before the extra level."
)


def tokenizer_table(results: list[dict[str, Any]]) -> str:
    """TIGER runs that differ only in ``tokenizer`` (same dataset, protocol and every other config field), side by
    side; '' when no dataset has two tokenizers at one recipe."""
    groups: dict[tuple[tuple, str], list[dict[str, Any]]] = {}
    for r in results:
        if r["model"] != "tiger" or protocol_label(r["protocol"]) or not r.get("per_seed"):
            continue
        rest = {k: v for k, v in r["config"].items() if k not in ("tokenizer", "seed")}
        groups.setdefault((_sort_key(r)[:2], json.dumps(rest, sort_keys=True)), []).append(r)
    lines = []
    for ((_, dataset), _), rows in sorted(groups.items()):
        if len({r["config"]["tokenizer"] for r in rows}) < 2:
            continue
        recipe = _config_str({k: v for k, v in rows[0]["config"].items() if k != "tokenizer"}, "tiger")
        for r in sorted(rows, key=lambda r: -r["test"]["ndcg@10"]):
            tok = r["per_seed"][0].get("run_info", {}).get("tokenizer", {})
            variants = [e.get("test_variants", {}) for e in r["per_seed"]]
            free = [v["constrained=false"] for v in variants if "constrained=false" in v]
            free_ndcg = f"{sum(f['test']['ndcg@10'] for f in free) / len(free):.4f}" if free else "–"
            rates = [f.get("run_info", {}).get("stats", {}).get("invalid_rate") for f in free]
            rate = f"{sum(rates) / len(rates):.4f}" if free and None not in rates else "–"
            perp = tok.get("perplexity") or []
            coll = tok.get("collision_rate")
            cells = [
                dataset,
                recipe,
                f"**{r['config']['tokenizer']}**",
                _seeds_cell(r),
                _fmt(r, "recall@10"),
                _fmt(r, "ndcg@10"),
                free_ndcg,
                rate,
                "/".join(str(v) for v in tok.get("levels", [])) or "–",
                "/".join(f"{v:.0f}" for v in perp) or "–",
                f"{coll:.4f}" if coll is not None else "–",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    if not lines:
        return ""
    head = (
        "| dataset | recipe | tokenizer | seeds | R@10 | N@10 | free search N@10 | free invalid-ID rate "
        "| codes per level | perplexity | collisions |"
    )
    return "\n".join([head, "|---|---|---|---|---|---|---|---|---|---|---|", *lines])


def scaling_table(results: list[dict[str, Any]]) -> str:
    """Model size vs test metrics, compute and speed (for the scaling study's results); the settings that differ
    from the model's defaults and the seeds name each row (compute and speed: the first seed's)."""
    lines = [
        "| dataset | model | settings | embedding_dim | n_layers | non-embedding params | training FLOPs | "
        "best epoch | seeds | R@10 | N@10 | train samples/s | MFU |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows = [r for r in results if r.get("per_seed") and "non_embedding_parameters" in r["per_seed"][0]]
    for r in sorted(rows, key=lambda r: (r["dataset"], r["model"], r["per_seed"][0]["non_embedding_parameters"])):
        e = r["per_seed"][0]
        speed = e.get("train_speed", {})
        lines.append(
            f"| {r['dataset']} | {r['model']} | {_config_str(r['config'], r['model'])} | "
            f"{r['config'].get('embedding_dim')} | {r['config'].get('n_layers')} | "
            f"{e['non_embedding_parameters']:,} | {speed.get('train_flops', 0):.3g} | {e.get('best_epoch')} | "
            f"{_seeds_cell(r)} | {_fmt(r, 'recall@10')} | {_fmt(r, 'ndcg@10')} | "
            f"{speed.get('train_samples_per_second', 0):.0f} | {speed.get('mfu', 0):.3f} |"
        )
    return "\n".join(lines)


def is_tallrec_result(r: dict[str, Any]) -> bool:
    return r["schema"] == "recgen-llm/1" and r.get("task") == "tallrec"


def tallrec_table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| dataset | model (sha256) | prompt | seed | test samples | train samples | epochs | test AUC | "
        "zero-shot AUC | history like-rate AUC | item like-rate AUC (all train users) | both rates (logistic) | "
        "published (LLaMA-7B) | LoRA steps | train s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        pub = {int(k): v for k, v in r.get("published", {}).get("auc", {}).items()}
        for run in r["runs"]:
            n = run["n_train"]
            sha = (r.get("model_sha256") or "")[:12]
            # files written before the per-item count hold a per-title rate (items whose titles repeat merged)
            per_title = "" if r["baselines"].get("item_like_rate_counted") == "per item" else " (per title)"
            both = r["baselines"].get("user_item_like_rate_auc")
            both = "–" if both is None else f"{both:.4f}"
            lines.append(
                f"| {r['dataset']} | {Path(r['model_file']).name} ({sha}) | {r.get('prompt_template', '-')} | "
                f"{r['seed']} | {r.get('n_test', '-')} | {n} | {run.get('epochs', '-')} | {run['test_auc']:.4f} | "
                f"{r['zero_shot_auc']:.4f} | {r['baselines']['history_like_rate_auc']:.4f} | "
                f"{r['baselines']['item_like_rate_auc']:.4f}{per_title} | {both} | "
                f"{f'{pub[n]:.4f}' if n in pub else '–'} | "
                f"{run['steps']} | {run['train_seconds']:.0f} |"
            )
    return "\n".join(lines)


def is_bigrec_study(r: dict[str, Any]) -> bool:
    return r["schema"] == "recgen-llm/1" and r.get("task") == "bigrec"


def bigrec_table(results: list[dict[str, Any]]) -> str:
    """Each BIGRec stage and grounding beside the retrievers fitted on the same seeded users."""
    lines = [
        "| dataset | users | model (sha256) | stage | grounding | R@10 | N@10 | out-of-catalogue | "
        "true title log-prob / token | s / user | SFT pairs / steps | DPO pairs |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        sha = (r.get("model_sha256") or "")[:12]
        tr = r.get("train", {})
        dpo = tr.get("dpo", {}).get("pairs", "-")
        for name, b in r.get("retrievers", {}).items():
            lines.append(
                f"| {r['dataset']} | {r['n_test']} | {name} (same users) | - | - | {b['test']['recall@10']:.4f} | "
                f"{b['test']['ndcg@10']:.4f} | - | - | - | - | - |"
            )
        pop = r.get("retrievers", {}).get("pop")
        for st in r["stages"]:
            ooc = st["stats"].get("out_of_catalogue_rate", 0.0)
            below = " (below Pop)" if pop and st["test"]["ndcg@10"] < pop["test"]["ndcg@10"] else ""
            lines.append(
                f"| {r['dataset']} | {r['n_test']} | {Path(r['model_file']).name} ({sha}) | {st['stage']}{below} | "
                f"{st['grounding']} | {st['test']['recall@10']:.4f} | {st['test']['ndcg@10']:.4f} | {ooc:.3f} | "
                f"{st['target_logprob_per_token']:.3f} | {st['seconds_per_user']:.1f} | "
                f"{tr.get('pairs', '-')} / {tr.get('steps', '-')} | {dpo if st['stage'] != 'sft' else '-'} |"
            )
    return "\n".join(lines)


def is_codebook_result(r: dict[str, Any]) -> bool:
    return r["schema"] == "recgen-codebooks/1"


def codebook_table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| dataset | items | tokenizer | item vectors | code levels (sizes) | perplexity per level | "
        "collision rate (before extra level) | reconstruction error | dead-code restarts | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for t in r["tokenizers"]:
            ppl = " / ".join(f"{p:.1f}" for p in t["perplexity"])
            vec = "-" if t["tokenizer"] == "id" else t["embeddings"]
            lines.append(
                f"| {r['dataset']} | {r['n_items']} | {t['tokenizer']} | {vec} | {t['level_sizes']} | {ppl} | "
                f"{t['collision_rate']:.4f} | {t['reconstruction_mse']:.4f} | {t.get('dead_code_restarts', '-')} | "
                f"{t['seconds']:.0f} |"
            )
    return "\n".join(lines)


def _commands(results: list[dict[str, Any]]) -> list[str]:
    """The commands behind a study's rows, once each: a file whose rows name their own (a codebook study grown
    over several runs) lists those, else the file's."""
    out: list[str] = []
    for r in results:
        for c in [t.get("command") for t in r.get("tokenizers", [])] or [r["command"]]:
            c = c or r["command"]
            if c not in out:
                out.append(c)
    return out


def protocols_section(results: list[dict[str, Any]]) -> str:
    protos = sorted({r["protocol"].get("description", "") for r in results})
    return "\n".join(f"- {p}" for p in protos)


def is_injection_study(r: dict[str, Any]) -> bool:
    return r["schema"] == "recgen-llm/1" and r.get("task") == "injection"


def injection_table(results: list[dict[str, Any]]) -> str:
    """The planted item's exposure under each catalogue (clean, injected as is, injected and neutralised)."""
    lines = [
        "| dataset | users | planted item | condition | exposure@1 | exposure@5 | mean rank | R@10 | N@10 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for c in r["conditions"]:
            lines.append(
                f"| {r['dataset']} | {r['protocol']['users']} | {r['planted_item']} | {c['condition']} | "
                f"{c['exposure@1']:.3f} | {c['exposure@5']:.3f} | {c['mean_rank']:.2f} | {c['test_recall@10']:.4f} | "
                f"{c['test_ndcg@10']:.4f} |"
            )
    return "\n".join(lines)
