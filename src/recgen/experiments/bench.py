"""``recgen bench``: fit on train, choose on validation, evaluate test, over seeds; write one results file per run.

A run is described by a ``BenchSpec`` and carried out by ``BenchRun``: load and split the data once, (optionally)
choose config fields on validation by grid search, then per seed fit, evaluate validation and test (and the
decode variants on the same fitted weights), and rewrite the results file after every seed, so an interrupted
run keeps the seeds it finished. ``--resume`` keeps an earlier file's seeds and runs only the missing ones.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recgen import __version__
from recgen.config import make_config, to_dict
from recgen.data.given import load_given_split
from recgen.data.loaders import load_dataset
from recgen.data.split import Split, make_split
from recgen.errors import ConfigError
from recgen.eval.evaluator import evaluate
from recgen.experiments.results import (
    DEFAULT_RESULTS_DIR,
    aggregate,
    earlier_run,
    git_commit,
    headline,
    machine_info,
    mean_std,
    read_result,
    result_filename,
    results_lock,
    resumable_seeds,
    with_defaults,
    write_json,
)
from recgen.memory import peak_rss_mb
from recgen.models.base import Recommender, resolve_device
from recgen.models.registry import check_resumable, get_model_class


def restrict_eval_users(split: Split, max_eval_users: int) -> None:
    """Keep ``max_eval_users`` seeded users in valid and test (0 = all), recorded in the split's protocol.

    The same users for every model and seed (seed 0), so costly models (LLMs) compare with their retrievers.
    """
    if max_eval_users < 0:
        raise ConfigError(f"--max-eval-users must be >= 0 (0 = all), got {max_eval_users}")
    if not max_eval_users:
        return
    rng = np.random.default_rng(0)
    for name in ("valid", "test"):
        es = getattr(split, name)
        if len(es) > max_eval_users:
            setattr(split, name, es.select(np.sort(rng.choice(len(es), max_eval_users, replace=False))))
    split.protocol = {**split.protocol, "eval_users": max_eval_users, "eval_users_seed": 0}


@dataclass(frozen=True, kw_only=True)
class BenchSpec:
    """What one ``recgen bench`` run fits, on which data, evaluated how, and where its results file goes.

    ``decode_variants``: changes of fields the model reads only when recommending (its ``decode_fields``, e.g.
    TIGER's ``constrained`` and ``beam``); each seed's fitted model is also evaluated on test with each change,
    recorded under ``per_seed[i]["test_variants"]`` (the same fitted weights, not refitted).

    ``run_dir`` (models trained by recgen's trainer): each seed keeps ``last.pt``/``best.pt`` in
    ``run_dir/<results file stem>/seed<K>`` after every epoch; with ``resume`` a seed interrupted mid-training
    continues from its ``last.pt`` (same config required) and records ``resumed_from_epoch``. A seed with no folder
    under this stem resumes from a copy of one under another stem of ``run_dir`` whose config differs only in
    fields read when recommending (``decode_fields``, e.g. ``reason_score``): the same training, scored otherwise.

    ``only_seeds``: run just these of the ``seeds`` planned (the file stays ``complete: false`` until the others
    are there), so the seeds of one run can go to parallel processes with separate ``out_dir``s, joined by
    ``recgen merge-results``.
    """

    dataset: str  # a dataset name or path
    model: str  # a registered model name
    format: str | None = None  # the format of a path (detected when None)
    data_dir: str | None = None  # where named datasets live
    data_options: dict[str, Any] = field(default_factory=dict)  # more load_dataset options (columns, sep, ...)
    sets: dict[str, Any] = field(default_factory=dict)  # config overrides
    seeds: int = 1  # seeds 0..seeds-1
    protocol: str = "leave-one-out"
    split_args: dict[str, Any] = field(default_factory=dict)  # e.g. valid_frac, test_frac
    ks: Sequence[int] = (5, 10, 20)
    out_dir: str | Path = DEFAULT_RESULTS_DIR
    exclude_seen: bool = True
    sampled_negatives: int = 0  # > 0: also labelled sampled metrics
    eval_batch_size: int = 512
    item_block: int = 0  # > 0: rank the catalogue this many items at a time (models that stream their scores)
    max_eval_users: int = 0  # evaluate this many seeded users (0 = all)
    grid: dict[str, list[str]] = field(default_factory=dict)  # fields chosen on validation NDCG@10 first
    command: str | None = None  # the command line recorded in the file (default: this process's)
    resume: bool = False
    force: bool = False  # replace a results file whose seeds this run would not rewrite (they are dropped)
    decode_variants: Sequence[dict[str, Any]] = ()
    only_seeds: Sequence[int] = ()
    run_dir: str | Path | None = None

    def validate(self) -> None:
        if self.seeds < 1:
            raise ConfigError(f"--seeds must be >= 1, got {self.seeds}")
        bad = [k for k in self.only_seeds if not 0 <= k < self.seeds]
        if bad:
            raise ConfigError(f"--only-seed must name seeds in 0..{self.seeds - 1} (--seeds {self.seeds}), got {bad}")
        if self.resume and self.force:
            raise ConfigError("--resume keeps an earlier file's seeds and --force drops them; pass one of the two")
        if self.sampled_negatives < 0:
            raise ConfigError(f"--sampled must be >= 0, got {self.sampled_negatives}")
        if self.item_block < 0:
            raise ConfigError(f"--item-block must be >= 0 (0 = whole rows), got {self.item_block}")
        if self.item_block and self.sampled_negatives:
            raise ConfigError("--sampled needs whole score rows; drop --item-block or --sampled")


def run_bench(dataset: str, model: str, *, log: Callable[[str], None] = print, **options: Any) -> dict[str, Any]:
    """Benchmark one model on one dataset (``options``: the fields of ``BenchSpec``); returns the result dict,
    also written to ``out_dir`` (its path under ``_path``)."""
    return BenchRun(BenchSpec(dataset=dataset, model=model, **options), log).run()


class BenchRun:
    """One bench run in progress: the data and split, the resolved config, the results file and its seeds."""

    def __init__(self, spec: BenchSpec, log: Callable[[str], None] = print) -> None:
        spec.validate()
        self.spec, self.log = spec, log
        self.commit = git_commit()  # at start: the code that runs is the code of this commit
        self.klass = get_model_class(spec.model)
        self.config = make_config(self.klass.Config, spec.sets)  # validates fields before any data is loaded
        self.variants = _decode_variants(self.klass, self.config, spec.decode_variants)
        if spec.run_dir is not None:
            check_resumable(spec.model, "--run-dir")
        self.grid_log: dict[str, Any] | None = None
        self.per_seed: list[dict[str, Any]] = []

    # ------------------------------------------------------------------------------------- set-up
    def prepare(self) -> None:
        """Load and split the data, describe the machine, run the grid search, find the results file (and, with
        ``resume``, the seeds it already holds)."""
        spec, log = self.spec, self.log
        t0 = time.perf_counter()
        if spec.protocol == "given":  # the user's own train/valid/test files, used as they are
            opts = {k: v for k, v in self.load_options().items() if k != "data_dir"}
            self.split = load_given_split(spec.dataset, **opts)
            self.ds = self.split.train
        else:
            self.ds = load_dataset(spec.dataset, **self.load_options())
            self.split = make_split(self.ds, spec.protocol, **spec.split_args)
        restrict_eval_users(self.split, spec.max_eval_users)
        self.load_seconds = time.perf_counter() - t0
        log(f"{self.ds.name}: {self.ds.n_users} users, {self.ds.n_items} items, {self.ds.n_interactions} interactions")
        log(f"protocol: {self.split.describe()}")
        self.machine = machine_info()
        device = getattr(self.config, "device", "cpu")
        if device != "cpu":  # the device the model trains and decodes on (the matmul peak stays the CPU's)
            self.machine["device"] = str(resolve_device(device))
        if spec.grid:
            self.config, self.grid_log = _grid_search(self.klass, self.config, spec.grid, self.split, log)
        stub = {"dataset": self.ds.name, "model": spec.model, "config": to_dict(self.config)}
        self.stem = result_filename({**stub, "protocol": self.split.protocol}).removesuffix(".json")
        self.path = Path(spec.out_dir) / f"{self.stem}.json"
        if spec.resume:  # configs compared as the results files hold them (JSON)
            ours = json.loads(json.dumps(stub["config"], default=str))
            if not self.path.exists():
                self.path = earlier_run(self.path, ours, with_defaults(spec.model))
            self.per_seed = resumable_seeds(
                self.path, self.ds.fingerprint(), ours, self.split.protocol["name"], spec.seeds, log
            )
        elif self.path.exists():
            self._check_nothing_lost()

    def seeds_to_run(self) -> list[int]:
        done = {e["seed"] for e in self.per_seed}
        only = set(self.spec.only_seeds)
        return [s for s in range(self.spec.seeds) if s not in done and (not only or s in only)]

    def _check_nothing_lost(self) -> None:
        """A run without ``--resume`` may replace a results file only where it rewrites every seed the file holds;
        ``--force`` drops the others on purpose."""
        held = sorted(e["seed"] for e in read_result(self.path).get("per_seed", []))
        lost = sorted(set(held) - set(self.seeds_to_run()))
        if lost and not self.spec.force:
            raise ConfigError(
                f"{self.path} already holds seed(s) {held}, and this run would drop {lost}; pass --resume to keep "
                "them and run only the missing seeds, or --force to replace the file"
            )
        if lost:
            self.log(f"--force: dropping seed(s) {lost} of {self.path.name}")

    def save(self) -> Path:
        """Write the results file under the folder's lock; seeds of the same run that another process wrote to it
        meanwhile (``--only-seed`` runs side by side on one ``--out``) are kept, never overwritten."""
        with results_lock(self.path.parent):
            if self.path.exists() and not self.spec.force:
                other = read_result(self.path)
                ours = {e["seed"] for e in self.per_seed}
                theirs = [e for e in other.get("per_seed", []) if e["seed"] not in ours]
                if theirs:
                    same = other.get("dataset_fingerprint") == self.ds.fingerprint() and other.get("protocol", {}).get(
                        "name"
                    ) == self.split.protocol.get("name")
                    if not same:
                        raise ConfigError(
                            f"{self.path} was rewritten by another run of other data or protocol while this one "
                            "ran; pass --out to write elsewhere"
                        )
                    self.log(f"keeping seed(s) {[e['seed'] for e in theirs]} another process wrote to {self.path.name}")
                    self.per_seed = sorted(self.per_seed + theirs, key=lambda e: e["seed"])
            return write_json(self.assemble(), self.path)

    def load_options(self) -> dict[str, Any]:
        """How the dataset is read (format, data folder, column map, filters): recorded in the results file."""
        spec = self.spec
        given = {"format": spec.format, "data_dir": spec.data_dir, **spec.data_options}
        return {k: v for k, v in given.items() if v is not None}

    # -------------------------------------------------------------------------------------- seeds
    def seed_config(self, seed: int) -> Any:
        fields = {f.name for f in dataclasses.fields(self.config)}
        return dataclasses.replace(self.config, seed=seed) if "seed" in fields else self.config

    def fit(self, seed: int) -> tuple[Recommender, float]:
        """A model fitted for ``seed`` (resuming its training where a run folder holds an interrupted one) and its
        fit seconds (an interrupted run's included)."""
        m = self.klass(self.seed_config(seed))
        if self.spec.run_dir is not None:
            seed_dir = Path(self.spec.run_dir) / self.stem / f"seed{seed}"
            if self.spec.resume and not (seed_dir / "last.pt").exists():
                prefix = self.stem.rsplit("__", 1)[0]  # dataset__model__protocol: other stems of this run
                if other := m.adopt_same_training(sorted(seed_dir.parent.parent.glob(f"{prefix}__*/seed{seed}")),
                                                  seed_dir):  # fmt: skip
                    self.log(
                        f"seed {seed}: {other} holds this training (its config differs only in fields read when "
                        f"recommending: {', '.join(m.decode_fields)}); resuming from a copy of it"
                    )
            resuming = self.spec.resume and (seed_dir / "last.pt").exists()
            if resuming:
                self.log(f"seed {seed}: continuing the interrupted training in {seed_dir}")
            m.configure_run(seed_dir, resume=resuming)
        t = time.perf_counter()
        m.fit(self.split.train, valid=self.split.valid)
        return m, time.perf_counter() - t + m.resumed_wall_seconds_

    def evaluate(self, m: Recommender, eval_set: Any, **kwargs: Any):
        spec = self.spec
        return evaluate(
            m, eval_set, ks=spec.ks, exclude_seen=spec.exclude_seen, batch_size=spec.eval_batch_size, progress=True,
            item_block=spec.item_block, **kwargs,
        )  # fmt: skip

    def evaluate_test(self, m: Recommender, seed: int):
        """Test metrics; in a data-parallel run every process ranks its share of the users (the same figures)."""
        from recgen.ops.world import world

        sharded = world()[1] > 1 and not self.spec.sampled_negatives
        return self.evaluate(
            m, self.split.test, sampled_negatives=self.spec.sampled_negatives, seed=seed, sharded=sharded
        )

    def run_seed(self, seed: int) -> dict[str, Any]:
        """Fit, evaluate validation (where the model chooses on it) and test, and each decode variant: the
        seed's entry of the results file."""
        m, fit_s = self.fit(seed)
        # zero-shot models choose nothing on validation: skip its (costly) evaluation
        valid = self.evaluate(m, self.split.valid).metrics if m.selects_on_valid else {}
        m.reset_stats()  # model-side counters (e.g. out-of-catalogue lines) cover the test users only
        rt = self.evaluate_test(m, seed)
        entry: dict[str, Any] = {
            "seed": seed,
            "valid": valid,
            "test": rt.metrics,
            "fit_seconds": fit_s,
            "eval_seconds": rt.seconds,
            "eval_users_per_second": rt.users_per_second,
            "best_epoch": m.best_epoch_,
            "stop_reason": m.stop_reason_,
            "git_commit": self.commit,
            # the process's resident high-water mark when the seed ended (seeds after the first include the earlier)
            "peak_rss_mb": peak_rss_mb(),
        }
        for part, es in self.split.test_parts.items():  # e.g. cold and warm test users, each on its own
            entry.setdefault("test_parts", {})[part] = self.evaluate(m, es).metrics if len(es) else {}
        if self.split.test_parts:
            entry["scores_unseen_items"] = bool(getattr(m, "scores_unseen_items", False))
        if m.resumed_from_epoch_:
            entry["resumed_from_epoch"] = m.resumed_from_epoch_
        if m.train_log_:
            entry["train_log"] = m.train_log_
        if m.train_speed_:
            entry["train_speed"] = dict(m.train_speed_)
            peak = self.machine.get("matmul_peak_gflops")
            # MFU against the CPU's measured peak means nothing on a GPU
            if self.machine.get("device") == "cpu" and "achieved_gflops" in entry["train_speed"] and peak:
                entry["train_speed"]["mfu"] = entry["train_speed"]["achieved_gflops"] / peak
        if info := m.run_info():
            entry["run_info"] = info
        if (params := m.non_embedding_parameters()) is not None:
            entry["non_embedding_parameters"] = params
        if self.variants:
            entry["test_variants"] = {}
        for label, change in self.variants:
            m.reset_stats()
            rx = self.evaluate(m, self.split.test, decode=change)
            entry["test_variants"][label] = {
                "test": rx.metrics,
                "eval_users_per_second": rx.users_per_second,
                **({"run_info": info} if (info := m.run_info()) else {}),
            }
            self.log(f"seed {seed}, {label}: test {headline(rx.metrics)}, eval {rx.users_per_second:.0f} users/s")
        self.log(f"seed {seed}: fit {fit_s:.1f}s, test {headline(rt.metrics)}, eval {rt.users_per_second:.0f} users/s")
        return entry

    # ------------------------------------------------------------------------------------ results
    def assemble(self) -> dict[str, Any]:
        """The results file's content from the seeds run so far (``complete`` once all are there)."""
        from recgen.ops.world import world

        spec, ds, split = self.spec, self.ds, self.split
        return {
            "schema": "recgen-bench/1",
            "dataset": ds.name,
            "dataset_source": spec.dataset,
            **(
                {"dataset_options": opts}
                if (opts := {k: v for k, v in self.load_options().items() if k != "data_dir"})
                else {}
            ),  # fmt: skip
            "dataset_fingerprint": ds.fingerprint(),
            "dataset_stats": {"users": ds.n_users, "items": ds.n_items, "interactions": ds.n_interactions},
            "protocol": {
                **split.protocol,
                "description": split.describe(),
                "exclude_seen": spec.exclude_seen,
                "ranking": "full catalogue",
                "ties": "broken by lower dense item id (first-seen order)",
            },
            "model": spec.model,
            "config": to_dict(self.config),
            # a file may hold more seeds than this run planned (kept from an earlier or a concurrent run)
            **aggregate(
                self.per_seed,
                max([spec.seeds] + [e["seed"] + 1 for e in self.per_seed]),
                self.machine.get("matmul_peak_gflops"),
                self.load_seconds,
            ),  # fmt: skip
            **({"grid": self.grid_log} if self.grid_log else {}),
            **(
                {
                    "test_parts": {
                        part: mean_std([e["test_parts"][part] for e in self.per_seed])[0] for part in split.test_parts
                    }
                }
                if split.test_parts
                else {}
            ),  # fmt: skip
            "recgen_version": __version__,
            "git_commit": self.commit,
            "processes": world()[1],  # data-parallel training processes (torchrun), 1 otherwise
            "machine": self.machine,
            "command": spec.command or " ".join(["recgen", *sys.argv[1:]]),
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }

    def run(self) -> dict[str, Any]:
        from recgen.models.training.distributed import is_main

        self.prepare()
        for seed in self.seeds_to_run():
            if not is_main():  # a data-parallel worker: it trains its share and ranks its share of the test users;
                m, _ = self.fit(seed)  # rank 0 validates, evaluates the rest and writes
                m.reset_stats()
                self.evaluate_test(m, seed)
                continue
            entry = self.run_seed(seed)
            self.per_seed = sorted([e for e in self.per_seed if e["seed"] != seed] + [entry], key=lambda e: e["seed"])
            self.save()  # after every seed: an interrupted run keeps what it finished
        if not is_main():
            return {}
        path = self.save()
        result = self.assemble()
        result["_path"] = str(path)
        return result


def _decode_variants(klass, base_cfg, changes: Sequence[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(label, typed field changes) per decode variant, checked before anything is fitted: only the model's decode-time
    fields may change."""
    allowed = klass.decode_fields
    out = []
    for change in changes:
        bad = sorted(set(change) - set(allowed))
        if bad:
            raise ConfigError(
                f"--decode-variant can only change fields {klass.__name__} reads when recommending "
                f"({', '.join(allowed) or 'it has none'}), not {', '.join(bad)}; use --set to train another model"
            )
        cfg = make_config(klass.Config, change, base=base_cfg)  # coerces and validates the values
        out.append((",".join(f"{k}={v}" for k, v in change.items()), {k: getattr(cfg, k) for k in change}))
    return out


def _grid_search(klass, base_cfg, grid: dict[str, list[str]], split, log) -> tuple[Any, dict[str, Any]]:
    """Fit every combination of the grid (seed of the base config) on train, score validation NDCG@10, and return
    the config with the best one (ties: the first in grid order) and the log of every point."""
    keys = list(grid)
    points = []
    best, best_cfg = float("-inf"), base_cfg
    for values in itertools.product(*(grid[k] for k in keys)):
        cfg = make_config(klass.Config, dict(zip(keys, values, strict=True)), base=base_cfg)
        m = klass(cfg).fit(split.train, valid=split.valid)
        v = evaluate(m, split.valid, ks=(10,)).metrics["ndcg@10"]
        points.append({**{k: getattr(cfg, k) for k in keys}, "valid_ndcg@10": v})
        log(f"grid {dict(zip(keys, values, strict=True))}: valid ndcg@10 {v:.4f}")
        if v > best:
            best, best_cfg = v, cfg
    chosen = {k: getattr(best_cfg, k) for k in keys}
    log(f"grid choice (validation NDCG@10 {best:.4f}): {chosen}")
    return best_cfg, {"metric": "valid ndcg@10", "points": points, "chosen": chosen}


def parse_grid(items: Sequence[str]) -> dict[str, list[str]]:
    """``key=v1,v2,...`` strings (``--grid``) -> {key: [values]}."""
    out: dict[str, list[str]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        vals = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not key.strip() or not vals:
            raise ConfigError(f"--grid takes key=v1,v2,..., got {item!r}")
        out[key.strip()] = vals
    return out
