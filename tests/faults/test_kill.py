"""kill -9 at seeded random points of bench, train and convert (real subprocesses): what is on disk afterwards is
the earlier version or the finished one, never half of it, and resuming ends bit-for-bit where an uninterrupted
run ends."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from recgen.data.dataset import Dataset
from recgen.experiments.results import read_result
from recgen.models.registry import load_model

from .conftest import SASREC, snapshot

ENV = {**os.environ, "RECGEN_PROGRESS": "0", "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}


def recgen(*args: str) -> list[str]:
    return [sys.executable, "-m", "recgen", *args]


def kill_after_line(argv: list[str], marker: str, delay: float) -> int:
    """Start ``argv``, wait for a stderr line containing ``marker``, then ``delay`` seconds, then SIGKILL it.
    Returns the exit code (negative: killed)."""
    proc = subprocess.Popen(argv, env=ENV, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    for line in proc.stderr:
        if marker in line:
            break
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return proc.returncode


def no_temp_files(root: Path) -> None:
    assert not [p for p in snapshot(root) if ".tmp-" in p or ".old-" in p], "temporary files left behind"


def test_killed_bench_resumes_bit_for_bit(ws):
    """A 2-seed SASRec bench killed mid-training at a seeded random point, resumed with --resume from its run
    folder, ends with the losses, epochs and metrics of the uninterrupted run."""
    rng = random.Random(7)
    base = recgen("bench", "-d", str(ws / "tiny"), "-m", "sasrec", *SASREC, "--set", "epochs=6", "--seeds", "2")
    full = subprocess.run([*base, "--out", str(ws / "full")], env=ENV, capture_output=True, text=True)
    assert full.returncode == 0, full.stderr[-2000:]
    out, runs = ws / "cut", ws / "runs"
    code = kill_after_line([*base, "--out", str(out), "--run-dir", str(runs)], "epoch 2", rng.uniform(0.0, 1.5))
    assert code == -signal.SIGKILL
    for f in out.glob("*.json"):  # whatever was written reads back whole
        read_result(f)
    done = subprocess.run([*base, "--out", str(out), "--run-dir", str(runs), "--resume"], env=ENV,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    no_temp_files(out)  # what the killed run left was swept by the resumed one
    (a,), (b,) = list((ws / "full").glob("*.json")), list(out.glob("*.json"))
    a, b = read_result(a), read_result(b)
    for x, y in zip(a["per_seed"], b["per_seed"], strict=True):
        assert x["test"] == y["test"] and x["valid"] == y["valid"] and x["best_epoch"] == y["best_epoch"]
        assert [e["loss"] for e in x["train_log"]] == [e["loss"] for e in y["train_log"]]


def test_killed_train_resumes_to_the_same_model(ws):
    rng = random.Random(11)
    long = ["--set", "epochs=40", "--set", "patience=40"]
    base = recgen("train", "-d", str(ws / "tiny"), "-m", "sasrec", *SASREC, *long, "--split")
    full = subprocess.run([*base, "-o", str(ws / "m-full")], env=ENV, capture_output=True, text=True)
    assert full.returncode == 0, full.stderr[-2000:]
    code = kill_after_line([*base, "-o", str(ws / "m"), "--run-dir", str(ws / "r")], "epoch 2", rng.uniform(0, 0.2))
    assert code == -signal.SIGKILL
    assert not (ws / "m").exists()  # a model folder appears only once complete
    done = subprocess.run([*base, "-o", str(ws / "m"), "--run-dir", str(ws / "r"), "--resume"], env=ENV,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    a, b = load_model(ws / "m-full"), load_model(ws / "m")
    users = list(a.users_.ids[:20])
    for x, y in zip(a.recommend_batch(users, 10), b.recommend_batch(users, 10), strict=True):
        assert list(x.item_ids) == list(y.item_ids) and list(x.scores) == list(y.scores)


def test_killed_convert_leaves_the_earlier_dataset_or_the_new_one(ws):
    """``data convert`` over an existing folder, killed at seeded random points: the folder is always a whole
    dataset (the earlier one or the new one), never a mix."""
    rng = random.Random(3)
    rows = ["user,item,timestamp"] + [f"u{i % 997},i{(i * 7) % 1499},{i}" for i in range(200_000)]
    (ws / "big.csv").write_text("\n".join(rows) + "\n")
    target = ws / "converted"
    assert subprocess.run(recgen("data", "convert", str(ws / "tiny.csv"), str(target)), env=ENV).returncode == 0
    earlier = Dataset.load(target).fingerprint()
    outcomes = set()
    for _ in range(4):
        proc = subprocess.Popen(recgen("data", "convert", str(ws / "big.csv"), str(target)), env=ENV,
                                stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)  # fmt: skip
        time.sleep(rng.uniform(0.5, 3.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        fp = Dataset.load(target).fingerprint()  # loads, checked against its manifest
        outcomes.add("earlier" if fp == earlier else "new")
        if fp != earlier:
            assert Dataset.load(target).n_interactions == 200_000
    assert subprocess.run(recgen("data", "convert", str(ws / "tiny.csv"), str(target)), env=ENV).returncode == 0
    no_temp_files(ws)  # the next write of the same folder swept what the killed ones left
    assert Dataset.load(target).fingerprint() == earlier
