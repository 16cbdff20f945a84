"""Zero lost feedback, measured: concurrent clients post feedback to a real ``recgen serve`` process on SQLite and on
PostgreSQL (a temporary server), every tenth POST retried with its Idempotency-Key; then the same burst with the
server killed (SIGKILL) midway. Records, per store: events acknowledged, stored, lost (acknowledged but not
stored: must be 0) and duplicated (retries stored twice: must be 0).

    python benchmarks/serve_feedback.py --out benchmarks/results/speed/serve_feedback.json
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speedlib import save  # noqa: E402

from recgen.models import create_model  # noqa: E402
from recgen.serve.store import Store  # noqa: E402
from recgen.testing import make_tiny_dataset  # noqa: E402
from recgen.testing.postgres import free_port, temporary_postgres  # noqa: E402


def start(model_dir: Path, db: str) -> tuple[subprocess.Popen, str, str]:
    port = free_port()
    argv = [sys.executable, "-m", "recgen", "serve", "--model-dir", str(model_dir), "--db", db, "--port", str(port),
            "--create-key", "burst", "--rate", "0"]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "RECGEN_PROGRESS": "0"})  # fmt: skip
    key = proc.stdout.readline().strip().split()[-1]
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(url + "/health/ready", timeout=1).status_code == 200:
                return proc, url, key
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit("the server did not start")


def burst(url: str, key: str, clients: int, per_client: int, kill: subprocess.Popen | None) -> dict[str, int]:
    acked: list[int] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=10) as c:
            for i in range(per_client):
                body = {"user_id": f"c{n}", "item_id": f"i{i}", "event": "click"}
                headers = {"Idempotency-Key": f"{n}-{i}"}
                for _ in range(2 if i % 10 == 0 else 1):  # every tenth POST is retried with its key
                    try:
                        r = c.post("/v1/feedback", json=body, headers=headers)
                    except httpx.HTTPError:
                        return  # the server is gone
                    if r.status_code in (200, 201):
                        with lock:
                            acked.append(r.json()["event_id"])

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    if kill is not None:
        while len(acked) < clients * per_client // 3:
            time.sleep(0.01)
        kill.send_signal(signal.SIGKILL)
    for t in threads:
        t.join()
    return {"acknowledged_posts": len(acked), "acknowledged_events": len(set(acked)), "ids": sorted(set(acked))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--per-client", type=int, default=200)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, temporary_postgres() as pg:
        tmp = Path(tmp)
        create_model("ease", l2=10.0).fit(make_tiny_dataset()).save(tmp / "model")
        for backend, make_db in (
            ("sqlite", lambda n: f"sqlite:///{tmp / f'{n}.sqlite'}"),
            ("postgresql", lambda n: pg),
        ):
            for killed in (False, True):
                db = make_db(f"{backend}-{killed}")
                store = Store(db)
                with store.engine.begin() as conn:
                    conn.exec_driver_sql("DELETE FROM events")
                proc, url, key = start(tmp / "model", db)
                t0 = time.perf_counter()
                got = burst(url, key, args.clients, args.per_client, proc if killed else None)
                seconds = time.perf_counter() - t0
                if proc.poll() is None:
                    proc.terminate()
                proc.wait()
                stored = store.events()
                stored_ids = {e.id for e in stored}
                keys = [(e.user_id, e.item_id) for e in stored]
                row = {
                    "store": backend,
                    "killed_mid_burst": killed,
                    "clients": args.clients,
                    "posts_planned": args.clients * args.per_client,
                    "acknowledged_events": got["acknowledged_events"],
                    "stored_events": len(stored),
                    "lost": len(set(got["ids"]) - stored_ids),
                    "duplicated": len(keys) - len(set(keys)),
                    "events_per_second": got["acknowledged_posts"] / seconds,
                }
                rows.append(row)
                print(row, flush=True)
    save("serve_feedback", args.out, rows=rows)


if __name__ == "__main__":
    main()
