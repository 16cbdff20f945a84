"""Evaluation sharded over processes (torch.distributed, gloo): every process ranks every N-th batch of users and
all of them return the metrics of one process, per user."""

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from recgen.data.split import leave_one_out
from recgen.eval.evaluator import evaluate
from recgen.models import create_model
from recgen.testing import make_cluster_dataset


def _worker(rank: int, size: int, init: str, out: str, block: int) -> None:
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=init, rank=rank, world_size=size)
    try:
        split = leave_one_out(make_cluster_dataset(n_clusters=5, users_per_cluster=12, items_per_cluster=9))
        model = create_model("itemknn", k=5).fit(split.train)
        r = evaluate(model, split.test, ks=(1, 5, 10), batch_size=7, sharded=True, item_block=block)
        np.savez(f"{out}.{rank}.npz", **{k: v for k, v in r.per_user.items()}, metrics=np.array(
            [r.metrics[k] for k in sorted(r.metrics)]))  # fmt: skip
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.parametrize("block", [0, 4])
def test_sharded_evaluation_equals_one_process(tmp_path, block):
    split = leave_one_out(make_cluster_dataset(n_clusters=5, users_per_cluster=12, items_per_cluster=9))
    model = create_model("itemknn", k=5).fit(split.train)
    one = evaluate(model, split.test, ks=(1, 5, 10), batch_size=7, item_block=block)
    assert len(split.test) > 3 * 7  # several batches each, shared unevenly by the two processes
    init = f"file://{tmp_path / 'rendezvous'}"
    mp.spawn(_worker, args=(2, init, str(tmp_path / "r"), block), nprocs=2, join=True)
    for rank in range(2):
        got = np.load(tmp_path / f"r.{rank}.npz")
        np.testing.assert_allclose(got["metrics"], [one.metrics[k] for k in sorted(one.metrics)], rtol=0, atol=1e-12)
        for key, values in one.per_user.items():
            np.testing.assert_array_equal(got[key], values)
