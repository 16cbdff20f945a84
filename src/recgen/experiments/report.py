"""``recgen report``: ``benchmarks/RESULTS.md`` and the README's generated blocks, from the results JSON files only.

The README holds generated blocks between markers (``<!-- models:start -->`` ... ``<!-- models:end -->``); the
report rewrites each block's body and leaves every other line as it is. Running it on the committed results
files changes nothing (a test checks it), so a figure in the README can only come from a results file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from recgen.errors import DataError
from recgen.experiments.catalog import models_table
from recgen.experiments.results import (
    DEFAULT_RESULTS_DIR,
    is_bench_result,
    load_results,
    read_json_results,
    read_result,
)
from recgen.experiments.simulation_tables import (
    chat_served_block,
    chat_served_table,
    dialogue_table,
    explanations_table,
    fidelity_table,
    interactive_table,
    is_chat_served,
    is_dialogue,
    is_explanations,
    is_fidelity,
    is_interactive,
    is_personal_text,
    personal_text_table,
    simulation_block,
)
from recgen.experiments.studies.coldstart import coldstart_table, is_coldstart_result
from recgen.experiments.studies.ctr import ctr_table, is_ctr_result
from recgen.experiments.studies.llara import is_llara_result, llara_table
from recgen.experiments.studies.profiles import INTRO as PROFILES_INTRO
from recgen.experiments.studies.profiles import TITLE as PROFILES_TITLE
from recgen.experiments.studies.profiles import is_profiles_record, profiles_table
from recgen.experiments.studies.reasoning import (
    COST_INTRO,
    COST_TITLE,
    STATES_INTRO,
    STATES_TITLE,
    is_reasoning_cost,
    is_reasoning_result,
    is_reasoning_states,
    reasoning_cost_table,
    reasoning_states_table,
    reasoning_table,
)
from recgen.experiments.studies.reasoning import INTRO as REASONING_INTRO
from recgen.experiments.studies.reasoning import TITLE as REASONING_TITLE
from recgen.experiments.studies.scale import is_scale_result, is_speed_table, scale_table, speed_table
from recgen.experiments.studies.steps import dreamrec_scoring_table, is_dreamrec_scoring, is_steps_result, steps_table
from recgen.experiments.studies.text_items import (
    COLD_INTRO,
    COLD_TITLE,
    USER_COLD_INTRO,
    USER_COLD_TITLE,
    is_text_coldstart_result,
    is_text_items_result,
    is_user_coldstart_result,
    text_coldstart_table,
    text_items_table,
)
from recgen.experiments.studies.text_items import INTRO as TEXT_ITEMS_INTRO
from recgen.experiments.studies.text_items import TITLE as TEXT_ITEMS_TITLE
from recgen.experiments.tables import (
    H2H_INTRO,
    TOKENIZERS_INTRO,
    VARIANTS_INTRO,
    _commands,
    _sort_key,
    bigrec_table,
    codebook_table,
    head_to_head_table,
    injection_table,
    is_bigrec_study,
    is_codebook_result,
    is_injection_study,
    is_tallrec_result,
    protocols_section,
    results_table,
    scaling_table,
    tallrec_table,
    tokenizer_table,
    variants_table,
)
from recgen.io import atomic_write_text


def readme_blocks(results: list[dict[str, Any]], results_dir: str | Path) -> dict[str, str]:
    """Name -> Markdown body of each generated README block."""
    return {
        "models": models_table(results, results_dir),
        "load-scale": load_scale_sentence(results_dir),
        "serve-load": serve_load_table(results_dir),
        "serve-feedback": serve_feedback_table(results_dir),
        "simulation": simulation_block(results_dir),
        "chat-served": chat_served_block(results_dir),
    }


def serve_feedback_table(results_dir: str | Path) -> str:
    """Feedback acknowledged vs stored, with and without a kill -9 (``benchmarks/serve_feedback.py``), in one
    sentence."""
    path = Path(results_dir) / "speed" / "serve_feedback.json"
    if not path.is_file():
        return "(not measured yet: `python benchmarks/serve_feedback.py --out " + str(path) + "`)"
    rows = read_result(path)["rows"]
    runs = "; ".join(
        f"{r['store']}{' killed mid-burst' if r['killed_mid_burst'] else ''}: {r['acknowledged_events']} "
        f"acknowledged, {r['stored_events']} stored, {r['lost']} lost, {r['duplicated']} twice"
        for r in rows
    )
    return (f"Feedback under {rows[0]['clients']} concurrent clients, every tenth POST retried, the server killed by "
            f"SIGKILL midway in the second run of each store: {runs} (`{path.as_posix()}`).")  # fmt: skip


def serve_load_table(results_dir: str | Path) -> str:
    """The service's load test (``benchmarks/serve_load.py``) as a table."""
    path = Path(results_dir) / "speed" / "serve_load.json"
    if not path.is_file():
        return "(no load test yet: `python benchmarks/serve_load.py --out " + str(path) + "`)"
    r = read_result(path)
    lines = [
        "| model | clients | requests/s | p50 ms | p95 ms | p99 ms | errors |",
        "|---|---|---|---|---|---|---|",
        *[
            f"| {x['model']} | {x['clients']} | {x['requests_per_second']:.0f} | {x['p50_ms']:.0f} | {x['p95_ms']:.0f} "
            f"| {x['p99_ms']:.0f} | {x['errors']} |"
            for x in r["rows"]
        ],
    ]
    m = r["machine"]
    return "\n".join(lines) + (
        f"\n\nML-100K, recommend for random known users, {r['seconds_per_level']} s per level, {r['note']} "
        f"({m['cpu_count']} cores; `{path.as_posix()}`)."
    )


def load_scale_sentence(results_dir: str | Path) -> str:
    """The measured memory bound of loading a large file (``benchmarks/load_scale.py``), as one sentence."""
    path = Path(results_dir) / "speed" / "load_scale.json"
    if not path.is_file():
        return "(no load-scale measurement yet: `python benchmarks/load_scale.py --gb 1 --out " + str(path) + "`)"
    r = read_result(path)
    row = r["rows"][0]
    return (
        f"A {row['file_bytes'] / 1e9:.1f} GB CSV of {row['rows'] / 1e6:.0f}M interactions ({row['data']}) loads "
        f"with a peak of {row['peak_rss_bytes'] / 1e9:.1f} GB of memory ({row['peak_rss_over_file_size']:.1f}x the "
        f"file) in {row['seconds']:.0f} s on {r['machine']['cpu_count']} cores (`{path.as_posix()}`)."
    )


def fill_blocks(text: str, blocks: dict[str, str]) -> str:
    """``text`` with the body of every ``<!-- NAME:start -->`` ... ``<!-- NAME:end -->`` block replaced."""
    for name, body in blocks.items():
        start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
        block = f"{start}\n{body}\n{end}"
        text = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _, block=block: block, text, flags=re.S)
    return text


_UNREADABLE = (KeyError, TypeError, ValueError, IndexError, ZeroDivisionError)


def _tabulate(make_table, rs: list[dict[str, Any]]) -> str:
    """A study's table; a results file the table cannot read (a field missing or of another type, as an edited or
    foreign file has) is named in a one-line error, not a traceback."""
    try:
        return make_table(rs)
    except _UNREADABLE as exc:
        for r in rs:
            try:
                make_table([r])
            except _UNREADABLE as own:
                raise DataError(
                    f"{r.get('_path', 'a results file')}: its table cannot read it ({type(own).__name__}: {own}); "
                    "rerun the command stored in it, or move it out of the folder"
                ) from None
        raise DataError(f"the results of one table do not fit together ({type(exc).__name__}: {exc})") from None


def write_report(
    results_dir: str | Path = DEFAULT_RESULTS_DIR,
    out: str | Path = "benchmarks/RESULTS.md",
    readme: str | Path | None = "README.md",
) -> str:
    """Regenerate RESULTS.md (and the README's generated blocks) from the results files."""
    results = load_results(results_dir)
    table = results_table(results)
    peaks: dict[str, list[float]] = {}
    for m in (m for r in results for m in r.get("machines") or [r["machine"]]):  # a merged file: each machine
        device = m.get("device", "cpu")
        device = f"{m['gpu']} GPU" if device.startswith("cuda") and m.get("gpu") else device
        key = f"{m.get('cpu')} ({m.get('cpu_count')} cores, {device})"
        peaks.setdefault(key, []).append(m.get("matmul_peak_gflops") or 0.0)
    machines = [
        f"{k}: fp32 matmul peak {min(v):.0f}-{max(v):.0f} GFLOP/s measured in the runs" for k, v in peaks.items()
    ]
    body = "\n".join(
        [
            "# Benchmark results",
            "",
            "Generated by `recgen report` from the JSON files in `benchmarks/results/` (each holds the command that",
            "made it). Test metrics at the validation-chosen point, mean ± sample std over seeds; full-catalogue",
            "ranking with the user's history excluded; published rows are copied from ../shared/BENCHMARKS.md.",
            "",
            "Protocols:",
            protocols_section(results),
            "",
            table,
            "",
            *(["## HSTU vs SASRec-CE", "", H2H_INTRO, "", h2h, ""] if (h2h := head_to_head_table(results)) else []),
            *(
                ["## TIGER: item tokenizers compared", "", TOKENIZERS_INTRO, "", tt, ""]
                if (tt := tokenizer_table(results))
                else []
            ),  # fmt: skip
            *(
                ["## Decoding variants of the same fitted model", "", VARIANTS_INTRO, "", vt, ""]
                if (vt := variants_table(results))
                else []
            ),  # fmt: skip
            "Machines: " + "; ".join(machines),
            "",
            "Commands:",
            "",
            *[f"- `{r['command']}`" for r in sorted(results, key=_sort_key)],
            "",
        ]
    )
    # (is this study's schema, heading, intro line, table, sort of the command list)
    studies = [
        (is_tallrec_result, "TALLRec: LoRA few-shot preference tuning, test AUC", None, tallrec_table, None),
        (is_bigrec_study, "BIGRec: SFT, trie vs L2 grounding, DPO on top; leave-one-out", None, bigrec_table, None),
        (is_injection_study, "prompt injection planted in a title: exposure of the planted item",
         "the re-ranker over the retriever's top 20 on users whose candidates hold the planted item.",
         injection_table, None),
        (is_fidelity, "simulated users: fidelity to the users they stand for (Agent4Rec's tests)",
         "1:m: held-out liked items among m times as many never-interacted items; watch = probability >= 0.5.",
         fidelity_table, None),
        (is_interactive, "simulated users browsing each recommender's pages", None, interactive_table, None),
        (is_dialogue, "conversational recommenders against simulated users with a hidden target", None,
         dialogue_table, None),
        (is_explanations, "grounded explanations", "(user, top-1 item) pairs of seeded test users.",
         explanations_table, None),
        (is_personal_text, "personalised item text", None, personal_text_table, None),
        (is_chat_served, "one scripted conversation, embedded and served LLM", None, chat_served_table, None),
        (is_coldstart_result, "item cold start: content, and synthetic interactions for new items",
         "a seeded share of the items is new: their interactions are out of training and histories.", coldstart_table,
         None),
        (is_ctr_result, "like / dislike prediction on explicit feedback (AUC, UAUC, calibrated log-loss)",
         "each model scores the same labelled test pairs from its training history.", ctr_table, None),
        (is_llara_result, "LLaRA: hybrid item tokens, the next item among 20 candidates (ValidRatio, HitRatio@1)",
         "the same seeded leave-one-out test users and candidates (the target and 19 unseen items) for every row.",
         llara_table, None),
        (is_codebook_result, "item tokenizers: codebook usage, collisions, reconstruction", None, codebook_table, None),
        (is_scale_result, "catalogue-scale evaluation: memory and users/s as data grows",
         "seeded synthetic data; one process per size and model, one thread; plot: `benchmarks/scale-eval.png`.",
         scale_table, None),
        (is_speed_table, "SASRec-CE training speed on the CPU: measured changes, and beside RecBole", None,
         speed_table, None),
        (is_steps_result, "diffusion inference steps vs accuracy", "plot: `benchmarks/diffusion-steps.png`.",
         steps_table, None),
        (is_profiles_record, PROFILES_TITLE, PROFILES_INTRO, profiles_table, None),
        (is_dreamrec_scoring, "DreamRec: one fitted model scored five ways", "the same users in each row; Pop beside.",
         dreamrec_scoring_table, None),
        (is_bench_result, None, "see the commands stored in each file; plots beside `benchmarks/`.", scaling_table,
         _sort_key),
    ]  # fmt: skip
    # folders whose bench results make one study's table instead of the generic one
    by_folder = {
        "reasoning": [
            (is_reasoning_result, REASONING_TITLE, REASONING_INTRO, reasoning_table, _sort_key),
            (is_reasoning_cost, COST_TITLE, COST_INTRO, reasoning_cost_table, None),
            (is_reasoning_states, STATES_TITLE, STATES_INTRO, reasoning_states_table, None),
        ],
        "text-items": [
            (is_text_items_result, TEXT_ITEMS_TITLE, TEXT_ITEMS_INTRO, text_items_table, _sort_key),
            (is_text_coldstart_result, COLD_TITLE, COLD_INTRO, text_coldstart_table, _sort_key),
            (is_user_coldstart_result, USER_COLD_TITLE, USER_COLD_INTRO, text_coldstart_table, _sort_key),
        ],
    }
    for sub in sorted(p for p in Path(results_dir).iterdir() if p.is_dir()):
        found = read_json_results(sub)  # each study folder is read once, then split by schema
        if sub.name == "profiles":  # recgen augment profiles writes <out>/<dataset>/<kind>_profiles.json
            found += [r for d in sorted(p for p in sub.iterdir() if p.is_dir()) for r in read_json_results(d)]
        for is_kind, title, intro, make_table, order in by_folder.get(sub.name, studies):
            rs = [r for r in found if is_kind(r)]
            if not rs:
                continue
            heading = f"\n## Study: `{sub.name}`" + (f" ({title})" if title else "")
            body += "\n".join(
                [
                    heading,
                    "",
                    *([f"From `{sub}`; {intro}", ""] if intro else []),
                    _tabulate(make_table, rs),
                    "",
                    *[f"- `{c}`" for c in _commands(sorted(rs, key=order) if order else rs)],
                    "",
                ]
            )
    atomic_write_text(out, body)
    if readme is not None and Path(readme).exists():
        text = Path(readme).read_text(encoding="utf-8")
        new = fill_blocks(text, readme_blocks(results, results_dir))
        if new != text:
            atomic_write_text(readme, new)
    return body
