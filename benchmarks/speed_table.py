"""The SASRec-CE training-speed table (issue: training speed on one machine): recgen before and after a change,
each a ``recgen bench`` results file of runs made side by side (same seed, one thread each), and recgen beside
RecBole 1.2.1 on the same data and model (the driver in ``../shared/peers/recbole/``, run at the same time as the
recgen run, one thread each). Reads those files; writes one results file with every figure and where it came from.
Epoch times are medians over each run's epochs (every epoch's time is kept): runs sharing a machine meet varying
load from other jobs, and the median moves least.

    python benchmarks/speed_table.py \\
        --pair fused-ce benchmarks/results/timing/fused-ce/before/F.json \\
            benchmarks/results/timing/fused-ce/after/F.json \\
        --recgen benchmarks/results/timing/recbole-side/F.json \\
        --recbole-result PEER_DIR/results/beauty_sasrec.json --recbole-log PEER_DIR/log/SASRec/....log \\
        --recbole-time PEER_DIR/logs/beauty_sasrec.time --out benchmarks/results/speed/sasrec_speed_table.json

RecBole's epoch trains every (prefix -> next item) pair of the training sequences once, with the loss at the last
position of each prefix: the same targets as one recgen epoch (one pass over every user's sequence, loss at every
position). Times to a validation NDCG@10 are wall clocks from the start of fitting, validation included, at the
first validation at or above the value; RecBole validates every epoch, recgen every ``eval_every`` epochs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402
from speedlib import save  # noqa: E402

from recgen.experiments.results import read_result  # noqa: E402


def recgen_row(path: str) -> dict:
    r = read_result(path)
    s = r["per_seed"][0]
    log = s.get("train_log") or []
    return {
        "file": path,
        "git_commit": s.get("git_commit"),
        "command": r["command"],
        "train_samples_per_second": r["throughput"].get("train_samples_per_second"),
        "mfu": r["throughput"].get("mfu"),
        "matmul_peak_gflops": r["throughput"].get("matmul_peak_gflops"),
        "torch_threads": r["machine"].get("torch_threads"),
        "fit_seconds": s["fit_seconds"],
        "best_epoch": s["best_epoch"],
        "epochs": len(log),
        # the median epoch: the runs share a machine whose other load varies, and the median is the least moved
        "train_seconds_per_epoch": float(np.median(epochs)) if (epochs := epoch_seconds(r)) else None,
        "epoch_train_seconds": epochs,
        "peak_rss_mb": r.get("peak_rss_mb"),
        "valid_ndcg@10": r["valid"].get("ndcg@10"),
        "test_ndcg@10": r["test"]["ndcg@10"],
        "test_recall@10": r["test"]["recall@10"],
        "valid_curve": [(e["epoch"], e["wall_seconds"], e["valid_ndcg@10"]) for e in log if "valid_ndcg@10" in e]
        if all("wall_seconds" in e for e in log)
        else None,
    }


def epoch_intervals(r: dict) -> list[tuple[float, float, float]]:
    """(start, end, training seconds) of each epoch, start and end as POSIX times: the fit started its fit time
    (plus evaluation and loading) before the file was written, and each epoch ends at its ``wall_seconds``."""
    s = r["per_seed"][0]
    end = dt.datetime.fromisoformat(r["created"]).timestamp()
    start = end - s["fit_seconds"] - s["eval_seconds"] - r["timings"]["load_split_seconds"]
    out, prev = [], 0.0
    for e, secs in zip(s.get("train_log") or [], epoch_seconds(r), strict=True):
        out.append((start + prev, start + e["wall_seconds"], secs))
        prev = e["wall_seconds"]
    return out


def epoch_seconds(r: dict) -> list[float]:
    """Training seconds of each epoch: the epoch's samples over its samples/s."""
    return [samples_per_epoch(r) / e["samples_per_second"] for e in r["per_seed"][0].get("train_log") or []]


def samples_per_epoch(r: dict) -> int:
    """Training sequences of one epoch: users with at least two training items (leave-one-out keeps
    len - 2 of each user's items for training; every user of these datasets has at least five)."""
    return r["dataset_stats"]["users"]


def recbole_row(result: str, log: str, timefile: str | None) -> dict:
    res = json.loads(Path(result).read_text())
    text = Path(log).read_text()
    train = {int(m[1]): float(m[2]) for m in re.finditer(r"epoch (\d+) training \[time: ([\d.]+)s", text)}
    # each training line is logged when its epoch ends: (start, end) of every epoch, as POSIX times
    windows = {
        int(m[2]): (dt.datetime.strptime(m[1], "%a %d %b %Y %H:%M:%S").replace(tzinfo=dt.UTC).timestamp() - float(m[3]),
                    dt.datetime.strptime(m[1], "%a %d %b %Y %H:%M:%S").replace(tzinfo=dt.UTC).timestamp())
        for m in re.finditer(r"(\w{3} \d+ \w{3} \d{4} [\d:]+) INFO\s+epoch (\d+) training \[time: ([\d.]+)s", text)
    }  # fmt: skip
    valid = {
        int(m[1]): (float(m[2]), float(m[3]))
        for m in re.finditer(r"epoch (\d+) evaluating \[time: ([\d.]+)s, valid_score: ([\d.]+)\]", text)
    }
    clock, curve = 0.0, []
    for ep in sorted(train):
        clock += train[ep] + valid.get(ep, (0.0, 0.0))[0]
        if ep in valid:
            curve.append((ep + 1, clock, valid[ep][1]))
    peak = None
    if timefile and Path(timefile).exists():
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", Path(timefile).read_text())
        peak = int(m[1]) / 1024 if m else None
    return {
        "file": Path(result).name,  # a scratch folder outside the project: its name only
        "driver": "../shared/peers/recbole/run_peer.py "
        + " ".join(f"--{k} {res[k]}" for k in ("dataset", "model") if k in res)
        + f" --threads {res.get('threads')}",
        "versions": res.get("versions"),
        "threads": res.get("threads"),
        "epochs": res.get("epochs_run"),
        "train_seconds_per_epoch": float(np.median(list(train.values()))) if train else None,
        "epoch_train_seconds": [train[k] for k in sorted(train)],
        "valid_seconds_per_epoch": res.get("valid_s_per_epoch_mean"),
        "best_valid_ndcg@10": res.get("best_valid", {}).get("ndcg@10"),
        "test_ndcg@10": res.get("test", {}).get("ndcg@10"),
        "peak_rss_mb": peak,
        "train_batch": res.get("config", {}).get("train_batch_size"),
        "valid_curve": curve,
        "epoch_windows": [windows[k] for k in sorted(windows)],
    }


def overlap_ratios(ours: dict, theirs: dict, recgen_result: dict) -> list[dict]:
    """For each RecBole epoch, the recgen epochs that ran entirely within it (same machine, same load): the ratio
    of RecBole's epoch time to their median."""
    inside_all = epoch_intervals(recgen_result)
    out = []
    for (a, b), secs in zip(theirs["epoch_windows"], theirs["epoch_train_seconds"], strict=True):
        inside = [x for s, e, x in inside_all if s >= a and e <= b]
        if inside:
            med = float(np.median(inside))
            out.append({"recbole_epoch_seconds": secs, "recgen_epochs_inside": len(inside),
                        "recgen_median_epoch_seconds": med, "ratio": secs / med})  # fmt: skip
    return out


def time_to(curve: list, value: float) -> float | None:
    """Wall seconds at the first validation at or above ``value`` (None: never reached)."""
    return next((t for _, t, v in curve if v >= value), None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pair", nargs=3, action="append", default=[], metavar=("CHANGE", "BEFORE", "AFTER"))
    ap.add_argument("--recgen", help="the recgen run made beside RecBole")
    ap.add_argument("--recbole-result")
    ap.add_argument("--recbole-log")
    ap.add_argument("--recbole-time")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    pairs = []
    for change, before, after in args.pair:
        b, a = recgen_row(before), recgen_row(after)
        pairs.append(
            {
                "change": change,
                "before": b,
                "after": a,
                "samples_per_second_ratio": a["train_samples_per_second"] / b["train_samples_per_second"],
                "peak_memory_ratio": (a["peak_rss_mb"] / b["peak_rss_mb"]) if b["peak_rss_mb"] else None,
            }
        )
    side = None
    if args.recgen and args.recbole_result and args.recbole_log:
        ours, theirs = recgen_row(args.recgen), recbole_row(args.recbole_result, args.recbole_log, args.recbole_time)
        target = theirs["best_valid_ndcg@10"]
        overlap = overlap_ratios(ours, theirs, read_result(args.recgen))
        side = {
            "recgen": ours,
            "recbole": theirs,
            "overlap": overlap,
            "epoch_time_ratio": theirs["train_seconds_per_epoch"] / ours["train_seconds_per_epoch"],
            "peak_memory_ratio": (theirs["peak_rss_mb"] / ours["peak_rss_mb"])
            if theirs["peak_rss_mb"] and ours["peak_rss_mb"]
            else None,
            "target_valid_ndcg@10": target,
            "recbole_seconds_to_target": time_to(theirs["valid_curve"], target),
            "recgen_seconds_to_target": time_to(ours["valid_curve"] or [], target),
        }
    if peer := os.environ.get("PEER_DIR"):  # the scratch folder's path stays out of the recorded command
        sys.argv = [a.replace(peer.rstrip("/"), "$PEER_DIR") for a in sys.argv]
    save("sasrec_speed_table", args.out, schema="recgen-speed-table/1", pairs=pairs, side_by_side=side)


if __name__ == "__main__":
    main()
