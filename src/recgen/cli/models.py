"""``recgen train``, ``recommend``, ``models`` and ``version``: fit, save and use a model."""

from __future__ import annotations

from pathlib import Path

import click

from recgen.cli.app import (
    cli,
    dataset_options,
    echo_json,
)
from recgen.errors import ConfigError


@cli.command("train")
@click.option("--dataset", "-d", required=True, help="Dataset name or path.")
@click.option("--model", "-m", required=True, help="Model name.")
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="Folder to save the model to.")
@dataset_options
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
def train(dataset, model, out, data, sets, run_dir, resume, split) -> None:
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
        if resume and not (run_dir / "last.pt").is_file():
            raise ConfigError(
                f"--resume: {run_dir} holds no interrupted run (no last.pt); run without --resume to start one there"
            )
        m.configure_run(run_dir, resume=resume)
    ds = load_dataset(dataset, **data)
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
    from recgen.tasks.topk import recommend_topk

    check_k(k)
    if not users and not items:
        raise ConfigError("give --user USER (repeatable) or --items ITEM,ITEM,...")
    if not model_dir.is_dir():
        raise ConfigError(f"model folder not found: {model_dir}; train one with `recgen train ... --out DIR`")
    m = load_model(model_dir)
    sessions = [[i.strip() for i in items.split(",") if i.strip()]] if items else []
    out = recommend_topk(m, users=users, sessions=sessions, k=k, exclude_seen=not include_seen)
    if as_json:
        echo_json([t.to_dict() for t in out])
        return
    for entry in out:
        note = f" ({entry.fallback})" if entry.fallback else ""
        if entry.unknown_items and not entry.fallback:
            note = f" (not in the catalogue, ignored: {', '.join(entry.unknown_items)})"
        click.echo(f"{entry.query}{note}:")
        for rank, x in enumerate(entry.items, 1):
            click.echo(f"  {rank:>3}. {x['item_id']}  {x['score']:.4f}  {x.get('title', '')}".rstrip())


@cli.command("runs")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON (one object per run folder).")
def runs(paths, as_json) -> None:
    """Where training runs stand: for every run folder (holding last.pt) at or under PATHS (--run-dir of `train`
    or `bench`), the epoch reached, the best validation epoch and value, whether it stopped, and what is left."""
    from recgen.errors import IntegrityError
    from recgen.models.training.runs import duration, run_statuses

    statuses, errors = run_statuses(paths)
    if as_json:
        echo_json([s.as_dict() for s in statuses])
    elif statuses:
        rows = [("run", "model", "seed", "epoch", "best valid (epoch)", "evals since", "state", "per epoch", "left")]
        for s in statuses:
            best = f"{s.metric or ''} {s.best_value:.4f} ({s.best_epoch})".strip() if s.best_value is not None else "–"
            left = s.epochs_left()
            if left is None:
                left_text = "?"
            elif left == (0, 0):
                left_text = "–"
            else:
                span = f"{left[0]}" if left[0] == left[1] else f"{left[0]}-{left[1]}"
                left_text = f"{span} epochs, at most {duration(s.seconds_left_max())}"
            rows.append(
                (
                    s.folder,
                    s.model or "?",
                    "?" if s.seed is None else str(s.seed),
                    f"{s.epoch}/{s.epochs}" if s.epochs else str(s.epoch),
                    best,
                    f"{s.bad_evals}/{s.patience}" if s.patience else str(s.bad_evals),
                    s.state if s.finished else f"{s.state} (saved {duration(s.saved_seconds_ago)} ago)",
                    duration(s.seconds_per_epoch),
                    left_text,
                )
            )
        widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
        for r in rows:
            click.echo("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    if errors:
        more = f" (and {len(errors) - 1} more unreadable run folder(s))" if len(errors) > 1 else ""
        raise IntegrityError(errors[0] + more)


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
