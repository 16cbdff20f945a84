"""``recgen llm``: generate and score with an LLM backend, and the LLM recommender studies (TALLRec, BIGRec)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from recgen.cli.app import (
    cli,
    data_dir_option,
    dataset_options,
    run_study,
)
from recgen.errors import ConfigError

llm_option = click.option(
    "--model",
    "-m",
    "spec",
    default=None,
    help="LLM spec: llamacpp:smollm2 (default, embedded), llamacpp:PATH.gguf, hf:PATH, openai:URL[#MODEL].",
)
cache_option = click.option(
    "--cache",
    default=None,
    help="SQLite response cache file (default: RECGEN_LLM_CACHE, else none); --no-cache turns it off.",
)
no_cache_option = click.option("--no-cache", is_flag=True, help="Do not read or write the response cache.")


def _open_llm(spec, cache, no_cache):
    from recgen.llm import load_llm

    return load_llm(spec, cache=False if no_cache else (cache or None))


def _read_json_arg(value: str | None, what: str):
    if value is None:
        return None
    text = Path(value).read_text() if not value.lstrip().startswith("{") else value
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{what} is not valid JSON ({exc}); give a JSON object or a file holding one") from None


@cli.group("llm")
def llm_group() -> None:
    """Generate and score with an LLM backend (offline by default: the embedded SmolLM2)."""


@llm_group.command("generate")
@click.argument("prompt")
@llm_option
@click.option("--system", default=None, help="System message (chat mode).")
@click.option("--raw", is_flag=True, help="Raw completion of PROMPT (no chat template).")
@click.option("--max-tokens", default=128, show_default=True, type=int)
@click.option("--temperature", default=0.0, show_default=True, type=float)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--stop", multiple=True, help="Stop string (repeatable).")
@click.option("--json-schema", "json_schema", default=None, help="Constrain output to a JSON schema (JSON or file).")
@click.option("--grammar", default=None, type=click.Path(path_type=Path), help="Constrain output to a GBNF file.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole result as JSON.")
@cache_option
@no_cache_option
def llm_generate(
    prompt, spec, system, raw, max_tokens, temperature, seed, stop, json_schema, grammar, as_json, cache, no_cache
) -> None:
    """Generate a reply to PROMPT (chat) or a continuation of it (--raw)."""
    schema = _read_json_arg(json_schema, "--json-schema")
    gbnf = grammar.read_text() if grammar is not None else None
    llm = _open_llm(spec, cache, no_cache)
    params = dict(
        max_tokens=max_tokens, temperature=temperature, seed=seed, stop=stop, json_schema=schema, grammar=gbnf
    )
    if raw:
        if system:
            raise ConfigError("--system applies to chat mode; drop --raw or --system")
        g = llm.complete(prompt, **params)
    else:
        msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        g = llm.chat(msgs, **params)
    if as_json:
        click.echo(json.dumps({"text": g.text, **{k: v for k, v in vars(g).items() if k != "text"}, **llm.info()}))
    else:
        click.echo(g.text)
    llm.close()


@llm_group.command("score")
@click.argument("prompt")
@click.option("--continuation", "-c", "continuations", multiple=True, required=True, help="Repeatable.")
@click.option("--next-token", is_flag=True, help="Score only each option's first token (verbalizer scoring).")
@llm_option
@cache_option
@no_cache_option
def llm_score(prompt, continuations, next_token, spec, cache, no_cache) -> None:
    """Log-probability of each continuation given PROMPT, best first (JSON lines)."""
    llm = _open_llm(spec, cache, no_cache)
    values = llm.next_token_logprobs(prompt, continuations) if next_token else llm.score(prompt, continuations)
    for c, v in sorted(zip(continuations, values, strict=True), key=lambda cv: -cv[1]):
        click.echo(json.dumps({"continuation": c, "logprob": v}))
    llm.close()


@llm_group.command("tallrec")
@click.option("--dataset", "-d", default="ml-100k", show_default=True, help="A rated dataset with item titles.")
@data_dir_option
@click.option("--train-samples", default="16,64,256", show_default=True, help="Comma-separated training sizes.")
@click.option("--model", "-m", "base", default="smollm2", show_default=True, help="hf model: smollm2, folder or .gguf.")
@click.option("--set", "sets", multiple=True, help="TALLRecConfig override key=value (repeatable).")
@click.option("--out", default="benchmarks/results/llm", show_default=True, help="Folder for the results JSON.")
def llm_tallrec(dataset, data_dir, train_samples, base, sets, out) -> None:
    """TALLRec: zero-shot and LoRA-tuned AUC of "will the user like this item?" at several training sizes."""
    from recgen.experiments.studies.tallrec import run_tallrec

    try:
        sizes = tuple(int(v) for v in train_samples.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"--train-samples must be comma-separated integers, got {train_samples!r}") from None
    if not sizes or min(sizes) < 1:
        raise ConfigError(f"--train-samples must be positive integers, got {train_samples!r}")
    run_study(run_tallrec, dataset, sizes, llm=base, data_dir=data_dir, sets=sets, out_dir=out)


@llm_group.command("collm")
@click.argument("dataset", default="ml-100k")
@dataset_options
@click.option("--model", "-m", "base", default="smollm2", show_default=True, help="hf model: smollm2, folder or .gguf.")
@click.option("--test-pairs", default=400, show_default=True, help="Seeded labelled test pairs every row scores.")
@click.option("--models", default="ease", show_default=True, help="Ranking models scored beside it.")
@click.option("--save", default=None, help="Folder for the fitted adapter, mapping and MF.")
@click.option("--set", "sets", multiple=True, help="CoLLMConfig override key=value (repeatable).")
@click.option("--out", default="benchmarks/results/llm", show_default=True, help="Folder for the results JSON.")
def llm_collm(dataset, data, base, test_pairs, models, save, sets, out) -> None:
    """CoLLM: MF embeddings mapped into the LLM's token space for like / dislike, beside the text-only LLM, MF,
    ranking models and like-rate baselines on the same pairs."""
    from recgen.experiments.studies.collm import run_collm_study

    names = tuple(m.strip() for m in models.split(",") if m.strip())
    run_study(run_collm_study, dataset, llm=base, n_test=test_pairs, models=names, save=save, sets=sets,
              data={k: v for k, v in data.items() if v is not None}, out_dir=out)  # fmt: skip


@llm_group.command("llara")
@click.argument("dataset", default="ml-100k")
@dataset_options
@click.option("--model", "-m", "base", default="smollm2", show_default=True, help="hf model: smollm2, folder or .gguf.")
@click.option("--test-users", default=200, show_default=True, help="Seeded leave-one-out test users every row scores.")
@click.option(
    "--variants",
    default="text,linear",
    show_default=True,
    help="Curricula trained and evaluated: text (text-only LLM), linear (LLaRA's), hybrid.",
)
@click.option("--sasrec-set", "sasrec_sets", multiple=True, help="SASRec config override key=value (repeatable).")
@click.option("--save", default=None, help="Folder for the last hybrid variant's adapter and projector.")
@click.option("--set", "sets", multiple=True, help="LLaRAConfig override key=value (repeatable).")
@click.option("--out", default="benchmarks/results/llm", show_default=True, help="Folder for the results JSON.")
def llm_llara(dataset, data, base, test_users, variants, sasrec_sets, save, sets, out) -> None:
    """LLaRA: titles plus projected SASRec item embeddings as hybrid tokens; the LLM picks the next item from 20
    candidates (ValidRatio, HitRatio@1), beside the text-only LLM, SASRec-CE and popularity on the same candidates."""
    from recgen.config import parse_sets
    from recgen.experiments.studies.llara import run_llara_study
    from recgen.models.llm.llara import CURRICULA

    names = tuple(v.strip() for v in variants.split(",") if v.strip())
    bad = [v for v in names if v not in CURRICULA]
    if not names or bad:
        raise ConfigError(f"--variants must be comma-separated names from {CURRICULA}, got {variants!r}")
    run_study(run_llara_study, dataset, llm=base, n_test=test_users, variants=names, save=save, sets=sets,
              sasrec_sets=parse_sets(sasrec_sets), data={k: v for k, v in data.items() if v is not None},
              out_dir=out)  # fmt: skip


@llm_group.command("bigrec")
@click.option("--dataset", "-d", default="ml-100k", show_default=True, help="A dataset with item titles.")
@data_dir_option
@click.option("--max-eval-users", default=100, show_default=True, help="Seeded test users (0 = all).")
@click.option("--dpo-samples", default=128, show_default=True, help="Training samples offered to DPO (0 = no DPO).")
@click.option("--baselines", default="pop,ease", show_default=True, help="Retrievers fitted on the same split.")
@click.option("--set", "sets", multiple=True, help="BIGRecConfig override key=value (repeatable).")
@click.option("--out", default="benchmarks/results/llm", show_default=True, help="Folder for the results JSON.")
def llm_bigrec(dataset, data_dir, max_eval_users, dpo_samples, baselines, sets, out) -> None:
    """BIGRec study: one SFT fit, trie and L2 grounding, then DPO on top, on the same users as the retrievers."""
    from recgen.experiments.studies.bigrec import run_bigrec_study

    run_study(
        run_bigrec_study,
        dataset,
        max_eval_users=max_eval_users,
        dpo_samples=dpo_samples,
        baselines=tuple(b.strip() for b in baselines.split(",") if b.strip()),
        data_dir=data_dir,
        sets=sets,
        out_dir=out,
    )


@llm_group.command("injection")
@click.option("--dataset", "-d", default="ml-100k", show_default=True, help="A dataset with item titles.")
@data_dir_option
@click.option(
    "--users", default=40, show_default=True, help="Seeded test users whose candidates hold the planted item."
)
@llm_option
@click.option("--set", "sets", multiple=True, help="LLMRankConfig override key=value (repeatable).")
@click.option("--out", default="benchmarks/results/llm", show_default=True, help="Folder for the results JSON.")
def llm_injection(dataset, data_dir, users, spec, sets, out) -> None:
    """Plant a prompt injection in the most popular item's title; measure its exposure with and without
    neutralising titles, beside the clean catalogue and the retriever alone."""
    from recgen.experiments.studies.injection import run_injection_study

    run_study(run_injection_study, dataset, n_users=users, llm=spec, data_dir=data_dir, sets=sets, out_dir=out)


@llm_group.command("batch")
@click.argument("jobs", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="JSONL output (resumed if it exists).")
@llm_option
@cache_option
@no_cache_option
@click.option(
    "--workers", default=1, show_default=True, help="Jobs in flight (openai: requests; llama.cpp: model copies)."
)
@click.option("--batch", default=1, show_default=True, help="llama.cpp: jobs decoded at once on each copy under a "
              "schema (the same outputs, more tokens/s).")  # fmt: skip
@click.option("--max-tokens", default=128, show_default=True)
@click.option("--json-schema", default=None, help="Constrain every output to this JSON schema (a file or inline).")
@click.option("--retries", default=2, show_default=True, help="More tries for an empty or malformed generation.")
def llm_batch(jobs, out, spec, cache, no_cache, workers, batch, max_tokens, json_schema, retries) -> None:
    """Run a JSONL file of jobs ({"id", "prompt"} per line) through an LLM, one output line per job; a killed run
    resumes where it stopped (openai:URL1,URL2 spreads the jobs over several servers)."""
    from recgen.llm import load_replicas
    from recgen.llm.batch import read_jobs, run_batch

    replicas = load_replicas(spec, workers, cache=False if no_cache else (cache or None))
    summary = run_batch(replicas, read_jobs(jobs), out, max_tokens=max_tokens, json_schema=_read_json_arg(json_schema,
                        "--json-schema"), retries=retries, workers=workers, batch=batch, progress=True)  # fmt: skip
    summary["llm"] = replicas[0].info()
    for r in replicas:
        r.close()
    click.echo(json.dumps(summary, indent=2))


@llm_group.command("info")
@llm_option
def llm_info(spec) -> None:
    """Backend, model file and its SHA-256."""
    llm = _open_llm(spec, None, True)
    click.echo(json.dumps(llm.info(), indent=2))
    llm.close()
