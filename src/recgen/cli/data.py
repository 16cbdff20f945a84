"""``recgen data``: inspect, fetch and convert datasets."""

from __future__ import annotations

from pathlib import Path

import click

from recgen.cli.app import (
    cli,
    data_dir_option,
    dataset_options,
    echo_json,
    log,
)


@cli.group("data")
def data_group() -> None:
    """Datasets: inspect, fetch, convert."""


# ------------------------------------------------------------------------------------------ data
@data_group.command("info")
@click.argument("name_or_path")
@dataset_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def data_info(name_or_path, data, as_json) -> None:
    """Users, items, interactions and sequence-length statistics of NAME_OR_PATH."""
    from recgen.data.loaders import load_dataset

    ds = load_dataset(name_or_path, **data)
    stats = ds.stats()
    if as_json:
        echo_json(stats)
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

    click.echo(str(fetch(name, data_dir, force=force, log=log)))


@data_group.command("convert")
@click.argument("name_or_path")
@click.argument("out", type=click.Path(path_type=Path))
@dataset_options
def data_convert(name_or_path, out, data) -> None:
    """Convert any supported format to recgen's native folder OUT (Parquet + schema.json + manifest.json)."""
    from recgen.data.loaders import load_dataset

    ds = load_dataset(name_or_path, **data)
    ds.save(out)
    click.echo(f"wrote {ds} to {out}")
