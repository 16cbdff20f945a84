"""Results files never lose a seed: concurrent --only-seed runs on one --out both end in the file, and a
--resume run that plans fewer seeds than the file holds keeps the others."""

import json
import subprocess

from recgen.cli.main import main
from recgen.experiments.results import read_result

from .conftest import SASREC
from .test_kill import ENV, recgen


def test_concurrent_only_seed_runs_on_one_out_keep_both_seeds(ws):
    base = recgen("bench", "-d", str(ws / "tiny"), "-m", "sasrec", *SASREC, "--seeds", "2", "--out", str(ws / "o"))
    procs = [
        subprocess.Popen([*base, "--only-seed", str(s)], env=ENV, stderr=subprocess.PIPE, text=True) for s in (0, 1)
    ]
    errs = [p.communicate()[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    (path,) = list((ws / "o").glob("*.json"))
    r = read_result(path)
    assert r["seeds"] == [0, 1] and r["complete"]


def test_resume_planning_fewer_seeds_keeps_the_others(ws, capsys):
    out = str(ws / "o")
    argv = ["bench", "-d", str(ws / "tiny"), "-m", "ease", "--set", "l2=10", "--out", out]
    assert main([*argv, "--seeds", "3"]) == 0
    assert main([*argv, "--seeds", "1", "--resume"]) == 0
    (path,) = list((ws / "o").glob("*.json"))
    assert read_result(path)["seeds"] == [0, 1, 2]
    assert main([*argv, "--seeds", "1"]) == 2  # without --resume it would drop seeds 1 and 2: refused
    assert "pass --resume" in capsys.readouterr().err
    assert main([*argv, "--seeds", "1", "--force"]) == 0  # on purpose
    assert json.loads(path.read_text())["seeds"] == [0]
