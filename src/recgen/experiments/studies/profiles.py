"""The table of ``recgen augment profiles`` runs: one row per side table (its ``<kind>_profiles.json``)."""

from __future__ import annotations

from typing import Any

TITLE = "LLM-written item and user profiles (recgen augment profiles)"
INTRO = (
    "counts over the whole side table (every run that wrote it, a killed one included); tokens/s = completion "
    "tokens over the summed generation seconds (last run: the newest run that generated, with its workers x batch); "
    "contradicting = item profiles stating a catalogue genre the item lacks ('–': the catalogue names none), user "
    "profiles whose likes name a genre that none of the liked items in their prompt has; kinds new to the item = "
    "item profiles stating a kind with no word in the item's own title, year or tags (knowledge or invention)."
)


def is_profiles_record(r: dict[str, Any]) -> bool:
    return r.get("schema") == "recgen-profiles/1"


def profiles_table(rs: list[dict[str, Any]]) -> str:
    lines = [
        "| dataset | kind | model | profiles | ok | missing | lost | duplicated | completion tokens (mean) | "
        "tokens/s | last run tokens/s | contradicting | kinds new to the item |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rs, key=lambda r: (r["dataset"], r["kind"])):
        tot = r.get("totals") or {}
        tps = tot.get("completion_tokens_per_second")
        checks = r.get("contradictions") or {}
        con, new = checks.get("contradiction_rate"), checks.get("unsupported_rate")
        last = next((x for x in reversed(r.get("runs") or []) if x.get("generated")), None)
        last_tps = (
            f"{last['completion_tokens_per_second']:.1f} ({last.get('workers', 1)} x {last.get('batch', 1)})"
            if last
            else "–"
        )
        model = (r.get("llm") or {}).get("model", "?")
        lines.append(
            f"| {r['dataset']} | {r['kind']} | {model} | {r['profiles']} | {r['ok']} | "
            f"{r['missing']} | {r['lost']} | {r['duplicated']} | {tot.get('completion_tokens', '–')} "
            f"({r['mean_completion_tokens']:.1f}) | {f'{tps:.1f}' if tps else '–'} | {last_tps} | "
            f"{f'{con:.1%}' if con is not None else '–'} | {f'{new:.1%}' if new is not None else '–'} |"
        )
    return "\n".join(lines)
