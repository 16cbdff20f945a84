"""Named datasets and the data directory they are looked up in.

A data directory holds one folder per dataset (the layout of ``../shared/datasets`` on the team's machines and of
what ``recgen data fetch`` writes). It is searched in this order: the explicit ``data_dir`` / ``--data-dir``,
then each entry of ``RECGEN_DATA_DIR`` (``os.pathsep``-separated), then the default cache
``~/.cache/recgen/datasets``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from recgen.errors import DataError


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    folder: str  # relative to a data directory
    format: str
    description: str
    fetchable: bool = False


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            "ml-100k",
            "ml-100k",
            "",
            "MovieLens-100K ratings (RecBole atomic files or the GroupLens zip)",
            fetchable=True,
        ),
        DatasetSpec("beauty", "amazon-2014/beauty", "amazon-p5", "Amazon 2014 Beauty 5-core (P5/TIGER files)"),
        DatasetSpec("sports", "amazon-2014/sports", "amazon-p5", "Amazon 2014 Sports and Outdoors 5-core"),
        DatasetSpec("toys", "amazon-2014/toys", "amazon-p5", "Amazon 2014 Toys and Games 5-core"),
        DatasetSpec("yelp", "yelp", "s3rec", "Yelp (S3-Rec version) with LETTER titles"),
        DatasetSpec("lastfm", "lastfm", "s3rec", "Last.fm hetrec-2011 (S3-Rec version)"),
    )
}

DEFAULT_CACHE = Path("~/.cache/recgen/datasets")


def data_dirs(data_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """The data directories in search order."""
    dirs: list[Path] = []
    if data_dir:
        dirs.append(Path(data_dir).expanduser())
    env = os.environ.get("RECGEN_DATA_DIR", "")
    dirs.extend(Path(p).expanduser() for p in env.split(os.pathsep) if p)
    dirs.append(DEFAULT_CACHE.expanduser())
    return dirs


def default_target_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where a fetcher writes: the first data directory in search order."""
    return data_dirs(data_dir)[0]


def _has_data(folder: Path) -> bool:
    return folder.is_dir() and any(folder.iterdir())


def resolve(name: str, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The folder of a named dataset, searched through the data directories.

    Raises:
        DataError: the name is unknown, or no data directory holds the dataset (the message says how to get it).
    """
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    spec = DATASETS[name]
    searched = data_dirs(data_dir)
    for d in searched:
        if _has_data(d / spec.folder):
            return d / spec.folder
    hint = (
        f"run `recgen data fetch {name}`" if spec.fetchable else f"copy the dataset folder to <data dir>/{spec.folder}"
    )
    raise DataError(
        f"dataset {name!r} not found in the data directories ({', '.join(str(d) for d in searched)}); "
        f"{hint}, or pass --data-dir / set RECGEN_DATA_DIR"
    )
