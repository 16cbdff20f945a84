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
        "| data (synthetic) | model | ranking | fit (s) | users/s | users/s, whole rows | memory high-water after "
        "data / fit / ranking / whole rows (MB) | R@10 |",
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
            mem = " / ".join(
                f"{r[k]:.0f}" if k in r else "–"
                for k in ("rss_after_data_mb", "rss_after_fit_mb", "rss_after_streamed_mb", "rss_after_whole_mb")
            )
            lines.append(
                f"| {data} | {r['model']} | {r['ranking']} | {r['fit_seconds']:.0f} | "
                f"{r['streamed_users_per_second']:.0f} | {whole} | {mem} | {r['recall_at_10']:.4f} |"
            )
    notes = sorted({r["trained_on"] for res in results for r in res["rows"] if "trained_on" in r})
    if notes:
        lines += ["", "SASRec and HSTU trained on " + "; ".join(notes) + ": their R@10 is not a trained model's."]
    return "\n".join(lines)


SPEED_SCHEMA = "recgen-speed-table/1"


def is_speed_table(r: dict[str, Any]) -> bool:
    return r["schema"] == SPEED_SCHEMA


def speed_table(results: list[dict[str, Any]]) -> str:
    """SASRec-CE training speed: recgen before / after each measured change, and recgen beside RecBole."""
    lines = [
        "| run | commit | train samples/s | MFU (1-thread peak) | s per epoch | epochs (best) | fit (s) | peak memory "
        "(MB) | valid N@10 | test N@10 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def row(label: str, r: dict[str, Any]) -> str:
        peak = f"{r['peak_rss_mb']:.0f}" if r.get("peak_rss_mb") else "–"
        return (
            f"| {label} | {str(r.get('git_commit') or '')[:7]} | {r['train_samples_per_second']:.0f} | "
            f"{r['mfu']:.2f} | {r['train_seconds_per_epoch']:.1f} | {r['epochs']} ({r['best_epoch']}) | "
            f"{r['fit_seconds']:.0f} | {peak} | {r['valid_ndcg@10']:.4f} | {r['test_ndcg@10']:.4f} |"
        )

    notes = []
    for res in results:
        for p in res["pairs"]:
            lines.append(row(f"before: {p['change']}", p["before"]))
            lines.append(row(f"after: {p['change']}", p["after"]))
            notes.append(
                f"{p['change']}: {p['samples_per_second_ratio']:.2f}x training samples/s, peak memory "
                f"x{p['peak_memory_ratio']:.2f} (runs side by side, one thread each)"
            )
        if side := res.get("side_by_side"):
            lines.append(row("recgen beside RecBole", side["recgen"]))
            rb = side["recbole"]
            peak = f"{rb['peak_rss_mb']:.0f}" if rb.get("peak_rss_mb") else "–"
            lines.append(
                f"| RecBole {rb['versions'].get('recbole', '')} (batch {rb['train_batch']}) | | | | "
                f"{rb['train_seconds_per_epoch']:.1f} | {rb['epochs']} | | {peak} | "
                f"{rb['best_valid_ndcg@10']:.4f} | {rb['test_ndcg@10']:.4f} |"
            )
            t_rg, t_rb = side["recgen_seconds_to_target"], side["recbole_seconds_to_target"]
            reach = ", ".join(
                f"{who} " + ("not reached" if t is None else f"{t:.0f} s")
                for who, t in (("recgen", t_rg), ("RecBole", t_rb))
            )
            overlap = "; ".join(
                f"RecBole epoch {i + 1} {o['recbole_epoch_seconds']:.0f} s vs the median of the "
                f"{o['recgen_epochs_inside']} recgen epochs run inside it {o['recgen_median_epoch_seconds']:.1f} s "
                f"({o['ratio']:.0f}x)"
                for i, o in enumerate(side.get("overlap") or [])
            )
            notes.append(
                f"beside RecBole (run at the same time, one thread each, with other jobs sharing the machine): an "
                f"epoch over the same prefix -> next item targets {side['epoch_time_ratio']:.1f}x faster by the "
                f"runs' medians ({overlap}); peak memory {side['peak_memory_ratio']:.1f}x lower; to RecBole's best "
                f"validation N@10 in its {rb['epochs']} epochs ({side['target_valid_ndcg@10']:.4f}), fit clock with "
                f"validation: {reach}"
            )
    return "\n".join(lines + [""] + [f"- {n}" for n in notes])
