"""``recgen augment``: the data level's generation jobs (LLM-written item and user profiles)."""

from __future__ import annotations

import click

from recgen.cli.app import cli, dataset_options, run_study


@cli.group("augment")
def augment_group() -> None:
    """Generate data with an LLM: item and user profiles."""


@augment_group.command("profiles")
@click.argument("dataset")
@dataset_options
@click.option("--kind", "kinds", multiple=True, default=("items", "users"), show_default=True,
              help="items and/or users (repeatable).")  # fmt: skip
@click.option("--llm", "llm", multiple=True, help="LLM spec (default: the embedded model); repeat openai:URL for "
              "several servers.")  # fmt: skip
@click.option("--llm-cache", default=None, help="SQLite response cache (what was in flight at a kill is reused).")
@click.option(
    "--workers", default=1, show_default=True, help="Profiles in flight (openai: requests; llama.cpp: model copies)."
)
@click.option("--batch", default=1, show_default=True, help="llama.cpp: profiles decoded at once on each copy (the "
              "same outputs, more tokens/s; e.g. 16).")  # fmt: skip
@click.option("--limit", default=0, show_default=True, help="Only the first N of each kind (0: all).")
@click.option("--max-tokens", default=160, show_default=True, help="Enough for the schema's longest output.")
@click.option("--out", default="profiles", show_default=True, help="Folder: <out>/<dataset>/<kind>_profiles.*")
def augment_profiles(dataset, data, kinds, llm, llm_cache, workers, batch, limit, max_tokens, out) -> None:
    """Item profiles (title and metadata expanded) and user profiles (training history only), resumable."""
    from recgen.experiments.augment import run_profiles

    run_study(run_profiles, dataset, kinds=list(kinds), llm=list(llm) or None, llm_cache=llm_cache, workers=workers,
              batch=batch, limit=limit, max_tokens=max_tokens, data={k: v for k, v in data.items() if v is not None},
              out_dir=out)  # fmt: skip


@augment_group.command("cold-start")
@click.argument("dataset")
@dataset_options
@click.option("--models", default="ease", show_default=True, help="Models refitted with the synthetic interactions.")
@click.option("--filters", default="none,margin", show_default=True, help="none, margin and/or llm.")
@click.option("--per-item", default=20, show_default=True, help="Synthetic users per cold item (at most).")
@click.option("--cold-frac", default=0.15, show_default=True, help="Share of the items that is new.")
@click.option("--llm", default=None, help="LLM spec for the llm filter (default: the embedded model).")
@click.option("--set", "sets", multiple=True, help="MODEL.FIELD=VALUE config override (repeatable).")
@click.option("--out", default="benchmarks/results/coldstart", show_default=True)
def augment_cold_start(dataset, data, models, filters, per_item, cold_frac, llm, sets, out) -> None:
    """Synthetic interactions for cold items (ColdLLM idea) on the item cold-start protocol: cold and warm recall
    with and without them, beside the content-only model."""
    from recgen.experiments.studies.coldstart import run_cold_start_study

    names = [m.strip() for m in models.split(",") if m.strip()]
    run_study(run_cold_start_study, dataset, models=names, filters=[f.strip() for f in filters.split(",")],
              per_item=per_item, cold_frac=cold_frac, llm=llm, sets=sets,
              data={k: v for k, v in data.items() if v is not None}, out_dir=out)  # fmt: skip
