"""User-given splits (``--protocol given``) and the formats users bring from other tools."""

import json

import numpy as np
import pytest

from recgen.cli.main import main
from recgen.data.given import load_given_split
from recgen.data.loaders import load_dataset
from recgen.data.split import leave_one_out
from recgen.eval.evaluator import evaluate
from recgen.models import create_model
from recgen.testing import make_tiny_dataset


def _write_recbole_benchmark(split, folder, max_len=3):
    """RecBole's benchmark files of a leave-one-out split: every training prefix as a row (history cut to
    ``max_len``, as RecBole's MAX_ITEM_LIST_LENGTH does), one validation and one test row per user."""
    ds = split.train
    ext_i = lambda a: list(ds.items.external(np.asarray(a, dtype=np.int64)))  # noqa: E731
    ext_u = lambda u: ds.users.external(np.asarray([u]))[0]  # noqa: E731
    head = "user_id:token\titem_id_list:token_seq\titem_id:token\n"
    indptr, items = ds.user_sequences()
    with open(folder / "tiny.train.inter", "w") as f:
        f.write(head)
        for u in range(1, ds.n_users + 1):
            s = ext_i(items[indptr[u] : indptr[u + 1]])
            for j in range(1, len(s)):
                f.write(f"{ext_u(u)}\t{' '.join(s[max(0, j - max_len) : j])}\t{s[j]}\n")
    for name, es in (("valid", split.valid), ("test", split.test)):
        with open(folder / f"tiny.{name}.inter", "w") as f:
            f.write(head)
            for i in range(len(es)):
                f.write(f"{ext_u(es.user_ids[i])}\t{' '.join(ext_i(es.history(i)))}\t{ext_i(es.targets(i))[0]}\n")


def test_recbole_benchmark_files_give_the_same_split_as_leave_one_out(tmp_path):
    split = leave_one_out(make_tiny_dataset())
    _write_recbole_benchmark(split, tmp_path)
    given = load_given_split(tmp_path)
    assert given.protocol["name"] == "given" and given.protocol["layout"] == "recbole-benchmark"
    assert given.train.n_interactions == split.train.n_interactions  # rebuilt from cut histories + targets
    a = create_model("ease", l2=10.0).fit(split.train)
    b = create_model("ease", l2=10.0).fit(given.train)
    ma, mb = evaluate(a, split.test).metrics, evaluate(b, given.test).metrics
    ranking = [k for k in ma if k.split("@")[0] in ("recall", "ndcg", "hit", "mrr", "n_users")]
    assert {k: ma[k] for k in ranking} == {k: mb[k] for k in ranking}  # ties among items follow the id order
    with pytest.raises(Exception, match="RecBole benchmark split file"):
        load_dataset(tmp_path / "tiny.test.inter")


def test_interaction_files_as_given_equal_leave_one_out(tmp_path, capsys):
    ds = make_tiny_dataset()
    split = leave_one_out(ds)
    order = ds.chronological_order()
    roles = {}
    for es, name in ((split.valid, "valid"), (split.test, "test")):
        for i in range(len(es)):
            roles[(int(es.user_ids[i]), int(es.targets(i)[0]))] = name
    rows = {p: ["user,item,timestamp"] for p in ("train", "valid", "test")}
    for r in order:
        u, i = int(ds.user_ids[r]), int(ds.item_ids[r])
        part = roles.get((u, i), "train")
        rows[part].append(f"{ds.users.external(np.asarray([u]))[0]},{ds.items.external(np.asarray([i]))[0]},"
                          f"{ds.timestamps[r]}")  # fmt: skip
    for part, lines in rows.items():
        (tmp_path / f"{part}.csv").write_text("\n".join(lines) + "\n")
    code = main(["bench", "-d", str(tmp_path), "-m", "ease", "--set", "l2=10", "--protocol", "given",
                 "--out", str(tmp_path / "out")])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    r = json.loads(next((tmp_path / "out").glob("*.json")).read_text())
    ref = evaluate(create_model("ease", l2=10.0).fit(split.train), split.test).metrics
    assert r["protocol"]["name"] == "given" and set(r["protocol"]["files"]) == {"train", "valid", "test"}
    assert r["test"]["ndcg@10"] == pytest.approx(ref["ndcg@10"], abs=1e-12)


def test_json_user_item_lists_and_records(tmp_path):
    (tmp_path / "m.json").write_text(json.dumps({"u1": ["a", "b", "c"], "u2": [1, 2]}))
    ds = load_dataset(tmp_path / "m.json")
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (2, 5, 5)
    assert list(ds.items.external(ds.user_sequences()[1][:3])) == ["a", "b", "c"]  # time order = list order
    (tmp_path / "r.jsonl").write_text('{"user": "u1", "items": ["a", "b"]}\n{"user": "u2", "items": ["c"]}\n')
    assert load_dataset(tmp_path / "r.jsonl").n_interactions == 3


def test_ids_are_never_read_through_a_float(tmp_path):
    rows = ["user,item"] + [f"1234567890123456789{u},{i}" for u in range(10) for i in range(3)]
    (tmp_path / "big.csv").write_text("\n".join(rows) + "\n")
    ds = load_dataset(tmp_path / "big.csv")
    assert ds.n_users == 10 and "12345678901234567890" in set(ds.users.ids)


def test_label_column_keeps_positives_and_min_rating_filters(tmp_path):
    text = "user,item,clicked,rating\nu1,i1,1,5\nu1,i2,0,1\nu1,i3,1,4\nu2,i1,0,2\nu2,i2,1,5\n"
    (tmp_path / "ctr.csv").write_text(text)
    ds = load_dataset(tmp_path / "ctr.csv")
    assert ds.n_interactions == 3 and ds.meta["negative_rows_dropped"] == 2
    assert load_dataset(tmp_path / "ctr.csv", min_rating=5).n_interactions == 2
    assert load_dataset(tmp_path / "ctr.csv", columns={"label": "rating"}).n_interactions == 5


def test_memory_estimate_refuses_before_fitting(monkeypatch):
    from recgen.memory import InsufficientMemoryError
    from recgen.models.classic.ease import EASE

    assert 8.5e9 < EASE.memory_needed(23_715) < 9.5e9  # the catalogue that peaked at 9.2 GB
    monkeypatch.setenv("RECGEN_MEMORY_LIMIT", "1K")
    with pytest.raises(InsufficientMemoryError, match="RECGEN_MEMORY_LIMIT"):
        create_model("ease").fit(make_tiny_dataset().subset(np.arange(300)))
