"""The ``recgen`` command group and what its command modules share: options, argument parsing, logging."""

from __future__ import annotations

import functools
import json
import shlex
import sys
from pathlib import Path

import click

from recgen.errors import ConfigError

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
    "amazon-p5, amazon-raw, json-sequences, csv, parquet, recgen (detected when unambiguous).",
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
    help="Split: leave-one-out, temporal (global time), ratio (random per user), user-temporal (time per user), "
    "item-cold-start (15% of items new: test reported on cold and warm users), user-cold-start (20% of users "
    "seen only through their first 5 interactions: test reported on cold and warm users), given (a folder of "
    "train/valid/test files, used as they are).",
)
cold_frac_option = click.option(
    "--cold-frac",
    type=float,
    default=None,
    help="Cold-start protocols: the seeded share of the items (item-cold-start, default 0.15) or of the evaluated "
    "users (user-cold-start, default 0.2) that is new.",
)
max_train_option = click.option(
    "--max-train",
    type=int,
    default=None,
    help="user-cold-start: how many first interactions of a new user train (default 5).",
)
valid_frac_option = click.option(
    "--valid-frac", type=float, default=None, help="Validation fraction for ratio/temporal splits."
)
test_frac_option = click.option(
    "--test-frac", type=float, default=None, help="Test fraction for ratio/temporal splits."
)


encoding_option = click.option("--encoding", default=None, help="Text encoding for csv (default utf-8).")
_DATA_OPTION_NAMES = ("format_", "data_dir", "columns", "sep", "encoding", "min_rating", "label_column")


def dataset_options(f):
    """Every option that says how to read a dataset (format, data folder, column map, separator, encoding, rating
    and label filters), shared by every command that reads one; the command receives them as ``data``: the keyword
    arguments of ``recgen.data.loaders.load_dataset``."""

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        raw = {name: kwargs.pop(name) for name in _DATA_OPTION_NAMES}
        columns = parse_columns(raw["columns"]) or {}
        if raw["label_column"]:
            columns["label"] = raw["label_column"]
        data = {
            "format": raw["format_"],
            "data_dir": raw["data_dir"],
            "columns": columns or None,
            "sep": raw["sep"],
            "encoding": raw["encoding"],
            "min_rating": raw["min_rating"],
        }
        return f(*args, data=data, **kwargs)

    options = [
        format_option,
        data_dir_option,
        columns_option,
        sep_option,
        encoding_option,
        click.option(
            "--min-rating", type=float, default=None, help="Keep only interactions rated at least this (e.g. 4)."
        ),
        click.option(
            "--label-column",
            default=None,
            help="A 0/1 label column (e.g. clicked): only rows labelled 1 are interactions (default: a column named "
            "label, click or clicked).",
        ),
    ]
    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


def parse_columns(columns: str | None) -> dict[str, str] | None:
    if not columns:
        return None
    out = {}
    for part in columns.split(","):
        key, sep, val = part.partition("=")
        if not sep:
            raise ConfigError(f"--columns takes role=column pairs such as user=userId,item=movieId; got {part!r}")
        out[key.strip()] = val.strip()
    return out


def echo_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2, default=str))


def log(message: str) -> None:
    click.echo(message, err=True)


_ARGV: list[str] | None = None  # the arguments main() was given (sys.argv[1:] from a shell, a list from Python)


def command_line() -> str:
    """The command as typed (quoted), stored in every results file."""
    args = _ARGV if _ARGV is not None else sys.argv[1:]
    return "recgen " + " ".join(shlex.quote(a) for a in args)


def run_study(fn, *args, sets=(), **kwargs) -> None:
    """Run a study function with the shared arguments (parsed --set, command line, logging), print its file."""
    from recgen.config import parse_sets

    r = fn(*args, sets=parse_sets(sets), command=command_line(), log=log, **kwargs)
    click.echo(f"results: {r['_path']}")


@click.group(context_settings=CONTEXT)
def cli() -> None:
    """recgen: generative recommendation with honest, full-ranking evaluation."""


def split_args(
    protocol: str,
    valid_frac: float | None,
    test_frac: float | None,
    cold_frac: float | None = None,
    max_train: int | None = None,
) -> dict:
    args = {k: v for k, v in (("valid_frac", valid_frac), ("test_frac", test_frac)) if v is not None}
    if args and protocol in ("leave-one-out", "loo", "item-cold-start", "user-cold-start"):
        raise ConfigError(f"--valid-frac/--test-frac apply to ratio, temporal and user-temporal splits, not {protocol}")
    if cold_frac is not None:
        if protocol not in ("item-cold-start", "user-cold-start"):
            raise ConfigError(f"--cold-frac applies to --protocol item-cold-start or user-cold-start, not {protocol}")
        args["cold_frac"] = cold_frac
    if max_train is not None:
        if protocol != "user-cold-start":
            raise ConfigError(f"--max-train applies to --protocol user-cold-start, not {protocol}")
        args["max_train"] = max_train
    return args
