"""``recgen simulate``: runs, resumes, and refuses bad input in one line."""

import json

import pytest

from recgen.cli.main import main
from recgen.testing import make_tiny_dataset


@pytest.fixture
def tiny_csv(tmp_path):
    ds = make_tiny_dataset()
    rows = ["user,item,timestamp"] + [
        f"{u},{i},{t}"
        for u, i, t in zip(ds.users.external(ds.user_ids), ds.items.external(ds.item_ids), ds.timestamps, strict=True)
    ]
    (tmp_path / "tiny.csv").write_text("\n".join(rows) + "\n")
    return tmp_path / "tiny.csv"


def test_simulate_run_logs_every_action_and_resumes(capsys, tiny_csv, tmp_path):
    log = tmp_path / "sim.jsonl"
    base = ["simulate", "run", str(tiny_csv), "--model", "ease", "--agents", "10", "--log", str(log)]
    assert main(base) == 0
    summary = json.loads(log.with_suffix(".json").read_text())
    assert summary["agents"] == 10 and summary["agents_resumed"] == 0 and summary["agents_per_second"] > 0
    assert sum(1 for line in log.read_text().splitlines() if '"satisfaction"' in line) == 10
    capsys.readouterr()
    assert main(base) == 2  # the log exists: never overwritten without --resume
    assert "pass --resume" in capsys.readouterr().err
    before = log.read_bytes()
    assert main([*base, "--resume"]) == 0  # nothing left to do
    assert log.read_bytes() == before
    assert json.loads(log.with_suffix(".json").read_text())["agents_resumed"] == 10


@pytest.mark.parametrize(
    "argv, match",
    [
        (["run", "{csv}", "--decider", "oracle"], "unknown decider 'oracle'"),
        (["run", "{csv}", "--workers", "0"], "--workers and --agents must be >= 1"),
        (["run", "{csv}", "--decider", "llm", "--llm", "nope:x"], "unknown LLM backend"),
        (["fidelity", "{csv}", "--m", "1,two"], "--m takes comma-separated integers"),
        (["interactive", "{csv}", "--models", "ease"], "give at least two"),
        (["dialogue", "{csv}", "--turns", "0"], "--users and --turns must be >= 1"),
    ],
)
def test_simulate_bad_input_is_one_line(capsys, tiny_csv, argv, match):
    code = main(["simulate", *[a.replace("{csv}", str(tiny_csv)) for a in argv]])
    err = capsys.readouterr().err
    assert code == 2 and match in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
