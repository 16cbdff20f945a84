"""``recgen merge-results``: join the results files of one run whose seeds ran apart."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from recgen.errors import ConfigError
from recgen.experiments.results import aggregate, read_result, speeds, with_defaults, write_result

MERGE_KEYS = ("schema", "dataset", "dataset_fingerprint", "model", "config", "protocol")


DEVICE_FIELD = "device"  # the config field that says where a run executes (cpu, cuda), not what it computes


def merge_results(
    paths: Sequence[str | Path],
    out_dir: str | Path,
    *,
    command: str | None = None,
    mixed_devices: bool = False,
) -> dict[str, Any]:
    """Join results files of the same run (same data fingerprint, model, config and protocol) whose seeds were run
    apart (``bench --only-seed`` in parallel processes, or on different machines) into one file under ``out_dir``,
    with the means and spreads recomputed over the union of their seeds. A seed present in two files must hold the
    same test metrics (else it is an error naming both). Each source is listed under ``merged_from`` (a source that is
    itself a merged file by the sources it lists, so a file merged again keeps the command of every seed).

    ``mixed_devices``: also join files whose configs differ only in ``device`` (seeds trained on a GPU, with bf16
    autocast, and on the CPU in fp32: the same recipe, not the same arithmetic, hence opt-in). Each seed then
    records its ``device``, the merged config's ``device`` names them all (``cuda+cpu``), and speeds and fit times,
    which mean nothing averaged across devices, are given per device only (``throughput_by_device``)."""
    if not paths:
        raise ConfigError("merge-results needs at least one results file")
    runs = []
    for p in paths:
        if not Path(p).is_file():
            raise ConfigError(f"{p} is not a results file; give the JSON files to join")
        runs.append((Path(p), read_result(p)))
    first_path, first = runs[0]
    full = with_defaults(first.get("model"))

    def recipe(cfg: dict[str, Any] | None) -> dict[str, Any]:
        return {k: v for k, v in full(cfg).items() if k != DEVICE_FIELD}

    for path, r in runs[1:]:
        diff = [
            k
            for k in MERGE_KEYS
            if k != "config" and json.dumps(r.get(k), sort_keys=True) != json.dumps(first.get(k), sort_keys=True)
        ]
        hint = "merge only the files of one dataset, model, config and protocol"
        if not diff and recipe(r.get("config")) != recipe(first.get("config")):
            diff.append("config")
        elif not diff and not mixed_devices and full(r.get("config")) != full(first.get("config")):
            a, b = full(r.get("config")).get(DEVICE_FIELD), full(first.get("config")).get(DEVICE_FIELD)
            diff.append(f"config: device {a!r} there, {b!r} here")
            hint = "pass --mixed-devices to join seeds of one recipe trained on different devices"
        if diff:
            raise ConfigError(
                f"{path} and {first_path} are not the same run (they differ in {', '.join(diff)}); {hint}"
            )
    by_seed: dict[int, tuple[Path, dict[str, Any]]] = {}
    for path, r in runs:
        for e in r.get("per_seed", []):
            if e["seed"] in by_seed:
                other_path, other = by_seed[e["seed"]]
                if other["test"] != e["test"]:
                    raise ConfigError(
                        f"seed {e['seed']} is in {other_path} and in {path} with different test metrics; "
                        "keep one of the two files out of the merge"
                    )
                continue
            by_seed[e["seed"]] = (path, e)
    per_seed = [by_seed[k][1] for k in sorted(by_seed)]
    source_cfg = {path: r.get("config") for path, r in runs}

    def device_of(e: dict[str, Any]) -> Any:  # a seed from an earlier mixed merge names its own device
        return e.get(DEVICE_FIELD) or full(source_cfg[by_seed[e["seed"]][0]]).get(DEVICE_FIELD)

    mixed = len({device_of(e) for e in per_seed}) > 1
    if mixed:  # each seed says where it ran
        per_seed = [{**e, DEVICE_FIELD: device_of(e)} for e in per_seed]
    machines = [m for _, r in runs for m in r.get("machines") or [r["machine"]]]
    result = {k: v for k, v in first.items() if k not in ("merged_from", "machines")}
    # the config with the most fields (the newest code's), which names the merged file
    result["config"] = max((r.get("config") or {} for _, r in runs), key=len)
    result.update(
        aggregate(
            per_seed,
            max(r.get("seeds_planned", len(r.get("per_seed", []))) for _, r in runs),
            first.get("throughput", {}).get("matmul_peak_gflops"),
            first.get("timings", {}).get("load_split_seconds", 0.0),
        )
    )
    if mixed:
        order = list(dict.fromkeys(e[DEVICE_FIELD] for e in per_seed))
        result["config"] = {**result["config"], DEVICE_FIELD: "+".join(order)}
        result["throughput_by_device"] = {
            d: speeds([e for e in per_seed if e[DEVICE_FIELD] == d], first.get("throughput", {})) for d in order
        }
        # averages across devices mean nothing: the file keeps only the per-device ones
        result["timings"] = {k: v for k, v in result["timings"].items() if k == "load_split_seconds"}
        result["throughput"] = {"matmul_peak_gflops": result["throughput"].get("matmul_peak_gflops")}
    distinct = [m for i, m in enumerate(machines) if m not in machines[:i]]
    if len(distinct) > 1:
        result["machines"] = distinct
    result["merged_from"] = []
    for path, r in runs:
        missing = set(result["config"]) - set(r.get("config") or {})  # written before these fields existed
        own = {"file": path.name, "seeds": [e["seed"] for e in r.get("per_seed", [])], "command": r.get("command")}
        # a source that is itself a merge contributes its sources, so every seed keeps the command that ran it
        for source in r.get("merged_from") or [own]:
            if at_default := sorted(missing | set(source.get("config_fields_at_default", []))):
                source = {**source, "config_fields_at_default": at_default}
            if source not in result["merged_from"]:  # the same file given twice, or inside two merges
                result["merged_from"].append(source)
    result["command"] = command or " ".join(["recgen", *sys.argv[1:]])
    result["created"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    result["_path"] = str(write_result(result, out_dir))
    return result
