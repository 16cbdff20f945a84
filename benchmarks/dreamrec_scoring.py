"""Where does DreamRec lose the signal? One fitted model, scored several ways on the same users.

DreamRec ranks items by the dot product of a generated "oracle" embedding with the item table. A fitted model
(the bench recipe given by ``--set``, epoch chosen on validation NDCG@10) is scored on validation and test with:

- ``sample``: the model's own ranking (guided DDPM reverse process from noise, ``inference_steps``);
- ``sample_w0``: the same without guidance (w = 0);
- ``x0_one_step``: one guided denoiser call at the last step on the starting noise, i.e. the model's estimate of
  the conditional mean E[e | history] (what an MSE-trained x0-predictor converges to), no reverse chain;
- ``sample_cosine``: the model's sample, ranked by cosine instead of dot product (removes the item-norm bias);
- ``condition``: the encoder's state c itself against the item table (no diffusion at all).

Pop on the same users is the floor. If ``x0_one_step`` is far above ``sample``, the reverse chain loses the signal;
if every variant is near chance, the fitted denoiser carries none (the budget or the method at this scale).

``--item-table sasrec`` first fits SASRec-CE (``--sasrec-set``) and gives DreamRec its item table, frozen and scaled
to unit variance per dimension (DreamRec's own starts from N(0, 1)): if DreamRec then ranks well, the item space it
learns for itself, not the diffusion, is what fails.

    PYTHONPATH=src RECGEN_DATA_DIR=../shared/datasets python benchmarks/dreamrec_scoring.py -d ml-100k \\
        --set max_seq_len=200 --set epochs=100 --set eval_every=5 --set patience=3 \\
        --out benchmarks/results/diffusion-investigation/ml-100k__dreamrec__scoring.json
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speedlib import save  # noqa: E402

from recgen.config import parse_sets  # noqa: E402
from recgen.data.loaders import load_dataset  # noqa: E402
from recgen.data.split import leave_one_out  # noqa: E402
from recgen.eval.evaluator import evaluate  # noqa: E402
from recgen.models import create_model  # noqa: E402
from recgen.models.diffusion.dreamrec import DreamRec, freeze_item_table, scaled_item_table  # noqa: E402
from recgen.models.diffusion.gaussian import query_generators, query_noise  # noqa: E402
from recgen.models.sequential.next_item import left_pad  # noqa: E402

VARIANTS = ("sample", "sample_w0", "x0_one_step", "sample_cosine", "condition")


class Probe(DreamRec):
    """A fitted DreamRec whose ranking is one of ``VARIANTS`` (set ``variant`` before evaluating)."""

    variant = "sample"

    @torch.no_grad()
    def _score(self, user_ids, histories, timestamps=None, *, decode):
        net = self._inference_net()
        c = net.encode(torch.from_numpy(left_pad(histories, decode.max_seq_len)))[:, -1]
        emb = net.item_embeddings()
        if self.variant == "condition":
            return c @ emb.T
        if self.variant == "x0_one_step":
            noise = query_noise(query_generators(histories, decode.seed), (1, net.dim), c.dtype)[:, 0]
            t = torch.full((len(c),), net.diffusion.steps - 1, dtype=torch.long)
            w = decode.guidance
            x0 = (1 + w) * net.denoise(noise, c, t) - w * net.denoise(noise, net.null_condition.expand_as(c), t)
            return x0 @ emb.T
        cfg = dataclasses.replace(decode, guidance=0.0) if self.variant == "sample_w0" else decode
        x = self.generate(net, c, histories, cfg)
        if self.variant == "sample_cosine":
            return F.normalize(x, dim=-1) @ F.normalize(emb, dim=-1).T
        return x @ emb.T


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-d", "--dataset", default="ml-100k")
    ap.add_argument("--set", action="append", default=[], help="model config KEY=VALUE (the bench recipe)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--users", type=int, default=0, help="seeded validation / test users (0 = all)")
    ap.add_argument("--item-table", choices=["own", "sasrec"], default="own", help="see the module docstring")
    ap.add_argument("--sasrec-set", action="append", default=[], help="SASRec config for --item-table sasrec")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    split = leave_one_out(load_dataset(args.dataset))
    valid, test = split.valid, split.test
    if args.users:
        rng = np.random.default_rng(0)
        valid = valid.select(np.sort(rng.choice(len(valid), min(args.users, len(valid)), False)))
        test = test.select(np.sort(rng.choice(len(test), min(args.users, len(test)), False)))
    sets = parse_sets(args.set)
    model = create_model("dreamrec", seed=args.seed, **sets)
    table_from = None
    if args.item_table == "sasrec":
        sas = create_model("sasrec", seed=args.seed, **parse_sets(args.sasrec_set)).fit(split.train, valid=split.valid)
        table_from = {"model": "sasrec", "config": parse_sets(args.sasrec_set), "best_epoch": sas.best_epoch_}
        table = scaled_item_table(sas)  # what the model's own item_table=sasrec does, with this SASRec recipe
        build = model._build_net

        def with_table(n_items):
            net = build(n_items)
            freeze_item_table(net, table)
            return net

        model._build_net = with_table
    t0 = time.perf_counter()
    model.fit(split.train, valid=split.valid)
    fit_s = time.perf_counter() - t0
    print(f"fitted in {fit_s:.0f}s, best epoch {model.best_epoch_}", flush=True)
    model.__class__ = Probe
    rows = []
    for v in VARIANTS:
        model.variant = v
        t0 = time.perf_counter()
        rv, rt = evaluate(model, valid, ks=(10,)), evaluate(model, test, ks=(10,))
        rows.append(
            {
                "variant": v,
                "valid_ndcg@10": rv.metrics["ndcg@10"],
                "test_recall@10": rt.metrics["recall@10"],
                "test_ndcg@10": rt.metrics["ndcg@10"],
                "seconds": time.perf_counter() - t0,
            }
        )
        print(rows[-1], flush=True)
    pop = create_model("pop").fit(split.train)
    rp = evaluate(pop, test, ks=(10,))
    save(
        "dreamrec_scoring", args.out, schema="recgen-dreamrec-scoring/1", dataset=args.dataset, seed=args.seed,
        config=sets, item_table=table_from, best_epoch=model.best_epoch_, fit_seconds=fit_s,
        valid_users=len(valid), test_users=len(test),
        variants=rows, pop_test_recall10=rp.metrics["recall@10"], pop_test_ndcg10=rp.metrics["ndcg@10"],
    )  # fmt: skip


if __name__ == "__main__":
    main()
