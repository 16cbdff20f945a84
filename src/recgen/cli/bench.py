"""``recgen bench`` and what surrounds it: merge-results, report, plots and the studies (diffusion steps,
codebooks)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from recgen.cli.app import (
    cli,
    cold_frac_option,
    command_line,
    data_dir_option,
    dataset_options,
    log,
    max_train_option,
    out_folder_option,
    protocol_option,
    results_dir_option,
    run_study,
    split_args,
    test_frac_option,
    valid_frac_option,
)
from recgen.errors import ConfigError


@cli.command("bench")
@click.option("--dataset", "-d", required=True, help="Dataset name or path.")
@click.option("--model", "-m", required=True, help="Model name (see `recgen models`).")
@dataset_options
@click.option("--set", "sets", multiple=True, help="Config override key=value (repeatable).")
@click.option("--seeds", default=1, show_default=True, help="Number of seeds (0..N-1); mean and spread reported.")
@protocol_option
@valid_frac_option
@test_frac_option
@cold_frac_option
@max_train_option
@out_folder_option("benchmarks/results", "Folder for the results JSON.")
@click.option("--include-seen", is_flag=True, help="Do not exclude history items from the rankings.")
@click.option("--sampled", default=0, help="Also compute labelled sampled metrics with N negatives.")
@click.option(
    "--item-block",
    default=0,
    show_default=True,
    help="Rank the catalogue this many items at a time (models that stream their scores: Pop, ItemKNN, "
    "SASRec, HSTU), so memory is batch x block, not batch x catalogue (0 = whole rows).",
)
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
    "--force",
    is_flag=True,
    help="Replace the results file even where it holds seeds this run does not rewrite (they are dropped).",
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
@click.option(
    "--nproc",
    default=1,
    show_default=True,
    help="Data-parallel training over N processes (torchrun; gloo on the CPU, NCCL on GPUs); the same global "
    "batch as one process. Models trained by recgen's trainer.",
)
def bench(
    dataset,
    model,
    data,
    sets,
    seeds,
    protocol,
    valid_frac,
    test_frac,
    cold_frac,
    max_train,
    out,
    include_seen,
    sampled,
    item_block,
    max_eval_users,
    grid,
    resume,
    force,
    run_dir,
    decode_variants,
    only_seeds,
    nproc,
) -> None:
    """Fit on train, choose on validation, evaluate test (full ranking); write a results JSON, print a table."""
    from recgen.config import parse_sets

    if nproc < 1:
        raise ConfigError(f"--nproc must be >= 1, got {nproc}")
    if nproc > 1 and "LOCAL_RANK" not in os.environ:
        raise SystemExit(_torchrun(nproc, model))
    from recgen.experiments.bench import parse_grid, run_bench
    from recgen.experiments.results import HEADLINE

    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {seeds}")
    if sampled < 0:
        raise ConfigError(f"--sampled must be >= 0, got {sampled}")
    result = run_bench(
        dataset,
        model,
        data_options=data,
        sets=parse_sets(sets),
        seeds=seeds,
        protocol=protocol,
        split_args=split_args(protocol, valid_frac, test_frac, cold_frac, max_train),
        out_dir=out,
        exclude_seen=not include_seen,
        sampled_negatives=sampled,
        item_block=item_block,
        max_eval_users=max_eval_users,
        grid=parse_grid(grid),
        # under torchrun this process's argv lacks --nproc: the recorded command says how many processes ran
        command=command_line() + (f" --nproc {ws}" if (ws := int(os.environ.get("WORLD_SIZE", "1"))) > 1 else ""),
        resume=resume,
        force=force,
        decode_variants=[parse_sets(v.split(",")) for v in decode_variants],
        only_seeds=only_seeds,
        run_dir=run_dir,
        log=log,
    )
    from recgen.models.training.distributed import is_main

    if not is_main():
        return  # rank 0 reports
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


def _torchrun(nproc: int, model: str) -> int:
    """Run this same bench command under torchrun with ``nproc`` processes on this machine; its exit code."""
    import subprocess
    import sys

    from recgen.cli.app import _ARGV
    from recgen.models.registry import check_resumable

    check_resumable(model, "--nproc")
    args, skip = [], False
    for a in _ARGV or sys.argv[1:]:  # the same arguments, without --nproc
        if skip:
            skip = False
            continue
        if a == "--nproc":
            skip = True
            continue
        if a.startswith("--nproc="):
            continue
        args.append(a)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m",
           "recgen.cli.main", *args]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    return subprocess.run(cmd, env=env).returncode


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
    from recgen.experiments.merge import merge_results

    r = merge_results(files, out, command=command_line(), mixed_devices=mixed_devices)
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
    from recgen.experiments.report import write_report

    if not results.is_dir():
        raise ConfigError(f"results folder not found: {results}; run `recgen bench` first or pass --results")
    readme = readme if str(readme) not in ("", ".", "none") else None
    write_report(results, out, readme)
    click.echo(f"wrote {out}" + (f" and the generated blocks of {readme}" if readme else ""))


@cli.command("plot-scaling")
@click.option("--dataset", "-d", required=True, help="Dataset whose results to plot.")
@results_dir_option
@click.option("--out", required=True, type=click.Path(path_type=Path), help="PNG file to write.")
@click.option("--metric", default="ndcg@10", show_default=True, help="Test metric on the y axis.")
def plot_scaling(dataset, results, out, metric) -> None:
    """Plot test metric against non-embedding parameters and training FLOPs from results files."""
    from recgen.experiments.plots import scaling_plot

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
    from recgen.experiments.studies.steps import load_steps_results, run_steps_sweep, steps_plot

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
        split_args=split_args(protocol, valid_frac, test_frac),
        out_dir=out,
        command=command_line(),
        log=log,
    )
    click.echo(f"results: {result['_path']}")
    click.echo(f"wrote {steps_plot(load_steps_results(out), plot)}")


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
    from recgen.experiments.studies.codebook import run_codebook_study

    names = tuple(t.strip() for t in tokenizers.split(",") if t.strip())
    run_study(run_codebook_study, dataset, names, data_dir=data_dir, sets=sets, out_dir=out)
