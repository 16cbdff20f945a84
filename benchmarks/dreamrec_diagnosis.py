"""Why DreamRec ranks at chance on Beauty: does its item-embedding table collapse?

DreamRec learns the item embeddings with its own loss: the MSE between the denoiser's estimate and the target
item's embedding, with no negative items. That loss also falls when every embedding moves toward one point (the
estimate need only be near all of them), and ranking by dot product with the generated embedding then carries no
signal. This script trains DreamRec for a few epochs per variant and records, after every epoch, the training loss,
the mean item-embedding norm, the spread of the table (mean over dimensions of the across-item standard deviation),
the mean cosine similarity of random item pairs, and validation NDCG@10 / Recall@10 on seeded users; variants:

- ``reference``: the defaults (the reference's: target embedding trained through the MSE);
- ``detach``: ``detach_target=true`` (the MSE gradient does not reach the target embedding).

    PYTHONPATH=src RECGEN_DATA_DIR=../shared/datasets python benchmarks/dreamrec_diagnosis.py -d beauty \\
        --epochs 6 --out benchmarks/results/diffusion/beauty__dreamrec__diagnosis.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speedlib import save  # noqa: E402

from recgen.data.loaders import load_dataset  # noqa: E402
from recgen.data.split import leave_one_out  # noqa: E402
from recgen.eval.evaluator import evaluate  # noqa: E402
from recgen.models import create_model  # noqa: E402

VARIANTS = {"reference": {}, "detach": {"detach_target": True}}


def table_stats(emb: torch.Tensor, rng: np.random.Generator) -> dict[str, float]:
    e = emb[1:].detach().double()  # row 0 is padding
    i, j = rng.integers(0, len(e), 5000), rng.integers(0, len(e), 5000)
    cos = torch.nn.functional.cosine_similarity(e[i], e[j], dim=-1)
    return {
        "mean_norm": float(e.norm(dim=-1).mean()),
        "spread": float(e.std(dim=0).mean()),
        "mean_pair_cosine": float(cos.mean()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-d", "--dataset", default="beauty")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--variants", default="reference,detach")
    ap.add_argument("--valid-users", type=int, default=2000)
    ap.add_argument("--inference-steps", type=int, default=100)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    split = leave_one_out(load_dataset(args.dataset))
    rng = np.random.default_rng(0)
    valid = split.valid.select(np.sort(rng.choice(len(split.valid), min(args.valid_users, len(split.valid)), False)))
    rows = []
    for name in args.variants.split(","):
        curve = []
        model = create_model(
            "dreamrec", epochs=args.epochs, eval_every=args.epochs + 1, inference_steps=args.inference_steps,
            **VARIANTS[name],
        )  # fmt: skip

        def on_epoch(state, model=model, curve=curve, name=name) -> None:
            net = model.net_
            model._infer_net_ = None  # score with this epoch's weights
            was, fitted = net.training, model.fitted_
            model.fitted_ = True  # mid-training: score the weights as they are
            r = evaluate(model, valid, ks=(10,))
            net.train(was)
            model.fitted_, model._infer_net_ = fitted, None
            curve.append(
                {
                    "epoch": state.epoch,
                    "loss": state.log[-1]["loss"],
                    **table_stats(net.item_embeddings(), np.random.default_rng(1)),
                    "valid_ndcg@10": r.metrics["ndcg@10"],
                    "valid_recall@10": r.metrics["recall@10"],
                }
            )
            print(name, curve[-1], flush=True)

        model.configure_run(None, on_epoch_end=on_epoch)
        model.fit(split.train)
        rows.append({"variant": name, "config": VARIANTS[name], "curve": curve})
    pop = create_model("pop").fit(split.train)
    save(
        "dreamrec_diagnosis", args.out, schema="recgen-dreamrec-diagnosis/1", dataset=args.dataset,
        valid_users=len(valid), inference_steps=args.inference_steps, variants=rows,
        pop_valid_ndcg10=evaluate(pop, valid, ks=(10,)).metrics["ndcg@10"],
    )  # fmt: skip


if __name__ == "__main__":
    main()
