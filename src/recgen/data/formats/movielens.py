"""MovieLens folders or ratings files: ml-100k (``u.data``/``u.item``/``u.user``), ml-1m/ml-10m
(``ratings.dat``/``movies.dat``/``users.dat``), ml-20m/ml-latest (``ratings.csv``/``movies.csv``)."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa

from recgen.data.dataset import Dataset, from_columns
from recgen.data.formats.tables import from_table, read_csv
from recgen.data.formats.text import check_exists, parse_rows, split_fields, to_float, transpose
from recgen.errors import DataError

ML100K_GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
]  # fmt: skip


def load_movielens(path: str | os.PathLike[str], *, name: str | None = None) -> Dataset:
    """Load MovieLens raw files: ml-100k, ml-1m/ml-10m (``::``) or ml-20m/ml-latest (CSV)."""
    path = Path(path)
    check_exists(path, "MovieLens path")
    if path.is_file() and path.name not in ("u.data", "ratings.dat", "ratings.csv"):
        raise DataError(
            f"{path.name} is not a MovieLens ratings file (u.data, ratings.dat or ratings.csv); give the MovieLens "
            "folder, or read this file with --format csv (and --columns, --sep)"
        )
    folder = path if path.is_dir() else path.parent
    if (folder / "u.data").exists():
        return _load_ml100k(folder, name or folder.name)
    if (folder / "ratings.dat").exists():
        return _load_ml_dat(folder, name or folder.name)
    if (folder / "ratings.csv").exists():
        return _load_ml_csv(folder, name or folder.name)
    raise DataError(
        f"{path} holds no MovieLens ratings file (u.data, ratings.dat or ratings.csv); "
        f"point to the unzipped MovieLens folder"
    )


def _load_ml100k(folder: Path, name: str) -> Dataset:
    linenos, rows = parse_rows(folder / "u.data", "\t", 4)
    u, i, r, t = transpose(rows)
    ratings = to_float(r, folder / "u.data", "rating", linenos)
    ts = to_float(t, folder / "u.data", "timestamp", linenos)
    item_table = user_table = None
    if (folder / "u.item").exists():
        ids, titles, years, genres = [], [], [], []
        for _, f in split_fields(folder / "u.item", "|", 24, "latin-1"):
            ids.append(f[0])
            title = f[1]
            year = title[-5:-1] if title.endswith(")") and title[-6:-5] == "(" else (f[2][-4:] if f[2] else "")
            titles.append(title[:-7].strip() if title.endswith(")") and title[-6:-5] == "(" else title)
            years.append(year)
            genres.append([g for g, flag in zip(ML100K_GENRES, f[5:], strict=True) if flag == "1"])
        item_table = pa.table({"item_id": ids, "title": titles, "year": years, "genres": genres})
    if (folder / "u.user").exists():
        cols = transpose(parse_rows(folder / "u.user", "|", 5)[1])
        user_table = pa.table(dict(zip(["user_id", "age", "gender", "occupation", "zip_code"], cols, strict=True)))
    return from_columns(
        u,
        i,
        ts,
        ratings,
        item_table=item_table,
        user_table=user_table,
        name=name,
        meta={"format": "movielens", "source": str(folder)},
    )


def _load_ml_dat(folder: Path, name: str) -> Dataset:
    linenos, rows = parse_rows(folder / "ratings.dat", "::", 4, encoding="latin-1")
    u, i, r, t = transpose(rows)
    item_table = user_table = None
    if (folder / "movies.dat").exists():
        ids, titles, genres = [], [], []
        for _, f in split_fields(folder / "movies.dat", "::", 3, "latin-1"):
            ids.append(f[0])
            titles.append(f[1])
            genres.append(f[2].split("|"))
        item_table = pa.table({"item_id": ids, "title": titles, "genres": genres})
    if (folder / "users.dat").exists():
        cols = transpose(parse_rows(folder / "users.dat", "::", 5, encoding="latin-1")[1])
        user_table = pa.table(dict(zip(["user_id", "gender", "age", "occupation", "zip_code"], cols, strict=True)))
    return from_columns(
        u,
        i,
        to_float(t, folder / "ratings.dat", "timestamp", linenos),
        to_float(r, folder / "ratings.dat", "rating", linenos),
        item_table=item_table,
        user_table=user_table,
        name=name,
        meta={"format": "movielens", "source": str(folder)},
    )


def _load_ml_csv(folder: Path, name: str) -> Dataset:
    items = None
    if (folder / "movies.csv").exists():
        movies = read_csv(folder / "movies.csv", ",", string_columns=("movieId", "title", "genres"))
        genres = [g.split("|") for g in movies.column("genres").to_pylist()]
        items = pa.table({"item_id": movies.column("movieId"), "title": movies.column("title"), "genres": genres})
    return from_table(
        read_csv(folder / "ratings.csv", ","),
        {"user": "userId", "item": "movieId", "rating": "rating", "timestamp": "timestamp"},
        folder / "ratings.csv",
        name=name,
        meta={"format": "movielens", "source": str(folder)},
        item_table=items,
    )
