"""The catalogue-scale evaluation table (``benchmarks/scale_eval.py`` writes ``benchmarks/results/scale/``):
peak memory and users/s of full-catalogue ranking per size and model, on seeded synthetic data."""

from __future__ import annotations

from typing import Any

SCHEMA = "recgen-scale/1"


def is_scale_result(r: dict[str, Any]) -> bool:
    return r["schema"] == SCHEMA


def _n(x: float) -> str:
    return f"{x / 1e6:g}M" if x >= 1e6 else f"{x / 1e3:g}k" if x >= 1e3 else f"{x:g}"


def scale_table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| data (synthetic) | model | ranking | fit (s) | users/s | users/s, whole rows | memory after data / "
        "after fit / peak (MB) | R@10 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for res in results:
        for r in sorted(res["rows"], key=lambda r: (r.get("interactions", 0), r["model"])):
            data = f"{_n(r['interactions'])} interactions, {_n(r['items'])} items" + (
                f", {_n(r['users'])} users" if "users" in r else ""
            )
            if "stops" in r:
                lines.append(f"| {data} | {r['model']} | stops: {r['stops']} | | | | | |")
                continue
            whole = f"{r['whole_users_per_second']:.0f}" if "whole_users_per_second" in r else "–"
            mem = f"{r['rss_after_data_mb']:.0f} / {r['rss_after_fit_mb']:.0f} / {r['peak_rss_mb']:.0f}"
            lines.append(
                f"| {data} | {r['model']} | {r['ranking']} | {r['fit_seconds']:.0f} | "
                f"{r['streamed_users_per_second']:.0f} | {whole} | {mem} | {r['recall_at_10']:.4f} |"
            )
    notes = sorted({r["trained_on"] for res in results for r in res["rows"] if "trained_on" in r})
    if notes:
        lines += ["", "SASRec and HSTU trained on " + "; ".join(notes) + ": their R@10 is not a trained model's."]
    return "\n".join(lines)
