"""LLM batch jobs: resumable after a kill, nothing generated twice or lost, failures recorded; spread over two
real llama_cpp.server processes, one of them killed mid-job."""

import json
import threading
import time

import pytest

from recgen.errors import DataError
from recgen.llm import load_llm
from recgen.llm.base import LLM, Generation
from recgen.llm.batch import read_jobs, recover_jsonl, run_batch


def _jobs(n):
    return [
        {"id": f"j{i}", "prompt": f"Name a fruit that starts with the letter {chr(65 + i % 26)}."} for i in range(n)
    ]


def test_batch_resumes_without_generating_twice(embedded_llm, tmp_path):
    out = tmp_path / "out.jsonl"
    s = run_batch(embedded_llm, _jobs(5), out, max_tokens=8)
    assert s["generated"] == 5 and s["resumed"] == 0 and s["missing"] == 0 and s["completion_tokens"] > 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == [f"j{i}" for i in range(5)] and all(r["status"] == "ok" for r in rows)
    # a kill mid-write leaves a cut line: it is removed and that job alone runs again
    lines = out.read_bytes().splitlines(keepends=True)
    out.write_bytes(b"".join(lines[:3]) + lines[3][:20])
    again = run_batch(embedded_llm, _jobs(6), out, max_tokens=8)
    assert again["resumed"] == 3 and again["generated"] == 3
    ids = [json.loads(x)["id"] for x in out.read_text().splitlines()]
    assert sorted(ids) == [f"j{i}" for i in range(6)]  # each once
    assert run_batch(embedded_llm, _jobs(6), out, max_tokens=8)["generated"] == 0


class Flaky(LLM):
    """Planted failures: empty, then malformed JSON, then (for some jobs) valid JSON."""

    backend = "test"

    def __init__(self):
        super().__init__()
        self.calls = {}
        self.params = {}

    def identity(self):
        return {"backend": "test"}

    def _chat(self, messages, params):
        key = messages[-1]["content"]
        n = self.calls[key] = self.calls.get(key, 0) + 1
        self.params.setdefault(key, []).append((params.max_tokens, params.temperature, params.seed))
        if "long" in key:  # cut at the token budget until it is doubled twice
            cut = Generation(text='{"name": "ap', finish_reason="length")
            return cut if n < 3 else Generation(text='{"name": "a"}')
        if "never" in key:
            return Generation(text="" if n == 1 else "{not json")
        return Generation(text="" if n == 1 else '{"name": "apple"}', completion_tokens=3)


def test_malformed_generations_are_retried_then_recorded_missing(tmp_path):
    jobs = [{"id": "a", "prompt": "fine"}, {"id": "b", "prompt": "never valid"}, {"id": "c", "prompt": "long"}]
    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    llm = Flaky()
    s = run_batch(llm, jobs, tmp_path / "o.jsonl", json_schema=schema, retries=2, max_tokens=16)
    rows = {r["id"]: r for r in recover_jsonl(tmp_path / "o.jsonl")}
    assert s["generated"] == 2 and s["missing"] == 1
    # a retry is never the greedy call again: sampled after a bad output, twice the tokens after a cut one
    assert llm.params["never valid"] == [(16, 0.0, 0), (16, 0.7, 1), (16, 0.7, 2)]
    assert llm.params["long"] == [(16, 0.0, 0), (32, 0.0, 1), (64, 0.0, 2)] and rows["c"]["status"] == "ok"
    assert rows["a"]["status"] == "ok" and rows["a"]["json"] == {"name": "apple"} and rows["a"]["attempts"] == 2
    assert rows["b"]["status"] == "missing" and "JSON" in rows["b"]["error"] and rows["b"]["attempts"] == 3


def test_bad_job_files_are_refused(tmp_path):
    f = tmp_path / "jobs.jsonl"
    f.write_text('{"id": 1, "prompt": "x"}\n{"id": 1, "prompt": "y"}\n')
    with pytest.raises(DataError, match="appears twice"):
        read_jobs(f)
    f.write_text('{"prompt": "x"}\n')
    with pytest.raises(DataError, match='needs an "id"'):
        read_jobs(f)


def test_two_servers_one_killed_mid_job_nothing_lost_or_duplicated(embedded_gguf, tmp_path):
    from recgen.testing.llama_server import llama_servers

    with llama_servers(embedded_gguf, tmp_path, n=2) as (a, b):
        llm = load_llm(f"openai:{a.url},{b.url}", concurrency=2, max_retries=2, timeout=60)
        out = tmp_path / "out.jsonl"
        jobs = _jobs(24)

        def kill_b():
            while not out.exists() or out.read_text().count("\n") < 6:
                time.sleep(0.05)
            b.kill()

        killer = threading.Thread(target=kill_b)
        killer.start()
        s = run_batch(llm, jobs, out, max_tokens=8, workers=4)
        killer.join()
        rows = recover_jsonl(out)
        assert b.proc.poll() is not None  # the second server really died mid-job
        assert s["generated"] == 24 and s["missing"] == 0
        assert sorted(r["id"] for r in rows) == sorted(j["id"] for j in jobs)  # 0 lost, 0 duplicated
        info = llm.info()
        assert info["served"][0] > info["served"][1] > 0 and info["failovers"] >= 1
        llm.close()


class Slow(LLM):
    """A replica that takes a while per job and records how many replicas are busy at once."""

    backend = "test"
    busy = 0
    most = 0
    guard = threading.Lock()

    def __init__(self):
        super().__init__()
        self.served = 0

    def identity(self):
        return {"backend": "test"}

    def _chat(self, messages, params):
        with Slow.guard:
            Slow.busy += 1
            Slow.most = max(Slow.most, Slow.busy)
        time.sleep(0.05)
        with Slow.guard:
            Slow.busy -= 1
        self.served += 1
        return Generation(text=messages[-1]["content"].upper())


def test_replicas_run_side_by_side_one_job_each(tmp_path):
    replicas = [Slow(), Slow(), Slow()]
    s = run_batch(replicas, _jobs(12), tmp_path / "o.jsonl", workers=1)  # one worker per replica, whatever asked
    rows = recover_jsonl(tmp_path / "o.jsonl")
    assert (
        s["workers"] == 3
        and s["generated"] == 12
        and sorted(r["id"] for r in rows) == sorted(j["id"] for j in _jobs(12))
    )
    assert Slow.most == 3 and all(r.served > 0 for r in replicas) and sum(r.served for r in replicas) == 12


def test_llama_cpp_replicas_split_the_threads_and_write_what_one_model_writes(embedded_gguf, tmp_path, monkeypatch):
    from recgen.llm import load_replicas
    from recgen.llm.llamacpp import default_threads

    monkeypatch.delenv("RECGEN_LLM_THREADS", raising=False)
    schema = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20}}, "required": ["name"]}
    one = load_replicas(f"llamacpp:{embedded_gguf}", 1)
    two = load_replicas(f"llamacpp:{embedded_gguf}", 2)
    assert len(one) == 1 and len(two) == 2 and two[0] is not two[1]
    assert all(r.n_threads == max(1, default_threads() // 2) for r in two)
    a = run_batch(one, _jobs(4), tmp_path / "a.jsonl", max_tokens=24, json_schema=schema)
    b = run_batch(two, _jobs(4), tmp_path / "b.jsonl", max_tokens=24, json_schema=schema)
    assert a["generated"] == b["generated"] == 4 and b["workers"] == 2
    texts = [{r["id"]: r["text"] for r in recover_jsonl(tmp_path / f)} for f in ("a.jsonl", "b.jsonl")]
    assert texts[0] == texts[1]  # greedy: the same profile whichever copy wrote it
    monkeypatch.setenv("RECGEN_LLM_THREADS", "1")
    ones = load_replicas(f"llamacpp:{embedded_gguf}", 2)
    assert [r.n_threads for r in ones] == [1, 1]
    for r in one + two + ones:
        r.close()


def test_batched_first_tries_write_what_one_at_a_time_writes(embedded_gguf, tmp_path):
    """run_batch with batch=3 on the embedded model: the same rows as batch=1 (the first tries decoded together),
    a cut try retried alone with twice the tokens; a bad batch size is refused."""
    from recgen.errors import ConfigError
    from recgen.llm import load_replicas

    schema = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 40}}, "required": ["name"]}
    llm = load_replicas(f"llamacpp:{embedded_gguf}", 1)
    a = run_batch(llm, _jobs(5), tmp_path / "a.jsonl", max_tokens=10, json_schema=schema)
    b = run_batch(llm, _jobs(5), tmp_path / "b.jsonl", max_tokens=10, json_schema=schema, batch=3)
    assert a["generated"] == b["generated"] == 5 and b["batch"] == 3
    rows = [{r["id"]: (r["text"], r["attempts"], r["completion_tokens"]) for r in recover_jsonl(tmp_path / f)}
            for f in ("a.jsonl", "b.jsonl")]  # fmt: skip
    assert rows[0] == rows[1] and any(v[1] > 1 for v in rows[0].values())  # some cut at 10 tokens, retried
    with pytest.raises(ConfigError, match="batch"):
        run_batch(llm, _jobs(2), tmp_path / "c.jsonl", batch=0)
    llm[0].close()
