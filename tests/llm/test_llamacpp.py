"""The llamacpp backend on the embedded SmolLM2 (real model, real llama.cpp), and the `recgen llm` CLI."""

import json

import numpy as np
import pytest

from recgen.cli.main import main
from recgen.errors import ConfigError, DataError
from recgen.llm import load_llm, parse_spec
from recgen.llm.base import make_params


def test_greedy_generation_is_deterministic(embedded_llm):
    a = embedded_llm.chat("Name a fruit.", max_tokens=16)
    b = embedded_llm.chat("Name a fruit.", max_tokens=16)
    assert a.text and a.text == b.text
    assert 0 < a.completion_tokens <= 16 and a.prompt_tokens > 0
    raw = embedded_llm.complete("The capital of France is", max_tokens=8, stop=["\n"])
    assert "\n" not in raw.text


def test_json_schema_output_is_valid_and_in_the_enum(embedded_llm):
    titles = ["Toy Story", "Heat", "Fargo"]
    schema = {
        "type": "object",
        "properties": {"title": {"type": "string", "enum": titles}, "score": {"type": "integer"}},
        "required": ["title", "score"],
    }
    g = embedded_llm.chat("Pick a movie for a child and rate it from 1 to 5.", json_schema=schema, max_tokens=40)
    out = g.json()
    assert out["title"] in titles and isinstance(out["score"], int)


def test_grammar_constrains_output(embedded_llm):
    g = embedded_llm.complete("Is the sky blue? Answer:", grammar='root ::= " Yes" | " No"', max_tokens=4)
    assert g.text in (" Yes", " No")
    with pytest.raises(ConfigError, match="grammar"):
        embedded_llm.complete("x", grammar="root ::= ???", max_tokens=2)


def test_score_is_a_sum_of_next_token_logprobs(embedded_llm):
    prompt = "Question: what colour is grass?\nAnswer:"
    (green, purple) = embedded_llm.score(prompt, [" green", " purple"])
    assert green > purple and green < 0
    # a one-token continuation scores the same as the verbalizer call on that token
    nt = embedded_llm.next_token_logprobs(prompt, [" green"])
    assert nt[0] == pytest.approx(green, abs=1e-4) or len(embedded_llm._tokens(" green", False)) > 1
    # a two-part continuation: log p(ab) = log p(a) + log p(b | a)
    a, ab = embedded_llm.score(prompt, [" light", " light green"])
    (b_given_a,) = embedded_llm.score(prompt + " light", [" green"])
    assert ab == pytest.approx(a + b_given_a, abs=1e-3)


def test_next_token_logprobs_are_a_distribution(embedded_llm):
    labels = [chr(ord("A") + i) for i in range(20)]
    lp = np.array(embedded_llm.next_token_logprobs("Pick a letter from A to T.\nAnswer:", [" " + x for x in labels]))
    assert np.all(lp <= 0) and np.exp(lp).sum() <= 1.0 + 1e-6


def test_options_sharing_a_first_token_are_refused(embedded_llm):
    """Options " 1" .. " 5" are " " + digit for SmolLM2: scored by their first token they would all be equal (the
    simulated users' LLM ratings were all 3 for this reason). Refused; the space in the prompt tells them apart."""
    with pytest.raises(DataError, match="begin with the same token"):
        embedded_llm.next_token_logprobs("Rate it from 1 to 5.\nRating:", [" 1", " 2", " 3"])
    lp = embedded_llm.next_token_logprobs("Rate it from 1 to 5.\nRating: ", ["1", "2", "3", "4", "5"])
    assert len(set(lp)) == 5


def test_scores_do_not_depend_on_what_was_evaluated_before(embedded_llm):
    """Prompts that share a prefix reuse its KV cache in fixed chunks; every score equals that of a fresh
    evaluation, whatever came before (a short prompt re-scored after itself once differed by 0.085)."""
    long = "You liked Fargo (1996) and Heat (1995) and many other films of the nineties. Would you watch {}?\nAnswer:"
    prompts = [long.format("Babe (1995)"), long.format("Jaws (1975)"), "Question: what colour is grass?\nAnswer:"]

    def fresh(p):
        embedded_llm._held = []  # nothing reused: the whole prompt is evaluated
        return embedded_llm.next_token_logprobs(p, [" Yes", " No", " green"])

    want = [fresh(p) for p in prompts]
    for order in ([0, 1, 2, 2, 0], [2, 2, 1, 0, 1]):
        got = [embedded_llm.next_token_logprobs(prompts[k], [" Yes", " No", " green"]) for k in order]
        assert got == [want[k] for k in order]
    embedded_llm.chat("Name a fruit.", max_tokens=4)  # generation evaluates its own way; nothing reused after it
    assert embedded_llm.next_token_logprobs(prompts[2], [" Yes", " No", " green"]) == want[2]


def test_cache_returns_stored_answers(embedded_gguf, tmp_path):
    llm = load_llm(f"llamacpp:{embedded_gguf}", cache=tmp_path / "c.sqlite", n_threads=1)
    first = llm.chat("Say hi.", max_tokens=8)
    again = llm.chat("Say hi.", max_tokens=8)
    other = llm.chat("Say hi.", max_tokens=8, temperature=0.8, seed=3)
    assert not first.cached and again.cached and again.text == first.text and not other.cached
    assert llm.info()["model_sha256"] == llm.identity()["model_sha256"] and len(llm.info()["model_sha256"]) == 64
    llm.close()


def test_bad_specs_and_inputs(embedded_llm, tmp_path):
    with pytest.raises(ConfigError, match="unknown LLM backend"):
        parse_spec("gpt:foo")
    with pytest.raises(ConfigError, match="needs a target"):
        parse_spec("hf:")
    with pytest.raises(DataError, match="does not exist"):
        load_llm(f"llamacpp:{tmp_path / 'missing.gguf'}")
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a model")
    with pytest.raises(DataError, match="valid GGUF"):
        load_llm(f"llamacpp:{bad}")
    with pytest.raises(ConfigError, match="max_tokens"):
        embedded_llm.chat("hi", max_tokens=0)
    with pytest.raises(ConfigError, match="unknown generation parameter"):
        embedded_llm.chat("hi", temprature=0.5)
    with pytest.raises(DataError, match="role"):
        embedded_llm.chat([{"role": "robot", "content": "hi"}])
    with pytest.raises(DataError, match="exceeds the context"):
        embedded_llm.complete("word " * 3000, max_tokens=4)


def test_cli_generate_and_score_offline(capsys, embedded_gguf, tmp_path):
    spec = ["--model", f"llamacpp:{embedded_gguf}", "--cache", str(tmp_path / "c.sqlite")]
    assert main(["llm", "generate", "Name a colour.", "--max-tokens", "8", "--json", *spec]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["text"] and out["backend"] == "llamacpp" and len(out["model_sha256"]) == 64
    assert main(["llm", "score", "The sky is", "-c", " blue", "-c", " made of cheese", *spec]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["continuation"] for x in lines] == [" blue", " made of cheese"]
    schema = json.dumps({"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]})
    assert main(["llm", "generate", "Is water wet?", "--json-schema", schema, *spec]) == 0
    assert isinstance(json.loads(capsys.readouterr().out)["ok"], bool)
    assert main(["llm", "generate", "x", "--json-schema", "{nope", *spec]) == 2
    assert "not valid JSON" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv,match",
    [
        (["llm", "tallrec", "--train-samples", "a,b"], "comma-separated integers"),
        (["llm", "tallrec", "--train-samples", "0"], "positive integers"),
        (["llm", "generate", "hi", "--model", "llamacpp:/nonexistent.gguf"], "does not exist"),
        (["llm", "info", "--model", "gpt:x"], "unknown LLM backend"),
    ],
)
def test_llm_cli_bad_input_is_one_line(capsys, argv, match):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and match in err and len(err.strip().splitlines()) == 1


def test_greedy_constrained_generation_checks_the_likeliest_tokens_first(embedded_llm):
    """The lazy grammar checks (the 32 likeliest tokens, or the likeliest alone) give the tokens of masking the
    whole vocabulary at every step, and the text llama-cpp-python's own grammar-first sampler gives."""
    schema = {
        "type": "object",
        "properties": {"description": {"type": "string", "maxLength": 60}, "genres": {"type": "array",
                       "items": {"type": "string", "maxLength": 12}, "maxItems": 2}},
        "required": ["description", "genres"],
    }  # fmt: skip
    params = make_params(max_tokens=40, json_schema=schema)
    for title in ("Toy Story (1995; Animation, Children's, Comedy)", "Heat (1995; Action, Crime, Thriller)"):
        messages = [{"role": "user", "content": f"Describe this movie: {title}."}]
        toks = embedded_llm._llm.tokenize(embedded_llm.chat_prompt(messages).encode(), add_bos=False, special=True)
        before = list(embedded_llm.grammar_steps)
        lazy = embedded_llm._greedy_constrained(toks, params)
        full_checks = embedded_llm.grammar_steps[1] - before[1]
        first = embedded_llm._greedy_constrained(toks, params, top=1)
        full = embedded_llm._greedy_constrained(toks, params, top=0)
        assert lazy == first == full and lazy.completion_tokens > 5 and lazy.prompt_tokens == len(toks)
        assert embedded_llm.grammar_steps[1] - before[1] - full_checks >= lazy.completion_tokens  # top=0: every step
        embedded_llm._llm.reset()  # the library reuses a cached prefix otherwise (other batch cuts, other logits)
        ref = embedded_llm._llm.create_chat_completion(messages=messages, **embedded_llm._kwargs(params))
        assert lazy.text == ref["choices"][0]["message"]["content"]
        assert lazy.finish_reason == ref["choices"][0]["finish_reason"]
    # a stop string ends the constrained generation too, not included
    g = embedded_llm.complete("Is the sky blue? Answer:", grammar='root ::= " Yes, it is." | " No, it is not."',
                              max_tokens=8, stop=[","])  # fmt: skip
    assert g.text in (" Yes", " No, it is not.") and g.finish_reason == "stop"


def test_batched_greedy_generation_gives_the_tokens_of_one_at_a_time(embedded_gguf, tmp_path):
    """Several conversations decoded in one llama.cpp batch give the texts, finish reasons and token counts of one at
    a time (under a schema with prompts of different lengths; cut at max_tokens; a stop string), in any grouping;
    the cache answers what it holds and stores what the batch made."""
    from recgen.llm.cache import ResponseCache
    from recgen.llm.llamacpp import LlamaCppLLM

    llm = LlamaCppLLM(embedded_gguf, n_threads=1, cache=ResponseCache(tmp_path / "c.sqlite"))
    schema = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 30},
              "kinds": {"type": "array", "items": {"type": "string", "maxLength": 12}, "maxItems": 2}},
              "required": ["name", "kinds"]}  # fmt: skip
    convs = ["Describe Toy Story (1995) as JSON.", "Describe a red lipstick for a shop.", "Name a fruit.",
             "Describe the film Heat (1995; Action, Crime, Thriller) for a recommender system."]  # fmt: skip
    cases = [dict(max_tokens=40, json_schema=schema), dict(max_tokens=6, json_schema=schema),
             dict(max_tokens=30, grammar='root ::= [a-z ]+ "."', stop=[" is"])]  # fmt: skip
    finishes = set()
    for kw in cases:
        one = [llm.chat(c, **kw) for c in convs]  # stored in the cache; the batches below must not read it
        llm.cache = None
        many = llm.chat_many(convs, **kw)
        tail = llm.chat_many(convs[2:], **kw)  # other neighbours, decoded first
        regrouped = llm.chat_many(convs[:2], **kw) + tail
        for a, b, c in zip(one, many, regrouped, strict=True):
            assert (a.text, a.finish_reason, a.completion_tokens, a.prompt_tokens) == (
                b.text, b.finish_reason, b.completion_tokens, b.prompt_tokens) == (
                c.text, c.finish_reason, c.completion_tokens, c.prompt_tokens)  # fmt: skip
            finishes.add(a.finish_reason)
        llm.cache = ResponseCache(tmp_path / "c.sqlite")
    assert finishes == {"stop", "length"} and len({g.prompt_tokens for g in one}) > 1
    assert all(g.cached for g in llm.chat_many(convs, **cases[0]))  # what chat stored, chat_many reads
    fresh = llm.chat_many(["Name a colour.", "Name a city."], **cases[0])
    assert not any(g.cached for g in fresh) and all(g.cached for g in [llm.chat("Name a city.", **cases[0])])
    llm.close()
