"""Every loader on small files in the real formats, written by the tests."""

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recgen.data.loaders import detect_format, load_dataset, load_path
from recgen.errors import DataError


def write(path, text, encoding="utf-8"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


@pytest.fixture
def ml100k_dir(tmp_path):
    d = tmp_path / "ml-100k"
    write(d / "u.data", "1\t10\t4\t881250949\n2\t10\t3\t881250950\n1\t20\t5\t881250949\n")
    flags = "|".join(["0"] * 19)
    g = ["0"] * 19
    g[1] = g[15] = "1"  # Action, Sci-Fi
    write(
        d / "u.item",
        f"10|Caf\xe9 Movie (1995)|01-Jan-1995||http://x|{flags}\n20|Space (1977)|01-Jan-1977||u|" + "|".join(g) + "\n",
        encoding="latin-1",
    )
    write(d / "u.user", "1|24|M|technician|85711\n2|53|F|other|94043\n")
    return d


def test_movielens_100k(ml100k_dir):
    ds = load_path(ml100k_dir)
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (2, 2, 3)
    assert ds.ratings.tolist() == [4, 3, 5]
    rows = ds.item_table.to_pylist()
    assert rows[0] == {"item_id": "10", "title": "Café Movie", "year": "1995", "genres": []}
    assert rows[1]["genres"] == ["Action", "Sci-Fi"] and rows[1]["year"] == "1977"
    assert ds.user_table.column("occupation").to_pylist() == ["technician", "other"]
    # user 1's two ratings share a timestamp: file order (10 then 20) is kept
    indptr, items = ds.user_sequences()
    assert list(ds.items.external(items[indptr[1] : indptr[2]])) == ["10", "20"]


def test_movielens_1m_dat(tmp_path):
    d = tmp_path / "ml-1m"
    write(d / "ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978300000\n")
    write(
        d / "movies.dat",
        "1193::One Flew (1975)::Drama\n661::James (1996)::Animation|Children's\n",
        encoding="latin-1",
    )
    write(d / "users.dat", "1::F::1::10::48067\n2::M::56::16::70072\n")
    ds = load_path(d, "movielens")
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (2, 2, 3)
    assert ds.item_table.column("genres").to_pylist()[1] == ["Animation", "Children's"]


def test_movielens_csv(tmp_path):
    d = tmp_path / "ml-latest"
    write(
        d / "ratings.csv",
        "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,4.0,964981247\n2,1,3.5,964982224\n",
    )
    write(
        d / "movies.csv",
        'movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n3,"Grumpier, Old Men (1995)",Comedy|Romance\n',
    )
    ds = load_path(d)
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (2, 2, 3)
    assert ds.item_table.column("title").to_pylist() == ["Toy Story (1995)", "Grumpier, Old Men (1995)"]


def test_recbole_atomic(tmp_path):
    d = tmp_path / "toy"
    write(
        d / "toy.inter",
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\nu1\ti1\t3\t10\nu1\ti2\t4\t11\nu2\ti1\t5\t12\n",
    )
    write(d / "toy.item", "item_id:token\tmovie_title:token_seq\tclass:token_seq\ni1\tThe Film\tDrama Crime\n")
    ds = load_path(d)
    assert detect_format(d) == "recbole"
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (2, 2, 3)
    assert ds.item_table.to_pylist()[0] == {
        "item_id": "i1",
        "title": "The Film",
        "genres": ["Drama", "Crime"],
    }
    write(d / "toy.inter", "user_id\titem_id\nu1\ti1\n")
    with pytest.raises(DataError, match="name:type"):
        load_path(d)


def test_sequences_and_s3rec(tmp_path):
    f = write(tmp_path / "seq.txt", "1 5 6 7\n2 6 8\n")
    ds = load_path(f)
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (2, 4, 5)
    assert ds.meta["timestamp_source"] == "position"
    d = tmp_path / "yelp"
    write(d / "s3rec_sequences.txt", "1 1 2 3\n2 2 3\n")
    write(d / "s3rec_item2attributes.json", json.dumps({"1": [1, 2], "2": [3]}))
    write(d / "letter_items.json", json.dumps({"0": {"title": "Cafe", "description": "Food, Coffee"}}))
    ds = load_path(d)
    rows = ds.item_table.to_pylist()
    assert rows[0] == {
        "item_id": "1",
        "title": "Cafe",
        "categories": ["Food", "Coffee"],
        "attributes": [1, 2],
    }
    assert rows[2]["attributes"] == []


def test_amazon_p5(tmp_path):
    d = tmp_path / "beauty"
    write(d / "user_sequence.txt", "A1 B01 B02 B03\nA2 B02 B03\n")
    write(d / "item_short_title.txt", "B01 red lipstick\nB02 face cream\n")
    write(d / "p5_datamaps.json", json.dumps({"id2item": {"1": "B01", "2": "B02", "3": "B03"}}))
    write(d / "s3rec_item2attributes.json", json.dumps({"1": [7], "3": [8, 9]}))
    ds = load_path(d)
    assert detect_format(d) == "amazon-p5"
    assert ds.item_table.to_pylist() == [
        {"item_id": "B01", "title": "red lipstick", "attributes": [7]},
        {"item_id": "B02", "title": "face cream", "attributes": []},
        {"item_id": "B03", "title": None, "attributes": [8, 9]},
    ]


def test_amazon_raw_with_k_core(tmp_path):
    reviews = []
    for u in range(6):
        for i in range(5):
            reviews.append({"reviewerID": f"U{u}", "asin": f"I{i}", "overall": 5.0, "unixReviewTime": 100 + i})
    reviews.append({"reviewerID": "LONE", "asin": "I0", "overall": 1.0, "unixReviewTime": 1})
    f = tmp_path / "reviews_Beauty.json.gz"
    with gzip.open(f, "wt") as fh:
        fh.write("\n".join(json.dumps(r) for r in reviews))
    meta = write(tmp_path / "meta.json", "{'asin': 'I0', 'title': 'Soap', 'categories': [['Beauty', 'Bath']]}\n")
    ds = load_path(f, meta=meta, k_core=5)
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (6, 5, 30)
    assert ds.item_table.to_pylist()[0]["categories"] == ["Beauty", "Bath"]
    assert ds.meta["filters"][0]["removed"] == 1


def test_csv_and_parquet_with_column_map(tmp_path):
    f = write(tmp_path / "log.csv", "who,what,when,stars\n1,a,3,5\n1,b,1,4\n2,a,2,3\n")
    ds = load_path(f, columns={"user": "who", "item": "what", "timestamp": "when", "rating": "stars"})
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (2, 2, 3)
    indptr, items = ds.user_sequences()
    assert list(ds.items.external(items[indptr[1] : indptr[2]])) == ["b", "a"]
    p = tmp_path / "log.parquet"
    pq.write_table(pa.table({"user_id": [1, 1, 2], "item_id": ["a", "b", "a"]}), p)
    ds = load_path(p)
    assert ds.users.ids == ["1", "2"] and ds.meta["timestamp_source"] == "position"


def test_named_dataset_lookup(tmp_path, ml100k_dir, monkeypatch):
    monkeypatch.delenv("RECGEN_DATA_DIR", raising=False)
    ds = load_dataset("ml-100k", data_dir=tmp_path)
    assert ds.name == "ml-100k" and ds.n_interactions == 3
    monkeypatch.setenv("RECGEN_DATA_DIR", str(tmp_path))
    assert load_dataset("ml-100k").n_interactions == 3
    monkeypatch.delenv("RECGEN_DATA_DIR")
    monkeypatch.setattr("recgen.data.registry.DEFAULT_CACHE", tmp_path / "no-cache")
    with pytest.raises(DataError, match="recgen data fetch"):
        load_dataset("ml-100k", data_dir=tmp_path / "empty")
    with pytest.raises(DataError, match="not found in the data directories"):
        load_dataset("beauty", data_dir=tmp_path)


# ------------------------------------------------------------------------ bad input: clear messages
BAD_CASES = [
    ("missing file", lambda t: (t / "nope.csv", {}), "not found"),
    ("empty csv", lambda t: (write(t / "e.csv", ""), {}), "empty"),
    ("header only", lambda t: (write(t / "h.csv", "user,item\n"), {}), "no rows"),
    ("wrong separator", lambda t: (write(t / "w.csv", "user\titem\n1\t2\n"), {}), "no user column"),
    (
        "missing mapped column",
        lambda t: (write(t / "m.csv", "a,b\n1,2\n"), {"columns": {"user": "uid"}}),
        "column 'uid'",
    ),
    ("bad encoding", lambda t: (write(t / "b.csv", "user,item\n1,caf\xe9\n", "latin-1"), {}), "UTF-8"),
    (
        "non-numeric timestamp",
        lambda t: (write(t / "ml" / "u.data", "1\t2\t3\tyesterday\n"), {}),
        "line 1 of u.data: timestamp must be a number",
    ),
    (
        "u.data wrong field count",
        lambda t: (write(t / "ml2" / "u.data", "1\t2\t3\t4\n1 2 3 4\n"), {}),
        "line 2 of u.data: expected 4 tab-separated fields, got 1",
    ),
    ("sequence line without items", lambda t: (write(t / "s.txt", "1 2 3\n4\n"), {}), "line 2 of s.txt"),
    ("unknown format", lambda t: (write(t / "x.csv", "a\n"), {"format": "excel"}), "unknown format"),
    ("undetectable", lambda t: (write(t / "x.xyz", "a\n"), {}), "cannot tell the format"),
    ("bad json line", lambda t: (write(t / "r.json", "{not json\n"), {}), "line 1 of r.json"),
    (
        "option for wrong format",
        lambda t: (write(t / "q.txt", "1 2\n"), {"columns": {"user": "x"}}),
        "does not take option",
    ),
]


@pytest.mark.parametrize("case,make,match", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_input_messages(tmp_path, case, make, match):
    path, opts = make(tmp_path)
    if case in ("non-numeric timestamp", "u.data wrong field count"):
        path = path.parent
    fmt = opts.pop("format", None)
    with pytest.raises(DataError, match=match):
        load_path(path, fmt, **opts) if path.exists() else load_dataset(path, format=fmt, **opts)
