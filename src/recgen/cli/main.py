"""The ``recgen`` command line (click): thin wrappers over the library.

Every expected failure (bad path, bad format, bad option) ends with one line ``error: ...`` on stderr that says
what was wrong and how to fix it, and exit code 2 (1 for an unexpected I/O failure); never a traceback.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import sys
from pathlib import Path

import click

from recgen.errors import ConfigError, RecgenError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}

data_dir_option = click.option(
    "--data-dir",
    default=None,
    help="Folder holding named datasets (default: RECGEN_DATA_DIR, then ~/.cache/recgen/datasets).",
)
format_option = click.option(
    "--format",
    "-f",
    "format_",
    default=None,
    help="Format of a path: movielens, recbole, sequences, s3rec, "
    "amazon-p5, amazon-raw, csv, parquet, recgen (detected when unambiguous).",
)
columns_option = click.option("--columns", default=None, help="Column map for csv/parquet: user=COL,item=COL,...")
results_dir_option = click.option(
    "--results",
    default="benchmarks/results",
    show_default=True,
    type=click.Path(path_type=Path),
    help="Folder of results JSON.",
)


def out_folder_option(default: str, help: str):
    """``--out FOLDER`` for a command that writes results files there."""
    return click.option("--out", default=default, show_default=True, type=click.Path(path_type=Path), help=help)


sep_option = click.option("--sep", default=None, help="Field separator for csv (default comma; tab for .tsv).")
protocol_option = click.option(
    "--protocol",
    default="leave-one-out",
    show_default=True,
    help="Split: leave-one-out, temporal (global time), ratio (random per user), user-temporal (time per user).",
)
valid_frac_option = click.option(
    "--valid-frac", type=float, default=None, help="Validation fraction for ratio/temporal splits."
)
test_frac_option = click.option(
    "--test-frac", type=float, default=None, help="Test fraction for ratio/temporal splits."
)


def _parse_columns(columns: str | None) -> dict[str, str] | None:
    if not columns:
        return None
    out = {}
    for part in columns.split(","):
        key, sep, val = part.partition("=")
        if not sep:
            raise ConfigError(f"--columns takes role=column pairs such as user=userId,item=movieId; got {part!r}")
        out[key.strip()] = val.strip()
    return out


def _echo_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2, default=str))


def _log(message: str) -> None:
    click.echo(message, err=True)


_ARGV: list[str] | None = None  # the arguments main() was given (sys.argv[1:] from a shell, a list from Python)


def _command_line() -> str:
    """The command as typed (quoted), stored in every results file."""
    args = _ARGV if _ARGV is not None else sys.argv[1:]
    return "recgen " + " ".join(shlex.quote(a) for a in args)


def _run_study(fn, *args, sets=(), **kwargs) -> None:
    """Run a study function with the shared arguments (parsed --set, command line, logging), print its file."""
    from recgen.config import parse_sets

    r = fn(*args, sets=parse_sets(sets), command=_command_line(), log=_log, **kwargs)
    click.echo(f"results: {r['_path']}")


@click.group(context_settings=CONTEXT)
def cli() -> None:
    """recgen: generative recommendation with honest, full-ranking evaluation."""


@cli.group("data")
def data_group() -> None:
    """Datasets: inspect, fetch, convert."""


# ------------------------------------------------------------------------------------------ data
@data_group.command("info")
@click.argument("name_or_path")
@format_option
@data_dir_option
@columns_option
@sep_option
@click.option("--encoding", default=None, help="Text encoding for csv (default utf-8).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def data_info(name_or_path, format_, data_dir, columns, sep, encoding, as_json) -> None:
    """Users, items, interactions and sequence-length statistics of NAME_OR_PATH."""
    from recgen.data.loaders import load_dataset

    ds = load_dataset(
        name_or_path,
        format=format_,
        data_dir=data_dir,
        columns=_parse_columns(columns),
        sep=sep,
        encoding=encoding,
    )
    stats = ds.stats()
    if as_json:
        _echo_json(stats)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"dataset {ds.name}", show_header=False)
    for k, v in stats.items():
        table.add_row(
            k,
            f"{v:,}"
            if isinstance(v, int) and not isinstance(v, bool)
            else (f"{v:.4g}" if isinstance(v, float) else str(v)),
        )
    Console().print(table)


@data_group.command("fetch")
@click.argument("name")
@data_dir_option
@click.option("--force", is_flag=True, help="Download again even if present.")
def data_fetch(name, data_dir, force) -> None:
    """Download a dataset's official archive (checksum verified) into the data directory."""
    from recgen.data.fetch import fetch

    click.echo(str(fetch(name, data_dir, force=force, log=_log)))


@data_group.command("convert")
@click.argument("name_or_path")
@click.argument("out", type=click.Path(path_type=Path))
@format_option
@data_dir_option
@columns_option
@sep_option
def data_convert(name_or_path, out, format_, data_dir, columns, sep) -> None:
    """Convert any supported format to recgen's native folder OUT (Parquet + schema.json)."""
    from recgen.data.loaders import load_dataset

    ds = load_dataset(name_or_path, format=format_, data_dir=data_dir, columns=_parse_columns(columns), sep=sep)
    ds.save(out)
    click.echo(f"wrote {ds} to {out}")


# ----------------------------------------------------------------------------------------- bench
def _split_args(protocol: str, valid_frac: float | None, test_frac: float | None) -> dict:
    args = {k: v for k, v in (("valid_frac", valid_frac), ("test_frac", test_frac)) if v is not None}
    if args and protocol in ("leave-one-out", "loo"):
        raise ConfigError(
            "--valid-frac/--test-frac apply to ratio, temporal and user-temporal splits, not leave-one-out"
        )
    return args


@cli.command("bench")
@click.option("--dataset", "-d", required=True, help="Dataset name or path.")
@click.option("--model", "-m", required=True, help="Model name (see `recgen models`).")
@format_option
@data_dir_option
@click.option("--set", "sets", multiple=True, help="Config override key=value (repeatable).")
@click.option("--seeds", default=1, show_default=True, help="Number of seeds (0..N-1); mean and spread reported.")
@protocol_option
@valid_frac_option
@test_frac_option
@out_folder_option("benchmarks/results", "Folder for the results JSON.")
@click.option("--include-seen", is_flag=True, help="Do not exclude history items from the rankings.")
@click.option("--sampled", default=0, help="Also compute labelled sampled metrics with N negatives.")
@click.option(
    "--max-eval-users",
    default=0,
    show_default=True,
    help="Evaluate on this many seeded random users of valid and test (0 = all; for costly models).",
)
@click.option(
    "--grid",
    multiple=True,
    help="Choose a config field on validation NDCG@10 first: key=v1,v2,... (repeatable; all combinations).",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Keep the seeds an earlier results file of the same run already holds; run only the missing ones "
    "(with --run-dir, a seed interrupted mid-training continues from its last epoch).",
)
@click.option(
    "--run-dir",
    default=None,
    type=click.Path(path_type=Path),
    help="Neural models: keep each seed's last.pt/best.pt under this folder, so --resume can continue a seed "
    "interrupted mid-training.",
)
@click.option(
    "--decode-variant",
    "decode_variants",
    multiple=True,
    help="Also evaluate test with decode-time fields changed, same fitted model: key=v[,key=v] "
    "(repeatable; e.g. tiger: constrained=false, beam=50).",
)
@click.option(
    "--only-seed",
    "only_seeds",
    multiple=True,
    type=int,
    help="Run only this seed of the --seeds planned (repeatable); for seeds run in parallel processes with "
    "separate --out folders, joined afterwards by `recgen merge-results`.",
)
def bench(
    dataset,
    model,
    format_,
    data_dir,
    sets,
    seeds,
    protocol,
    valid_frac,
    test_frac,
    out,
    include_seen,
    sampled,
    max_eval_users,
    grid,
    resume,
    run_dir,
    decode_variants,
    only_seeds,
) -> None:
    """Fit on train, choose on validation, evaluate test (full ranking); write a results JSON, print a table."""
    from recgen.config import parse_sets
    from recgen.eval.bench import HEADLINE, parse_grid, run_bench

    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {seeds}")
    if sampled < 0:
        raise ConfigError(f"--sampled must be >= 0, got {sampled}")
    result = run_bench(
        dataset,
        model,
        format=format_,
        data_dir=data_dir,
        sets=parse_sets(sets),
        seeds=seeds,
        protocol=protocol,
        split_args=_split_args(protocol, valid_frac, test_frac),
        out_dir=out,
        exclude_seen=not include_seen,
        sampled_negatives=sampled,
        max_eval_users=max_eval_users,
        grid=parse_grid(grid),
        command=_command_line(),
        resume=resume,
        decode_variants=[parse_sets(v.split(",")) for v in decode_variants],
        only_seeds=only_seeds,
        run_dir=run_dir,
        log=_log,
    )
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"{result['model']} on {result['dataset']} ({result['protocol']['name']}, "
        f"{len(result['seeds'])} seed(s), full ranking)"
    )
    table.add_column("split")
    for k in HEADLINE:
        table.add_column(k, justify="right")
    for split in ("valid", "test"):
        if not result[split]:
            continue  # zero-shot models skip validation
        cells = []
        for k in HEADLINE:
            m, s = result[split][k], result[f"{split}_std"][k]
            cells.append(f"{m:.4f}" + (f" ± {s:.4f}" if len(result["seeds"]) > 1 else ""))
        table.add_row(split, *cells)
    Console().print(table)
    click.echo(f"protocol: {result['protocol']['description']}")
    click.echo(
        f"eval: {result['throughput']['eval_users_per_second']:.0f} users/s; "
        f"fit: {result['timings']['fit_seconds_mean']:.1f} s; results: {result['_path']}"
    )


@cli.command("merge-results")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@out_folder_option("benchmarks/results", "Folder for the joined results JSON (same file name as its sources).")
@click.option(
    "--mixed-devices",
    is_flag=True,
    help="Also join files that differ only in the device they trained on (e.g. a GPU seed and CPU seeds); each "
    "seed records its device and speeds are given per device.",
)
def merge_results_cmd(files, out, mixed_devices) -> None:
    """Join results files of one run whose seeds ran apart (`bench --only-seed`, other machines) into one file."""
    from recgen.eval.bench import merge_results

    r = merge_results(files, out, command=_command_line(), mixed_devices=mixed_devices)
    state = "complete" if r["complete"] else f"{len(r['seeds'])} of {r['seeds_planned']} seeds"
    click.echo(
        f"seeds {r['seeds']} ({state}): test ndcg@10 {r['test']['ndcg@10']:.4f} ± {r['test_std']['ndcg@10']:.4f}, "
        f"recall@10 {r['test']['recall@10']:.4f}; results: {r['_path']}"
    )


@cli.command("report")
@results_dir_option
@click.option(
    "--out",
    default="benchmarks/RESULTS.md",
    show_default=True,
    type=click.Path(path_type=Path),
    help="Markdown report to write.",
)
@click.option(
    "--readme",
    default="README.md",
    show_default=True,
    type=click.Path(path_type=Path),
    help="README whose results block is regenerated.",
)
def report(results, out, readme) -> None:
    """Regenerate benchmarks/RESULTS.md and the README results table from the results files."""
    from recgen.eval.report import write_report

    if not results.is_dir():
        raise ConfigError(f"results folder not found: {results}; run `recgen bench` first or pass --results")
    readme = readme if str(readme) not in ("", ".", "none") else None
    write_report(results, out, readme)
    click.echo(f"wrote {out}" + (f" and the results block of {readme}" if readme else ""))


@cli.command("plot-scaling")
@click.option("--dataset", "-d", required=True, help="Dataset whose results to plot.")
@results_dir_option
@click.option("--out", required=True, type=click.Path(path_type=Path), help="PNG file to write.")
@click.option("--metric", default="ndcg@10", show_default=True, help="Test metric on the y axis.")
def plot_scaling(dataset, results, out, metric) -> None:
    """Plot test metric against non-embedding parameters and training FLOPs from results files."""
    from recgen.eval.plots import scaling_plot

    click.echo(f"wrote {scaling_plot(dataset, out, results_dir=results, metric=metric)}")


@cli.command("diffusion-steps")
@click.option("--dataset", "-d", required=True, help="Dataset name or path.")
@click.option("--model", "-m", required=True, help="A diffusion model: diffrec, ldiffrec or dreamrec.")
@data_dir_option
@click.option("--set", "sets", multiple=True, help="Config override key=value (repeatable).")
@click.option("--steps", "steps_", required=True, help="Comma-separated inference step counts, e.g. 1,2,5,10.")
@protocol_option
@valid_frac_option
@test_frac_option
@out_folder_option("benchmarks/results/steps", "Folder for the steps JSON.")
@click.option(
    "--plot",
    default="benchmarks/diffusion-steps.png",
    show_default=True,
    type=click.Path(path_type=Path),
    help="PNG redrawn from every steps JSON in --out.",
)
def diffusion_steps(dataset, model, data_dir, sets, steps_, protocol, valid_frac, test_frac, out, plot) -> None:
    """Fit a diffusion model once, then evaluate test accuracy and speed at several inference step counts."""
    from recgen.config import parse_sets
    from recgen.eval.steps import load_steps_results, run_steps_sweep, steps_plot

    try:
        steps = [int(v) for v in steps_.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--steps must be comma-separated integers, got {steps_!r}") from None
    result = run_steps_sweep(
        dataset,
        model,
        steps,
        sets=parse_sets(sets),
        data_dir=data_dir,
        protocol=protocol,
        split_args=_split_args(protocol, valid_frac, test_frac),
        out_dir=out,
        command=_command_line(),
        log=_log,
    )
    click.echo(f"results: {result['_path']}")
    click.echo(f"wrote {steps_plot(load_steps_results(out), plot)}")


# ------------------------------------------------------------------------------ train / recommend
@cli.command("train")
@click.option("--dataset", "-d", required=True, help="Dataset name or path.")
@click.option("--model", "-m", required=True, help="Model name.")
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="Folder to save the model to.")
@format_option
@data_dir_option
@click.option("--set", "sets", multiple=True, help="Config override key=value (repeatable).")
@click.option(
    "--run-dir",
    default=None,
    type=click.Path(path_type=Path),
    help="Neural models: keep last.pt/best.pt here (needed for --resume).",
)
@click.option("--resume", is_flag=True, help="Neural models: continue an interrupted run from --run-dir.")
@click.option(
    "--split",
    is_flag=True,
    help="Fit on the leave-one-out training part only (selecting on validation) instead of all interactions.",
)
def train(dataset, model, out, format_, data_dir, sets, run_dir, resume, split) -> None:
    """Fit a model and save it as a checkpoint folder (config.json + safetensors + vocabularies)."""
    from recgen.config import parse_sets
    from recgen.data.loaders import load_dataset
    from recgen.data.split import leave_one_out
    from recgen.models.registry import check_resumable, create_model

    m = create_model(model, **parse_sets(sets))
    if run_dir is not None or resume:
        check_resumable(model, "--run-dir/--resume")
        if resume and run_dir is None:
            raise ConfigError("--resume needs --run-dir (the folder of the interrupted run)")
        m.configure_run(run_dir, resume=resume)
    ds = load_dataset(dataset, format=format_, data_dir=data_dir)
    if split:
        sp = leave_one_out(ds)
        m.fit(sp.train, valid=sp.valid)
    else:
        m.fit(ds)
    m.save(out)
    click.echo(f"saved {model} fitted on {ds.name} ({ds.n_users} users, {ds.n_items} items) to {out}")


@cli.command("recommend")
@click.option("--model-dir", required=True, type=click.Path(path_type=Path), help="A saved model folder.")
@click.option("--user", "-u", "users", multiple=True, help="External user id (repeatable).")
@click.option("--items", default=None, help="Comma-separated item ids of a session, instead of --user.")
@click.option("-k", "k", default=10, show_default=True, help="Number of items.")
@click.option("--include-seen", is_flag=True, help="Allow items from the history.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def recommend(model_dir, users, items, k, include_seen, as_json) -> None:
    """Top-k recommendations for users (or a session of items) from a saved model."""
    from recgen.models.base import check_k
    from recgen.models.registry import load_model

    check_k(k)
    if not users and not items:
        raise ConfigError("give --user USER (repeatable) or --items ITEM,ITEM,...")
    if not model_dir.is_dir():
        raise ConfigError(f"model folder not found: {model_dir}; train one with `recgen train ... --out DIR`")
    m = load_model(model_dir)
    queries = [(u, u) for u in users]
    if items:
        queries.append((items, [i.strip() for i in items.split(",") if i.strip()]))
    recs = m.recommend_batch([q for _, q in queries], k, exclude_seen=not include_seen)
    titles = m.item_titles()
    out = []
    for (label, q), r in zip(queries, recs, strict=True):
        out.append(
            {
                "query": label,
                "known_user": (q in m.users_) if isinstance(q, str) else None,
                "items": [
                    {**x, **({"title": titles[x["item_id"]]} if x["item_id"] in titles else {})} for x in r.to_list()
                ],
            }
        )
    if as_json:
        _echo_json(out)
        return
    for entry in out:
        note = "" if entry["known_user"] in (True, None) else " (unknown user: most popular items)"
        click.echo(f"{entry['query']}{note}:")
        for rank, x in enumerate(entry["items"], 1):
            click.echo(f"  {rank:>3}. {x['item_id']}  {x['score']:.4f}  {x.get('title', '')}".rstrip())


@cli.command("models")
def models() -> None:
    """List the registered models."""
    from recgen.models.registry import available_models

    for name in available_models():
        click.echo(name)


@cli.command("version")
def version() -> None:
    """Print the recgen version."""
    from recgen import __version__

    click.echo(__version__)


# ---------------------------------------------------------------------------------------------- llm
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


@cli.command("codebook")
@click.option("--dataset", "-d", default="ml-100k", show_default=True, help="Dataset name or path.")
@data_dir_option
@click.option(
    "--tokenizers", default="rqvae,rqkmeans,collab,id", show_default=True, help="Comma-separated item tokenizers."
)
@click.option("--set", "sets", multiple=True, help="TIGERConfig override key=value (tokenizer fields; repeatable).")
@click.option("--out", default="benchmarks/results/codebooks", show_default=True, help="Folder for the JSON.")
def codebook(dataset, data_dir, tokenizers, sets, out) -> None:
    """Fit item tokenizers (semantic IDs) and record codebook usage, collisions and reconstruction error."""
    from recgen.models.tiger import run_codebook_study

    names = tuple(t.strip() for t in tokenizers.split(",") if t.strip())
    _run_study(run_codebook_study, dataset, names, data_dir=data_dir, sets=sets, out_dir=out)


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
    from recgen.models.tallrec import run_tallrec

    try:
        sizes = tuple(int(v) for v in train_samples.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"--train-samples must be comma-separated integers, got {train_samples!r}") from None
    if not sizes or min(sizes) < 1:
        raise ConfigError(f"--train-samples must be positive integers, got {train_samples!r}")
    _run_study(run_tallrec, dataset, sizes, llm=base, data_dir=data_dir, sets=sets, out_dir=out)


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
    from recgen.models.bigrec import run_bigrec_study

    _run_study(
        run_bigrec_study,
        dataset,
        max_eval_users=max_eval_users,
        dpo_samples=dpo_samples,
        baselines=tuple(b.strip() for b in baselines.split(",") if b.strip()),
        data_dir=data_dir,
        sets=sets,
        out_dir=out,
    )


@llm_group.command("info")
@llm_option
def llm_info(spec) -> None:
    """Backend, model file and its SHA-256."""
    llm = _open_llm(spec, None, True)
    click.echo(json.dumps(llm.info(), indent=2))
    llm.close()


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI and turn expected failures into one-line errors."""
    global _ARGV
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from recgen.ops.allocator import keep_freed_memory

    keep_freed_memory()  # freed tensor memory stays in the process: no page faults every step (RECGEN_MALLOC)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    _ARGV = list(argv) if argv is not None else sys.argv[1:]
    try:
        cli.main(args=_ARGV, prog_name="recgen", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        return 130
    except click.ClickException as exc:
        ctx = getattr(exc, "ctx", None)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        click.echo(f"error: {exc.format_message()}{hint}".replace("\n", " "), err=True)
        return 2
    except RecgenError as exc:
        click.echo(f"error: {exc}".replace("\n", " "), err=True)
        return 2
    except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as exc:
        click.echo(f"error: {exc.strerror or exc}: {exc.filename}; check the path", err=True)
        return 2
    except MemoryError:
        click.echo("error: out of memory; try a smaller dataset or batch size", err=True)
        return 1
    except KeyboardInterrupt:
        click.echo("error: interrupted", err=True)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
