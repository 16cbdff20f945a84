"""Load test of ``recgen serve`` on loopback: recommend for known users with EASE and SASRec-CE on ML-100K at 1, 8
and 32 concurrent clients (locust, headless, bounded in time), requests/s, p50 / p95 / p99 latency and errors
per level, with the machine. The load generator shares the machine with the server (say so beside the figures).

    python benchmarks/serve_load.py --seconds 20 --out benchmarks/results/speed/serve_load.json
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speedlib import save  # noqa: E402

HERE = Path(__file__).resolve().parent
MODELS = {
    "ease": [],
    "sasrec": ["--set", "epochs=100", "--set", "eval_every=5", "--set", "patience=3", "--set", "max_seq_len=200"],
}


def start_server(model_dir: Path, db: str, port: int) -> tuple[subprocess.Popen, str]:
    argv = [sys.executable, "-m", "recgen", "serve", "--model-dir", str(model_dir), "--db", db, "--port", str(port),
            "--create-key", "load", "--rate", "0"]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    key = proc.stdout.readline().strip().split()[-1]
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=1).status_code == 200:
                return proc, key
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit("the server did not start")


def locust(url: str, key: str, users: list[str], clients: int, seconds: int, folder: Path) -> dict:
    prefix = folder / f"c{clients}"
    env = {**os.environ, "RECGEN_LOAD_USERS": ",".join(users), "RECGEN_LOAD_KEY": key}
    subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(HERE / "locustfile_serve.py"), "--headless", "-u", str(clients),
         "-r", str(clients), "-t", f"{seconds}s", "--host", url, "--csv", str(prefix), "--only-summary"],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    with open(f"{prefix}_stats.csv") as f:
        row = next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")
    return {
        "clients": clients,
        "requests": int(row["Request Count"]),
        "errors": int(row["Failure Count"]),
        "requests_per_second": float(row["Requests/s"]),
        "p50_ms": float(row["50%"]),
        "p95_ms": float(row["95%"]),
        "p99_ms": float(row["99%"]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--levels", default="1,8,32")
    ap.add_argument("--data-dir", default=os.environ.get("RECGEN_DATA_DIR", "data"))
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name, sets in MODELS.items():
            model_dir = tmp / name
            train = ["train", "-d", "ml-100k", "--data-dir", args.data_dir, "-m", name, *sets, "--split"]
            subprocess.run(
                [sys.executable, "-m", "recgen", *train, "-o", str(model_dir)], check=True, capture_output=True
            )
            proc, key = start_server(model_dir, f"sqlite:///{tmp / (name + '.sqlite')}", 8700 + len(rows))
            try:
                url = f"http://127.0.0.1:{8700 + len(rows)}"
                users = httpx.get(url + "/v1/users?limit=943", headers={"X-API-Key": key}).json()["users"]
                for clients in (int(c) for c in args.levels.split(",")):
                    r = locust(url, key, users, clients, args.seconds, tmp)
                    rows.append({"model": name, "dataset": "ml-100k", **r})
                    print(rows[-1], flush=True)
            finally:
                proc.terminate()
                proc.wait()
    save("serve_load", args.out, seconds_per_level=args.seconds, rows=rows,
         note="locust and the server share the machine's cores; loopback HTTP")  # fmt: skip


if __name__ == "__main__":
    main()
