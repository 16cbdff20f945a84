"""Shared pieces of the fault corpus: a workspace with every kind of file recgen writes (a CSV, a converted
dataset, model folders, a training run folder, results), built once per session and copied for each case, and
a runner that checks the contract every fault must keep: exit code 2, one ``error:`` line, no traceback, and no
file lost or half-written."""

import hashlib
import shutil
from pathlib import Path

import pytest

from recgen.cli.main import main
from recgen.testing import make_tiny_dataset

SASREC = ["--set", "epochs=3", "--set", "eval_every=1", "--set", "batch_size=16", "--set", "embedding_dim=8",
          "--set", "max_seq_len=8"]  # fmt: skip


def snapshot(root: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every file under ``root``."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="session")
def workspace_template(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("faults-template")
    ds = make_tiny_dataset()
    rows = ["user,item,timestamp,rating"] + [
        f"{u},{i},{t},{r}"
        for u, i, t, r in zip(
            ds.users.external(ds.user_ids), ds.items.external(ds.item_ids), ds.timestamps, ds.ratings, strict=True
        )
    ]
    (root / "tiny.csv").write_text("\n".join(rows) + "\n")
    ds.save(root / "tiny")
    for argv in (
        ["train", "-d", str(root / "tiny"), "-m", "ease", "--set", "l2=10", "-o", str(root / "ease")],
        ["train", "-d", str(root / "tiny"), "-m", "pop", "-o", str(root / "pop")],
        ["train", "-d", str(root / "tiny"), "-m", "sasrec", *SASREC, "-o", str(root / "sasrec"),
         "--run-dir", str(root / "run"), "--split"],
        ["bench", "-d", str(root / "tiny"), "-m", "ease", "--set", "l2=10", "--seeds", "1",
         "--out", str(root / "results")],
    ):  # fmt: skip
        assert main(argv) == 0, argv
    return root


@pytest.fixture
def ws(workspace_template, tmp_path) -> Path:
    """A fresh copy of the workspace for one case."""
    dst = tmp_path / "ws"
    shutil.copytree(workspace_template, dst)
    return dst


def run_fault(capsys, argv: list[str], root: Path, match: str, *, code: int = 2, changes: set[str] = frozenset()):
    """Run the CLI on a fault and check its contract: the exit code, exactly one ``error:`` line (the last, with
    ``match`` in it), no traceback, no temp file left, and every file under ``root`` as it was except ``changes``."""
    before = snapshot(root)
    got = main(argv)
    _, err = capsys.readouterr()
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert got == code, (got, err[-2000:])
    assert len(errors) == 1 and err.rstrip().endswith(errors[0]), err[-2000:]
    assert match in errors[0], errors[0]
    assert "Traceback" not in err
    after = snapshot(root)
    assert not [p for p in after if ".tmp-" in p or ".old-" in p], "temporary files left behind"
    lost = {p for p in before if p not in after or before[p] != after[p]} - set(changes)
    assert not lost, f"files lost or changed by a failed command: {sorted(lost)}"
    return errors[0]
