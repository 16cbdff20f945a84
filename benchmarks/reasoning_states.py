"""Which of ReaRec's states carries the ranking: a trained ERL run scored with each state alone and with the means.

ERL scores with the mean of the K + 1 states (h_0 the encoder's state at the last item, h_1..h_K the reasoning
steps). This script loads a finished ``recgen bench --run-dir`` seed (its best weights; nothing is trained: the
run folder's config must match), then ranks the whole catalogue for every validation and test user with

- ``h0``: the plain encoder's state alone (what the same weights give without reasoning);
- ``hK``: the state after reasoning step k alone, for k = 1..K;
- ``meanK``: the mean of h_0..h_k (ERL's own state at k = K).

Set against the same recipe without reasoning, ``h0`` separates the two ways ERL can lose accuracy: the shared
encoder trained worse (``h0`` below the plain model), or the reasoning steps pull a good ``h0`` away (the mean
below ``h0``).

    PYTHONPATH=src RECGEN_DATA_DIR=../shared/datasets python benchmarks/reasoning_states.py -d beauty -m sasrec \\
        --run-dir RUN/beauty__sasrec__leave-one-out__944df3c2/seed0 \\
        --out benchmarks/results/reasoning/beauty__sasrec__erl-states__seed0.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import NoReturn

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speedlib import save  # noqa: E402

from recgen.data.loaders import load_dataset  # noqa: E402
from recgen.data.split import leave_one_out  # noqa: E402
from recgen.errors import ConfigError, IntegrityError  # noqa: E402
from recgen.eval.evaluator import evaluate  # noqa: E402
from recgen.models import create_model  # noqa: E402
from recgen.models.sequential.reasoning import state_variants  # noqa: E402
from recgen.models.training.trainer import load_checkpoint  # noqa: E402


def fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-d", "--dataset", required=True)
    ap.add_argument("-m", "--model", required=True, help="sasrec or hstu")
    ap.add_argument("--run-dir", required=True, help="a finished seed's folder (config.json, last.pt, best.pt)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    run = Path(args.run_dir)
    if not (run / "config.json").exists() or not (run / "last.pt").exists():
        fail(f"{run} holds no finished run (config.json and last.pt); give a seed's run folder")
    cfg = json.loads((run / "config.json").read_text())
    if cfg.get("model") != args.model or not cfg.get("reason_steps") or cfg.get("reason_scheme") != "erl":
        fail(f"{run} is not an ERL run of {args.model} (model, reason_steps, reason_scheme)")
    try:
        state = load_checkpoint(run / "last.pt")["state"]
    except IntegrityError as e:
        fail(str(e))
    if not state["stop_reason"] and state["epoch"] < cfg["epochs"]:
        fail(f"the run in {run} has not finished; let it finish (recgen bench --resume) first")
    split = leave_one_out(load_dataset(args.dataset))
    fields = {k: v for k, v in cfg.items() if k != "model"}
    try:
        m = create_model(args.model, **fields).configure_run(run, resume=True)
        m.fit(split.train, valid=split.valid)  # a finished run trains no further: its best weights are loaded
    except ConfigError as e:
        fail(str(e))
    rows = []
    for name, (k, scheme) in state_variants(cfg["reason_steps"]).items():
        row = {"state": name, "reason_steps": k, "scheme": scheme}
        for part, es in (("valid", split.valid), ("test", split.test)):
            res = evaluate(m, es, ks=(10,), decode={"reason_score": name}).metrics
            row[part] = {"ndcg@10": res["ndcg@10"], "recall@10": res["recall@10"]}
        print(
            f"{name}: valid N@10 {row['valid']['ndcg@10']:.4f}, test N@10 {row['test']['ndcg@10']:.4f}, "
            f"R@10 {row['test']['recall@10']:.4f}"
        )
        rows.append(row)
    save(
        "reasoning-states",
        args.out,
        schema="recgen-reasoning-states/1",
        dataset=args.dataset,
        model=args.model,
        config=cfg,
        best_epoch=state["best_epoch"],
        stop_reason=state["stop_reason"],
        rows=rows,
    )


if __name__ == "__main__":
    main()
