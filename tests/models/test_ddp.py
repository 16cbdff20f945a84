"""Data-parallel training with torchrun (gloo, 2 CPU processes): the same global batch gives the 1-process loss
curve and metrics, rank 0 alone writes, and a killed 2-process run resumes."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from recgen.testing import make_tiny_dataset

SETS = ["--set", "epochs=6", "--set", "eval_every=2", "--set", "patience=5", "--set", "dropout=0",
        "--set", "batch_size=32", "--set", "embedding_dim=16", "--set", "max_seq_len=8"]  # fmt: skip


@pytest.fixture
def data(tmp_path):
    make_tiny_dataset().save(tmp_path / "tiny")
    return tmp_path / "tiny"


def _bench(data, out, *extra, timeout=300):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RECGEN_PROGRESS": "0"}
    cmd = [sys.executable, "-m", "recgen.cli.main", "bench", "-d", str(data), "-m", "sasrec", *SETS, "--out", str(out),
           *extra]  # fmt: skip
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def _kill_tree(pid):
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    os.kill(pid, signal.SIGSTOP)  # no respawn while the children die
    for child in children:
        _kill_tree(int(child))
    os.kill(pid, signal.SIGKILL)


def _result(folder):
    files = list(folder.glob("*.json"))
    assert len(files) == 1, files
    return json.loads(files[0].read_text())


def test_two_processes_match_one_with_the_same_global_batch(data, tmp_path):
    one = _bench(data, tmp_path / "one")
    assert one.returncode == 0, one.stderr[-2000:]
    two = _bench(data, tmp_path / "two", "--nproc", "2")
    assert two.returncode == 0, two.stderr[-2000:]
    a, b = _result(tmp_path / "one"), _result(tmp_path / "two")  # one results file: rank 0 alone writes
    assert (a["processes"], b["processes"]) == (1, 2) and b["command"].endswith("--nproc 2")
    la = [e["loss"] for e in a["per_seed"][0]["train_log"]]
    lb = [e["loss"] for e in b["per_seed"][0]["train_log"]]
    assert len(la) == len(lb) == 6
    assert la == pytest.approx(lb, rel=1e-4)  # float summation order only
    for k in ("ndcg@10", "recall@10"):
        assert a["test"][k] == pytest.approx(b["test"][k], abs=1e-6)
    assert b["per_seed"][0]["best_epoch"] == a["per_seed"][0]["best_epoch"]


def test_a_killed_two_process_run_resumes(data, tmp_path):
    runs = tmp_path / "runs"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RECGEN_PROGRESS": "0"}
    slow = [*SETS[:1], "epochs=60", *SETS[2:5], "patience=60", *SETS[6:]]
    cmd = [sys.executable, "-m", "recgen.cli.main", "bench", "-d", str(data), "-m", "sasrec", *slow, "--out",
           str(tmp_path / "cut"), "--run-dir", str(runs), "--nproc", "2"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    last = None
    while time.time() < deadline:
        found = list(runs.rglob("last.pt"))
        if found and found[0].stat().st_size > 0:
            last = found[0]
            break
        time.sleep(0.2)
    assert last is not None, "no checkpoint appeared"
    assert proc.poll() is None, "the run ended before it could be killed"
    _kill_tree(proc.pid)  # the launcher, torchrun and both workers (torchrun starts them in their own sessions)
    proc.wait()
    assert not subprocess.run(["pgrep", "-f", str(runs)], capture_output=True).stdout  # nothing left running
    resumed = subprocess.run([*cmd, "--resume"], env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    r = _result(tmp_path / "cut")
    entry = r["per_seed"][0]
    assert entry["resumed_from_epoch"] >= 1 and r["complete"]
    epochs = [e["epoch"] for e in entry["train_log"]]
    assert epochs == list(range(1, len(epochs) + 1))  # no epoch lost or run twice
