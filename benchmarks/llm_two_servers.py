"""An LLM batch job over two real ``llama_cpp.server`` processes, one of them killed (SIGKILL) mid-job: how many
answers were generated, lost and written twice, and how the requests were spread.

Starts two servers of the embedded SmolLM2 on loopback (one thread each), runs ``run_batch`` (the engine behind
``recgen llm batch`` and ``recgen augment profiles``) over ``--jobs`` prompts with ``--workers`` in flight through
``openai:URL1,URL2``, kills the second server once ``--kill-after`` answers are written, and counts the output
file's lines by job id.

    PYTHONPATH=src python benchmarks/llm_two_servers.py --jobs 200 --out benchmarks/results/speed/llm_two_servers.json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speedlib import save  # noqa: E402

from recgen.llm import load_llm  # noqa: E402
from recgen.llm.batch import recover_jsonl, run_batch  # noqa: E402
from recgen.llm.files import embedded_model_path  # noqa: E402
from recgen.testing.llama_server import llama_servers  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=200)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--kill-after", type=int, default=40, help="answers written before the second server dies")
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    jobs = [{"id": f"j{i}", "prompt": f"Describe a film set in city number {i} in one sentence."}
            for i in range(args.jobs)]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp, llama_servers(embedded_model_path(), tmp, n=2) as (a, b):
        llm = load_llm(f"openai:{a.url},{b.url}", concurrency=2, max_retries=2, timeout=60)
        out = Path(tmp) / "out.jsonl"
        killed_at: dict[str, float] = {}

        def kill_b() -> None:
            while not out.exists() or out.read_text().count("\n") < args.kill_after:
                time.sleep(0.05)
            b.kill()
            killed_at["answers_written"] = out.read_text().count("\n")

        killer = threading.Thread(target=kill_b)
        killer.start()
        t0 = time.perf_counter()
        summary = run_batch(llm, jobs, out, max_tokens=args.max_tokens, workers=args.workers)
        seconds = time.perf_counter() - t0
        killer.join()
        rows = recover_jsonl(out)
        counts = Counter(r["id"] for r in rows)
        info = llm.info()
        result = {
            "jobs": len(jobs),
            "generated": summary["generated"],
            "missing": summary["missing"],
            "lines": len(rows),
            "lost": sum(1 for j in jobs if j["id"] not in counts),
            "duplicated": sum(n - 1 for n in counts.values() if n > 1),
            "second_server_dead": b.proc.poll() is not None,
            "killed_after_answers": killed_at.get("answers_written"),
            "served_per_server": info.get("served"),
            "failovers": info.get("failovers"),
            "seconds": seconds,
            "completion_tokens": summary.get("completion_tokens"),
            "model": "SmolLM2-135M-Instruct (embedded), two llama_cpp.server processes on loopback, one thread each",
        }
        llm.close()
    print(result)
    save("llm_two_servers", args.out, **result, workers=args.workers, max_tokens=args.max_tokens)


if __name__ == "__main__":
    main()
