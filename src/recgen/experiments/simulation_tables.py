"""Tables of the simulated-user studies (``recgen simulate``), for RESULTS.md and the README's generated block."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recgen.experiments.results import read_json_results, read_result


def _is(task: str):
    return lambda r: r.get("schema") == "recgen-simulation/1" and r.get("task") == task


is_fidelity, is_interactive, is_dialogue = _is("fidelity"), _is("interactive"), _is("dialogue")


def _f(x: Any, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def fidelity_table(results: list[dict[str, Any]], *, compact: bool = False) -> str:
    """One row per decider: 1:m accuracy / F1 (and AUC), rating RMSE / MAE / distance; published rows after."""
    out = []
    for r in results:
        ms = r["ms"] if not compact else [m for m in r["ms"] if m in (1, 9)]
        has_ratings = any("ratings" in row for row in r["rows"])
        head = ["decider", *[f"1:{m} acc / F1" for m in ms], "1:1 AUC"]
        head += ["RMSE", "MAE", "rating TV distance"] if has_ratings else []
        lines = [f"**{r['dataset']}**, {r['protocol']['agents']} agents ({r['protocol']['name']} split):", "",
                 "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]  # fmt: skip
        for row in r["rows"]:
            cells = [row["decider"], *[f"{row[f'm{m}']['accuracy']:.3f} / {row[f'm{m}']['f1']:.3f}" for m in ms]]
            cells.append(f"{row['m1']['auc']:.3f}" if "m1" in row else "–")
            if has_ratings:
                rt = row.get("ratings") or {}
                cells += [_f(rt.get("rmse")), _f(rt.get("mae")), _f(rt.get("total_variation"))]
            lines.append("| " + " | ".join(cells) + " |")
        for p in r.get("published", []) if has_ratings and not compact else []:
            cells = [f"{p['simulator']}, {p['dataset']} (published: {p['source']})", f"{p['m1_accuracy']:.2f} / –"]
            cells += ["–"] * (len(ms) - 1) + ["–", f"{p['rating_rmse']:.2f}", "–", "–"]
            lines.append("| " + " | ".join(cells) + " |")
        llm = r.get("llm") or {}
        if llm:
            lines += ["", f"LLM: {llm.get('model')} ({llm.get('backend')}); calibrated on "
                          f"{r.get('llm_calibration_pairs')} training pairs."]  # fmt: skip
        out.append("\n".join(lines))
    return "\n\n".join(out)


def interactive_table(results: list[dict[str, Any]]) -> str:
    out = []
    for r in results:
        lines = [
            f"**{r['dataset']}**, {r['protocol']['agents']} agents, decider {r['protocol']['decider']}, "
            f"{r['protocol']['page_size']} items a page:",
            "",
            "| model | offline N@10 | watched | watched / page | mean rating | pages | satisfaction (1-10) |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in sorted(r["rows"], key=lambda x: -x["offline_ndcg@10"]):
            lines.append(
                f"| {row['model']} | {row['offline_ndcg@10']:.4f} | {row['watched']:.2f} | "
                f"{row['watched_per_page']:.2f} | {_f(row['mean_rating'], 2)} | {row['pages']:.2f} | "
                f"{row['satisfaction']:.2f} |"
            )
        agree = r["agreement_with_offline_ndcg@10"]
        lines += ["", "Rank agreement with offline NDCG@10: " + "; ".join(
            f"{m} Spearman {_f(a['spearman'], 2)}, Kendall {_f(a['kendall'], 2)}" for m, a in agree.items()
        ) + f" (SimUSER reports {r['published_agreement']['offline_ab_agreement']} on its own setup)."]  # fmt: skip
        out.append("\n".join(lines))
    return "\n\n".join(out)


def dialogue_table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| dataset | policy | user | episodes | Hit@1 | Hit@k | turns to hit | out-of-catalogue shown | LLM text "
        "withheld | leak rate | invented / answer |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        k = r["protocol"]["k"]
        for row in r["rows"]:
            lines.append(
                f"| {r['dataset']} | {row['policy']} | {row['user']} | {row['episodes']} | {row.get('hit@1', 0):.3f} "
                f"| {row.get(f'hit@{k}', row['success_rate']):.3f} | {_f(row['mean_turns_to_success'], 2)} | "
                f"{row.get('out_of_catalogue_shown', '–')} | {row.get('llm_generations_withheld', '–')} | "
                f"{row['leak_rate']:.3f} | {row['invented_per_answer']:.3f} |"
            )
    r0 = results[0]["protocol"]
    return "\n".join(lines) + (f"\n\nk = {r0['k']} items a recommendation, at most {r0['max_turns']} turns (the "
                               f"retriever: one), model {r0['model']}; template users unless marked llm.")  # fmt: skip


def is_task(task: str):
    return lambda r: r.get("schema") == "recgen-task/1" and r.get("task") == task


is_explanations, is_personal_text = is_task("explanations"), is_task("personal-text")


def explanations_table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| dataset | model | text | pairs | groundedness | faithfulness: cited drop / random drop (win rate) | "
        "personalisation | USR | feature coverage | LLM text withheld |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for row in r["rows"]:
            lines.append(
                f"| {r['dataset']} | {row['model']} | {row['source']} | {row['pairs']} | {row['groundedness']:.3f} | "
                f"{_f(row['faithfulness_drop_cited'], 4)} / {_f(row['faithfulness_drop_random'], 4)} "
                f"({_f(row['faithfulness_win_rate'])}) | {_f(row['personalisation'])} | {row['usr']:.3f} | "
                f"{_f(row['feature_coverage'])} | {row['llm_generations_withheld']} |"
            )
    return "\n".join(lines)


def personal_text_table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| dataset | LLM | rewrites shown | invented values / rewrite | sim(own rewrite, profile) | "
        "sim(generic, profile) | sim(other user's rewrite, profile) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        s = r["summary"]
        lines.append(
            f"| {r['dataset']} | {r['llm']['model']} | {s['rewrites_shown']} / {s['rewrites']} | "
            f"{s['invented_per_rewrite']:.2f} | {_f(s.get('sim_rewrite_to_profile'))} | "
            f"{_f(s.get('sim_generic_to_profile'))} | {_f(s.get('sim_other_users_rewrite_to_profile'))} |"
        )
    return "\n".join(lines)


def simulation_block(results_dir: str | Path) -> str:
    """The README's block: the ML-100K fidelity table (compact), then one paragraph: published rows, the
    interactive agreement, the 1,000-agent sizing."""
    folder = Path(results_dir) / "simulation"
    found = read_json_results(folder) if folder.is_dir() else []
    table, sentences = "", []
    fid = [r for r in found if is_fidelity(r) and r["dataset"] == "ml-100k"]
    if fid:
        r = fid[0]
        table = fidelity_table([r], compact=True).split("\n\n")[1]  # the table alone; its context goes below
        llm = (r.get("llm") or {}).get("model")
        pub = "; ".join(f"{p['simulator']} {p['m1_accuracy']:.2f} / {p['rating_rmse']:.2f}" for p in r["published"])
        cal = f", LLM {llm} calibrated on {r.get('llm_calibration_pairs')} training pairs" if llm else ""
        sentences.append(f"ML-100K, {r['protocol']['agents']} agents ({r['protocol']['name']} split){cal}. Published "
                         f"1:1 accuracy / RMSE for scale (other LLMs, data and splits): {pub}.")  # fmt: skip
    inter = [r for r in found if is_interactive(r)]
    if inter:
        r = inter[0]
        a = r["agreement_with_offline_ndcg@10"]
        sentences.append(
            f"Interactive evaluation of {len(r['rows'])} recommenders ({r['protocol']['agents']} agents): agreement "
            f"of items watched with offline NDCG@10, Spearman {_f(a['watched']['spearman'], 2)}, Kendall "
            f"{_f(a['watched']['kendall'], 2)}; of satisfaction, Spearman {_f(a['satisfaction']['spearman'], 2)}."
        )
    scale = Path(results_dir) / "speed" / "simulate_scale.json"
    if scale.is_file():
        s = read_result(scale)
        rows = "; ".join(
            f"{x['label']}: {x['agents_per_second']:.2f} agents/s, 1,000 agents in "
            f"{1000 / x['agents_per_second'] / 60:.0f} min"
            for x in s["rows"]
        )
        sentences.append(f"Scale ({s['decider']} decider with reasons, {s['machine']['cpu_count']} cores): {rows}.")
    if not table and not sentences:
        return "(not measured yet: `recgen simulate fidelity ml-100k`)"
    return "\n\n".join(p for p in (table, " ".join(sentences) + " Tables: `benchmarks/RESULTS.md`.") if p)


is_chat_served = is_task("chat-served")


def chat_served_table(results: list[dict[str, Any]]) -> str:
    """The scripted conversation per backend: each turn's reply verbatim, items shown, withheld LLM sentences."""
    out = []
    for r in results:
        for run in r["runs"]:
            llm = run["llm"]
            lines = [f"**{r['dataset']}**, {r['model']}, user {r['user']}, LLM manager on {llm['backend']} "
                     f"({Path(str(llm.get('model'))).name}), {run['seconds']:.1f} s:", "", "```"]  # fmt: skip
            for t in run["turns"]:
                lines += [f"user: {t['user']}", "recgen: " + t["reply"].replace("\n", "\n        "), ""]
            lines[-1] = "```"
            lines.append(f"Out-of-catalogue items shown: {sum(t['out_of_catalogue'] for t in run['turns'])}; "
                         f"LLM sentences withheld: {sum(t['withheld'] for t in run['turns'])}.")  # fmt: skip
            out.append("\n".join(lines))
    return "\n\n".join(out)


def chat_served_block(results_dir: str | Path) -> str:
    """The README's block: the scripted conversation against a served model, one line a turn."""
    path = Path(results_dir) / "tasks" / "ml-100k__chat-served.json"
    if not path.is_file():
        return "(not measured yet: `python benchmarks/chat_served.py`)"
    r = read_result(path)
    served = [run for run in r["runs"] if run["llm"]["backend"] == "openai"]
    if not served:
        return "(no served run in `" + path.as_posix() + "`)"
    run, titles = served[0], r.get("titles", {})
    gguf = Path(str(run["llm"].get("model"))).name
    oc = sum(t["out_of_catalogue"] for t in run["turns"])
    wh = sum(t["withheld"] for t in run["turns"])
    same = [t["items"] for t in run["turns"]] == [t["items"] for t in r["runs"][0]["turns"]]
    same = "the same as" if same else "not the same as"
    lines = [f"The same session against an OpenAI-compatible server (`--llm openai:URL`; here a `llama_cpp.server` "
             f"on loopback serving {gguf}; `{path.as_posix()}`): {oc} out-of-catalogue items, {wh} LLM sentences "
             f"withheld, items {same} with the embedded model:", ""]  # fmt: skip
    for t in run["turns"]:
        lead = t["reply"].split("\n", 1)[0]
        shown = ", ".join(titles.get(i, i) for i in t["items"])
        lines.append(f"- *{t['user']}* → {lead} [{shown}]")
    return "\n".join(lines)
