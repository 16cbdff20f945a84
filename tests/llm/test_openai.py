"""The openai backend against a real local OpenAI-compatible server (llama-cpp-python's, serving the embedded
SmolLM2), not a mock."""

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

from recgen.errors import BackendUnavailableError, DataError
from recgen.llm import load_llm


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(embedded_gguf, tmp_path_factory):
    port = _free_port()
    log = open(tmp_path_factory.mktemp("server") / "server.log", "w+b")  # a pipe would fill up and block it
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(embedded_gguf),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_threads",
            "1",
            "--n_ctx",
            "2048",
            "--logits_all",
            "true",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            pytest.fail(f"llama_cpp.server exited: {log.read().decode()[-2000:]}")
        try:
            if httpx.get(url + "/v1/models", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("llama_cpp.server did not start within 120 s")
    yield url
    proc.terminate()
    proc.wait(timeout=20)
    log.close()


def test_chat_and_completion_match_the_local_backend(server, embedded_llm):
    remote = load_llm(f"openai:{server}")
    assert remote.model.endswith(".gguf")
    a = remote.chat("Name a fruit.", max_tokens=12)
    b = remote.chat("Name a fruit.", max_tokens=12)
    assert a.text and a.text == b.text and a.completion_tokens > 0
    c = remote.complete("The capital of France is", max_tokens=6, stop=["\n"])
    assert "\n" not in c.text
    # same model file, same greedy decoding: the server's answer is the in-process answer
    assert a.text == embedded_llm.chat("Name a fruit.", max_tokens=12).text
    remote.close()


def test_json_schema_and_verbalizer_scoring(server, embedded_llm):
    remote = load_llm(f"openai:{server}")
    schema = {
        "type": "object",
        "properties": {"title": {"type": "string", "enum": ["Heat", "Fargo"]}},
        "required": ["title"],
    }
    out = remote.chat("Pick a crime film.", json_schema=schema, max_tokens=30).json()
    assert out["title"] in ("Heat", "Fargo")
    prompt = "Question: which letter comes first in the alphabet, A, B or C?\nAnswer: The letter is"
    opts = [" A", " B", " C"]
    remote_lp = remote.next_token_logprobs(prompt, opts)
    local_lp = embedded_llm.next_token_logprobs(prompt, opts)
    for r, loc in zip(remote_lp, local_lp, strict=True):
        assert r == pytest.approx(loc, abs=1e-2)
    # a trailing space belongs to the next token on a server: "...is " + "A" is scored as "...is" + " A"
    assert remote.next_token_logprobs(prompt + " ", ["A", "B", "C"]) == remote_lp
    with pytest.raises(DataError, match="end-of-text"):  # this prompt's greedy next token is EOS
        remote.next_token_logprobs("Pick a letter.\nAnswer:", opts)
    # llama-cpp-python's server misaligns echoed logprobs: exact scoring must refuse, not return wrong numbers
    with pytest.raises(DataError, match="cannot be scored exactly"):
        remote.score(prompt, [" A"])
    remote.close()


def test_bounded_concurrency_gives_the_sequential_answers(server):
    remote = load_llm(f"openai:{server}", concurrency=3)
    prompts = [f"Count to {i}." for i in range(1, 5)]
    parallel = remote.many(lambda p: remote.chat(p, max_tokens=8).text, prompts)
    assert parallel == [remote.chat(p, max_tokens=8).text for p in prompts]
    remote.close()


def test_unreachable_server_is_a_clear_error_after_retries():
    t0 = time.time()
    with pytest.raises(BackendUnavailableError, match="failed after 2 rounds.*is a server running"):
        load_llm(f"openai:http://127.0.0.1:{_free_port()}", max_retries=1, timeout=2)
    assert time.time() - t0 < 10
