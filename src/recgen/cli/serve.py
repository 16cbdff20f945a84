"""``recgen serve``, ``recgen keys`` and ``recgen retrain``: the HTTP service over a model registry and its store."""

from __future__ import annotations

import json
from pathlib import Path

import click

from recgen.cli.app import cli, data_dir_option, log
from recgen.errors import ConfigError


def default_db(data_dir: str | None) -> str:
    """SQLite in the data directory (``--data-dir``, RECGEN_DATA_DIR, or ~/.cache/recgen/datasets)."""
    from recgen.data.registry import default_target_dir
    from recgen.serve.store import sqlite_url

    folder = default_target_dir(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    return sqlite_url(folder / "recgen-serve.sqlite")


db_option = click.option(
    "--db", default=None, help="SQLAlchemy URL of the store (default: SQLite in the data directory), e.g. "
    "postgresql+psycopg://user@host/db."
)  # fmt: skip


def _store(db: str | None, data_dir: str | None):
    try:
        from recgen.serve.store import Store
    except ImportError as exc:
        raise ConfigError(f"the service needs its extra: pip install 'recgen[serve]' ({exc.name} missing)") from None
    return Store(db or default_db(data_dir))


@cli.command("serve")
@click.option("--model-dir", required=True, type=click.Path(path_type=Path), help="A model folder or a registry.")
@db_option
@data_dir_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--rate", default=200.0, show_default=True, help="Requests per second per API key (0 = no limit).")
@click.option("--burst", default=400, show_default=True, help="Requests a key may make at once.")
@click.option("--create-key", default=None, help="Create an API key with this name first and print it.")
def serve(model_dir, db, data_dir, host, port, rate, burst, create_key) -> None:
    """Serve recommendations, similar items and feedback over HTTP, with a web page at /."""
    import uvicorn

    from recgen.serve.app import create_app
    from recgen.serve.registry import ModelRegistry

    store = _store(db, data_dir)
    registry = ModelRegistry(model_dir)
    if create_key:
        click.echo(f"API key {create_key!r}: {store.create_key(create_key)}")
    version, model = registry.current()
    log(f"serving {model.name} version {version} from {model_dir} on http://{host}:{port} (store {store.url})")
    uvicorn.run(create_app(registry, store, rate=rate, burst=burst), host=host, port=port, log_level="warning")


@cli.group("keys")
def keys_group() -> None:
    """API keys of the service's store."""


@keys_group.command("create")
@click.option("--name", required=True, help="Who the key is for.")
@db_option
@data_dir_option
def keys_create(name, db, data_dir) -> None:
    """Create an API key (printed once; only its SHA-256 is stored)."""
    click.echo(_store(db, data_dir).create_key(name))


@keys_group.command("revoke")
@click.option("--name", required=True)
@db_option
@data_dir_option
def keys_revoke(name, db, data_dir) -> None:
    """Revoke every key of this name."""
    n = _store(db, data_dir).revoke_key(name)
    if not n:
        raise ConfigError(f"no API key named {name!r}")
    click.echo(f"revoked {n} key(s) named {name!r}")


@cli.command("retrain")
@click.option("--registry", "registry_dir", required=True, type=click.Path(path_type=Path), help="Registry folder.")
@click.option("--dataset", "-d", required=True, help="The dataset the versions were trained on.")
@db_option
@data_dir_option
@click.option("--model", "-m", default=None, help="Another model for the challenger (default: the active recipe).")
@click.option("--set", "sets", multiple=True, help="Config override of the challenger key=value (repeatable).")
@click.option("--events", default="click,purchase,rate", show_default=True, help="Event kinds used as interactions.")
@click.option("--min-rating", default=4.0, show_default=True, help="Ratings at least this count as interactions.")
def retrain_cmd(registry_dir, dataset, db, data_dir, model, sets, events, min_rating) -> None:
    """A new version from the dataset plus stored feedback; activated only if not worse on validation."""
    from recgen.config import parse_sets
    from recgen.serve.registry import ModelRegistry
    from recgen.serve.retrain import retrain
    from recgen.serve.store import EVENT_TYPES

    kinds = tuple(e.strip() for e in events.split(",") if e.strip())
    bad = sorted(set(kinds) - set(EVENT_TYPES))
    if bad or not kinds:
        raise ConfigError(f"--events takes kinds among {list(EVENT_TYPES)}, got {events!r}")
    out = retrain(ModelRegistry(registry_dir), dataset, _store(db, data_dir), model=model, sets=parse_sets(sets),
                  data_dir=data_dir, kinds=kinds, min_rating=min_rating, log=log)  # fmt: skip
    click.echo(json.dumps({k: out[k] for k in ("version", "activated", "valid_ndcg@10", "champion")}, default=str))
