"""Peak memory and time of loading a large interactions file (synthetic, seeded; labelled synthetic in the results).

Writes a CSV of about ``--gb`` GB (``user,item,timestamp`` rows: power-law item popularity, 1M users, 200k
items), then runs ``recgen data info FILE --json`` in a subprocess under ``/usr/bin/time -v`` and records its peak
resident memory, wall time, the file size and the rows, with the machine. Example:

    python benchmarks/load_scale.py --gb 1 --out benchmarks/results/speed/load_scale.json
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speedlib import save  # noqa: E402


def write_csv(path: Path, gigabytes: float, seed: int = 0) -> int:
    """Append seeded synthetic rows in chunks until the file reaches the size; returns the number of rows."""
    rng = np.random.default_rng(seed)
    rows, t = 0, 1_000_000_000
    with open(path, "wb") as f:
        f.write(b"user,item,timestamp\n")
    while path.stat().st_size < gigabytes * 1e9:
        n = 2_000_000
        users = rng.integers(0, 1_000_000, n)
        items = np.minimum(rng.zipf(1.3, n), 200_000)  # power-law popularity
        ts = t + np.arange(n)
        t += n
        table = pa.table(
            {
                "user": pa.array(np.char.add("u", users.astype(str))),
                "item": pa.array(np.char.add("i", items.astype(str))),
                "timestamp": pa.array(ts),
            }
        )
        with open(path, "ab") as f:
            pacsv.write_csv(table, f, write_options=pacsv.WriteOptions(include_header=False))
        rows += n
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gb", type=float, default=1.0)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        path = Path(tmp) / "interactions.csv"
        rows = write_csv(path, args.gb)
        recgen = [sys.executable, "-m", "recgen", "data", "info", str(path), "--json"]
        t0 = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-v", *recgen], capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(proc.stderr[-2000:])
        peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
        stats = json.loads(proc.stdout)
        row = {
            "data": "synthetic (seeded): power-law item popularity, 1M users, 200k items",
            "file_bytes": path.stat().st_size,
            "rows": rows,
            "users": stats["users"],
            "items": stats["items"],
            "peak_rss_bytes": peak_kb * 1024,
            "peak_rss_bytes_per_row": peak_kb * 1024 / rows,
            "peak_rss_over_file_size": peak_kb * 1024 / path.stat().st_size,
            "seconds": seconds,
        }
    save("load_scale", args.out, rows=[row])
    print(json.dumps(row, indent=2))


if __name__ == "__main__":
    main()
