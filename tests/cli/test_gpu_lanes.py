"""benchmarks/gpu/lanes.sh: parallel lanes under one deadline, every results file they wrote packed into one archive."""

import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu" / "lanes.sh"

pytestmark = pytest.mark.skipif(shutil.which("timeout") is None, reason="needs coreutils timeout")


def test_lanes_run_side_by_side_stop_at_the_deadline_and_pack_what_they_wrote(tmp_path):
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "benchmarks" / "results" / "old.json").write_text("{}")  # an earlier file: not packed
    lanes = tmp_path / "lanes.txt"
    lanes.write_text(
        "# a comment\n\n"
        "mkdir -p benchmarks/results/scaling && echo '{}' > benchmarks/results/scaling/a.json && echo \"$RECGEN\"\n"
        "mkdir -p benchmarks/lanes/s1 && echo '{}' > benchmarks/lanes/s1/c.json\n"
        "sleep 30; echo late > benchmarks/results/b.json\n"
    )
    out = tmp_path / "out"
    proc = subprocess.run(
        ["bash", str(SCRIPT), str(lanes), str(out), "3"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "3 lanes started" in proc.stdout
    with tarfile.open(out / "results.tgz") as t:
        assert t.getnames() == ["benchmarks/lanes/s1/c.json", "benchmarks/results/scaling/a.json"]
    assert not (tmp_path / "benchmarks" / "results" / "b.json").exists()  # the slow lane was stopped
    with tarfile.open(out / "logs.tgz") as t:
        logs = {m.name: t.extractfile(m).read().decode() for m in t.getmembers() if m.isfile()}
    assert "exit 0" in logs["logs/lane1.log"] and "recgen" in logs["logs/lane1.log"]
    assert "exit 124" in logs["logs/lane3.log"]  # timeout's status for a command it stopped
    assert sorted(p.name for p in out.iterdir()) == ["logs.tgz", "results.tgz"]  # few files: the device returns 8


def test_bad_arguments_are_named(tmp_path):
    proc = subprocess.run(["bash", str(SCRIPT), "nope.txt", "out", "5"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 2 and "no lane file nope.txt" in proc.stderr
    (tmp_path / "l.txt").write_text("true\n")
    proc = subprocess.run(["bash", str(SCRIPT), "l.txt", "out", "5m"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 2 and "SECONDS must be a whole number" in proc.stderr
