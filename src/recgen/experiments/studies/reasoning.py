"""The ReaRec table: SASRec and HSTU with and without latent reasoning, K chosen on validation.

The runs are plain ``recgen bench`` results in one folder (``benchmarks/results/reasoning/``): the same recipe with
``reason_steps=0`` (the model without reasoning) and with ``reason_steps=K`` under each scheme. For each dataset,
model and scheme, the K with the best mean validation NDCG@10 over its seeds is the chosen one (marked; a K run
only with ``reason_score=valid`` competes with its trained state's validation figure, recorded per seed); its test
figures are read against the same model without reasoning. "scored with" names the state the test ranking used
(``reason_score``): the scheme's own (ERL's mean of h_0..h_K, PRL's h_K), the one validation chose after training
on each seed (``reason_score=valid``; it competes for K only where its K has no run of its own), or a state named
for the same weights (``--decode-variant reason_score=h0``: a test-only row, no validation). The test ranking's
users per second (all seeds' mean) and its ratio to the model without reasoning come from runs that may have shared
the machine with different loads; ``benchmarks/reasoning_cost.py`` measures the cost against K interleaved in one
process (its own table).
"""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any

from recgen.experiments.results import fit_seconds_cell, is_bench_result
from recgen.models.sequential.reasoning import trained_state

TITLE = "latent reasoning (ReaRec) on SASRec-CE and HSTU, K chosen on validation"
INTRO = (
    "one recipe per dataset and model, with and without reasoning; chosen = best mean validation NDCG@10; users/s "
    "from runs under different load (the cost table below is the like-for-like measure)."
)


def is_reasoning_result(r: dict[str, Any]) -> bool:
    return is_bench_result(r) and r["model"] in ("sasrec", "hstu")


def _variant(r: dict[str, Any]) -> tuple[str, int]:
    k = int(r["config"].get("reason_steps", 0))
    return ("none" if k == 0 else r["config"].get("reason_scheme", "erl")), k


def _scored(r: dict[str, Any]) -> str:
    """The state a results file's test ranking used: the scheme's (its name), or validation's choice per seed."""
    scheme, k = _variant(r)
    score = r["config"].get("reason_score", "trained")
    if score == "trained":
        return trained_state(k, scheme) if k else "–"
    if score != "valid":
        return score
    chosen = Counter(e.get("run_info", {}).get("reason_state", "?") for e in r.get("per_seed", []))
    return "valid's choice: " + ", ".join(f"{name} x{n}" for name, n in sorted(chosen.items()))


def _state_variants(r: dict[str, Any]) -> list[tuple[str, dict[str, Any], int, float]]:
    """Test-only rows of ``--decode-variant reason_score=STATE`` on every seed of a file: (state, mean test metrics,
    seeds, mean users/s) with the seeds' standard deviation under ``_std``."""
    seeds = r.get("per_seed", [])
    labels = [lab for lab in (seeds[0].get("test_variants", {}) if seeds else {}) if lab.startswith("reason_score=")]
    out = []
    for lab in labels:
        runs = [e["test_variants"][lab] for e in seeds if lab in e.get("test_variants", {})]
        if len(runs) != len(seeds):
            continue
        test = {m: statistics.fmean(x["test"][m] for x in runs) for m in ("recall@10", "ndcg@10")}
        if len(runs) > 1:
            test["_std"] = {m: statistics.stdev(x["test"][m] for x in runs) for m in ("recall@10", "ndcg@10")}
        ups = statistics.fmean(x.get("eval_users_per_second") or 0.0 for x in runs)
        state = lab.removeprefix("reason_score=")
        out.append((trained_state(*_variant(r)[::-1]) if state == "trained" else state, test, len(runs), ups))
    return out


def _against_none(test: dict[str, float], ups: float, b: dict[str, Any] | None, k: int) -> tuple[str, str]:
    """The test NDCG@10 change and users/s ratio against the row without reasoning ``b`` ("–" for none)."""
    if b is None or not k:
        return "–", "–"
    d = test["ndcg@10"] - b["test"]["ndcg@10"]
    bu = b["throughput"].get("eval_users_per_second") or 0.0
    return f"{d:+.4f} ({d / b['test']['ndcg@10']:+.1%})", f"x{ups / bu:.2f}" if bu else "–"


def _users_per_s(ups: float) -> str:
    """A users/s cell: "–" where the file has no single figure (seeds run on different devices)."""
    return f"{ups:.0f}" if ups else "–"


def mean_std(mean: float, std: float | None, n: int) -> str:
    return f"{mean:.4f} ± {std:.4f}" if n > 1 and std is not None else f"{mean:.4f}"


def chosen_k(rs: list[dict[str, Any]]) -> dict[tuple[str, str, str], int]:
    """(dataset, model, scheme) -> the K with the best mean validation NDCG@10 of the scheme's own state, among the
    runs with the most seeds (a run still missing seeds does not compete with finished ones). A K run only with
    ``reason_score=valid`` competes with its seeds' validation figure for the trained state (``run_info``)."""
    cands: dict[tuple[str, str, str, int], tuple[int, float, bool]] = {}
    for r in rs:
        scheme, k = _variant(r)
        if k == 0:
            continue
        trained = _trained_scored(r)
        valid = r["valid"]["ndcg@10"] if trained else _trained_state_valid(r, k, scheme)
        key, cand = (r["dataset"], r["model"], scheme, k), (len(r["seeds"]), valid, trained)
        if valid is not None and (key not in cands or (trained, *cand[:2]) > (cands[key][2], *cands[key][:2])):
            cands[key] = cand  # a trained-scored run over a re-scored one; then more seeds, then validation
    best: dict[tuple[str, str, str], tuple[int, float, int]] = {}
    for (dataset, model, scheme, k), (n, valid, _) in cands.items():
        if (dataset, model, scheme) not in best or (n, valid) > best[dataset, model, scheme][:2]:
            best[dataset, model, scheme] = (n, valid, k)
    return {key: k for key, (_, _, k) in best.items()}


def _trained_state_valid(r: dict[str, Any], k: int, scheme: str) -> float | None:
    """A re-scored run's mean validation NDCG@10 of the scheme's own state over its seeds (None if unrecorded)."""
    name = trained_state(k, scheme)
    values = [s.get("run_info", {}).get("valid_by_state", {}).get(name) for s in r.get("per_seed", [])]
    if not values or any(v is None for v in values):
        return None
    return statistics.fmean(values)


def _trained_scored(r: dict[str, Any]) -> bool:
    """Whether a results file's test ranking used the scheme's own state (the run of its K, not a re-scoring)."""
    return r["config"].get("reason_score", "trained") == "trained"


def _has_trained_run(rs: list[dict[str, Any]], r: dict[str, Any]) -> bool:
    return any(
        o["dataset"] == r["dataset"] and o["model"] == r["model"] and _variant(o) == _variant(r) and _trained_scored(o)
        for o in rs
    )


def reasoning_table(rs: list[dict[str, Any]]) -> str:
    rs = [r for r in rs if is_reasoning_result(r)]
    chosen = chosen_k(rs)
    base = {(r["dataset"], r["model"]): r for r in rs if _variant(r)[1] == 0}
    head = (
        "| dataset | model | reasoning | K | chosen | scored with | seeds | valid N@10 | test R@10 | test N@10 | "
        "N@10 vs none | fit (s) | test users/s (x none) |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    lines, notes = [head], []
    order = {"none": 0, "erl": 1, "prl": 2}
    scores = {"trained": 0, "valid": 1}

    def key(r: dict[str, Any]):
        scheme, k = _variant(r)
        return r["dataset"], r["model"], order[scheme], k, scores.get(r["config"].get("reason_score", "trained"), 2)

    for r in sorted(rs, key=key):
        scheme, k = _variant(r)
        n = len(r["seeds"])
        b = base.get((r["dataset"], r["model"]))
        ups = r["throughput"].get("eval_users_per_second") or 0.0
        delta, ratio = _against_none(r["test"], ups, b, k)
        marked = _trained_scored(r) or not _has_trained_run(rs, r)  # the K's own run, or its lone re-scored run
        mark = "✓" if k and marked and chosen.get((r["dataset"], r["model"], scheme)) == k else ""
        std = r.get("test_std") or {}
        label = scheme.upper() if k else "none"
        lines.append(
            f"| {r['dataset']} | {r['model']} | {label} | {k} | {mark} | {_scored(r)} | {n} | "
            f"{r['valid']['ndcg@10']:.4f} | {mean_std(r['test']['recall@10'], std.get('recall@10'), n)} | "
            f"{mean_std(r['test']['ndcg@10'], std.get('ndcg@10'), n)} | {delta} | "
            f"{fit_seconds_cell(r, 0)} | {_users_per_s(ups)} ({ratio}) |"
        )
        for state, test, nv, vups in _state_variants(r):  # the same weights scored with a named state, test only
            vstd = test.get("_std", {})
            delta, ratio = _against_none(test, vups, b, k)
            lines.append(
                f"| {r['dataset']} | {r['model']} | {label} | {k} |  | {state} (same weights) | {nv} | – | "
                f"{mean_std(test['recall@10'], vstd.get('recall@10'), nv)} | "
                f"{mean_std(test['ndcg@10'], vstd.get('ndcg@10'), nv)} | {delta} | – | {_users_per_s(vups)} ({ratio}) |"
            )
        if b is not None and k and b["config"].get("max_seq_len") != r["config"].get("max_seq_len"):
            notes.append(f"{r['dataset']} {r['model']} K={k}: another max_seq_len than the row without reasoning")
    return "\n".join(lines + ([""] + [f"- {x}" for x in notes] if notes else []))


COST_TITLE = "inference cost of latent reasoning against K"
COST_INTRO = "every test user scored, K values interleaved in one process; ratio = median time over K = 0's."


def is_reasoning_cost(r: dict[str, Any]) -> bool:
    return r.get("schema") == "recgen-reasoning-cost/1"


def reasoning_cost_table(rs: list[dict[str, Any]]) -> str:
    """``benchmarks/reasoning_cost.py`` files: milliseconds per user and the ratio to K = 0, per base model."""
    lines = ["| dataset | model | K | ms per user | x K = 0 | users | max_seq_len |", "|---|---|---|---|---|---|---|"]
    for r in rs:
        for row in r["rows"]:
            lines.append(
                f"| {r['dataset']} | {row['model']} | {row['reason_steps']} | {row['ms_per_user']:.2f} | "
                f"x{row['ratio_to_k0']:.2f} | {r['users']} | {r['config'].get('max_seq_len', '50 (default)')} |"
            )
    return "\n".join(lines)


STATES_TITLE = "which state of a trained ERL run carries the ranking"
STATES_INTRO = (
    "one run's best weights scored with each state alone (h0 = the encoder without reasoning, hk = step k) and with "
    "the mean of h0..hk (ERL's own state at k = K); every validation and test user."
)


def is_reasoning_states(r: dict[str, Any]) -> bool:
    return r.get("schema") == "recgen-reasoning-states/1"


def reasoning_states_table(rs: list[dict[str, Any]]) -> str:
    """``benchmarks/reasoning_states.py`` files: NDCG@10 / Recall@10 per state, against h0 of the same weights."""
    lines = [
        "| dataset | model | K | seed | best epoch | state | valid N@10 | test R@10 | test N@10 | test N@10 vs h0 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rs:
        h0 = next(row for row in r["rows"] if row["state"] == "h0")["test"]["ndcg@10"]
        for row in r["rows"]:
            d = row["test"]["ndcg@10"] - h0
            lines.append(
                f"| {r['dataset']} | {r['model']} | {r['config']['reason_steps']} | {r['config']['seed']} | "
                f"{r['best_epoch']} | {row['state']} | {row['valid']['ndcg@10']:.4f} | "
                f"{row['test']['recall@10']:.4f} | {row['test']['ndcg@10']:.4f} | "
                f"{'–' if row['state'] == 'h0' else f'{d:+.4f} ({d / h0:+.1%})'} |"
            )
    return "\n".join(lines)
