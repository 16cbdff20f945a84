"""Run the fault corpus (tests/faults/test_corpus.py) against another checkout of recgen (e.g. the code before a
change) and record which cases it fails: each case's setup is applied to a fresh workspace, then the other code's
CLI runs in a subprocess. A case passes when the command exits 2 with exactly one ``error:`` line (its last),
no traceback, and the expected fragment in that line.

    python benchmarks/fault_corpus_before.py --src /tmp/old/src --out benchmarks/results/faults/before.json
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from speedlib import save  # noqa: E402

from tests.faults.test_corpus import _ENV, CASES  # noqa: E402


def template(folder: Path) -> Path:
    """The corpus workspace, built with this checkout (as the test fixture builds it)."""
    from recgen.cli.main import main
    from recgen.testing import make_tiny_dataset
    from tests.faults.conftest import SASREC

    folder.mkdir(parents=True)
    ds = make_tiny_dataset()
    rows = ["user,item,timestamp,rating"] + [
        f"{u},{i},{t},{r}"
        for u, i, t, r in zip(
            ds.users.external(ds.user_ids), ds.items.external(ds.item_ids), ds.timestamps, ds.ratings, strict=True
        )
    ]
    (folder / "tiny.csv").write_text("\n".join(rows) + "\n")
    ds.save(folder / "tiny")
    for argv in (
        ["train", "-d", str(folder / "tiny"), "-m", "ease", "--set", "l2=10", "-o", str(folder / "ease")],
        ["train", "-d", str(folder / "tiny"), "-m", "pop", "-o", str(folder / "pop")],
        ["train", "-d", str(folder / "tiny"), "-m", "sasrec", *SASREC, "-o", str(folder / "sasrec"),
         "--run-dir", str(folder / "run"), "--split"],
        ["bench", "-d", str(folder / "tiny"), "-m", "ease", "--set", "l2=10", "--seeds", "1",
         "--out", str(folder / "results")],
    ):  # fmt: skip
        assert main(argv) == 0, argv
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, required=True, help="the src/ folder of the other checkout")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = template(Path(tmp) / "template")
        for case_id, setup, match in CASES:
            ws = Path(tmp) / case_id
            shutil.copytree(base, ws)
            _ENV.clear()
            argv = setup(ws)
            env = {**os.environ, **_ENV, "PYTHONPATH": str(args.src.resolve()), "RECGEN_PROGRESS": "0"}
            proc = subprocess.run([sys.executable, "-m", "recgen", *argv], env=env, capture_output=True, text=True)
            errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
            one_line = len(errors) == 1 and proc.stderr.rstrip().endswith(errors[0])
            verdict = (
                "pass" if proc.returncode == 2 and one_line and "Traceback" not in proc.stderr and match in errors[0]
                else "accepted silently (exit 0)" if proc.returncode == 0
                else "traceback" if "Traceback" in proc.stderr
                else "wrong or misleading message" if proc.returncode == 2 and one_line
                else f"exit {proc.returncode}"
            )  # fmt: skip
            rows.append(
                {"case": case_id, "verdict": verdict, "exit": proc.returncode, "error": (errors or [""])[-1][:300]}
            )
            print(f"{case_id}: {verdict}")
            shutil.rmtree(ws, ignore_errors=True)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
    save("fault_corpus_before", args.out, src=str(args.src), cases=len(rows), counts=counts, rows=rows)


if __name__ == "__main__":
    main()
