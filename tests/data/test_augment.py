"""LLM-written profiles: user prompts see training interactions only; the job resumes after a kill with nothing
generated twice or lost; the side table and its provenance."""

import dataclasses
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recgen.cli.main import main
from recgen.data.augment.profiles import contradictions, item_jobs, user_jobs
from recgen.data.loaders import load_dataset
from recgen.data.split import leave_one_out


def test_user_prompts_never_see_validation_or_test_interactions(real_data_dir):
    ds = load_dataset("ml-100k", data_dir=real_data_dir)
    split = leave_one_out(ds)
    prompts = {j["id"]: j["prompt"] for j in user_jobs(split.train)}
    # rewrite every held-out interaction (the last two of each user) to other items: no prompt may change
    order = ds.chronological_order()
    users = ds.user_ids[order]
    ends = np.r_[np.flatnonzero(np.diff(users)), len(users) - 1]
    held = np.zeros(ds.n_interactions, dtype=bool)
    held[order[ends]] = held[order[ends - 1]] = True
    items = ds.item_ids.copy()
    items[held] = (items[held] * 7) % ds.n_items + 1
    other = dataclasses.replace(ds, item_ids=items, ratings=np.where(held, 6 - ds.ratings, ds.ratings))
    again = {j["id"]: j["prompt"] for j in user_jobs(leave_one_out(other).train)}
    assert prompts == again and len(prompts) == ds.n_users


def test_item_prompts_hold_the_catalogue_facts(real_data_dir):
    ds = load_dataset("ml-100k", data_dir=real_data_dir)
    jobs = {j["id"]: j["prompt"] for j in item_jobs(ds)}
    assert len(jobs) == ds.n_items and "Star Wars (1977; Action, Adventure, Romance, Sci-Fi, War)" in jobs["50"]
    rows = [{"id": "50", "status": "ok", "json": {"genres": ["Sci-Fi", "Horror"]}},
            {"id": "1", "status": "ok", "json": {"genres": ["Animation", "Comedy", "family"]}},
            {"id": "2", "status": "ok", "json": {"genres": ["Action", "spy thriller"]}}]  # fmt: skip
    c = contradictions(ds, rows)  # Star Wars is no horror film; "family" is no catalogue genre: not checkable
    assert c == {"checked": 3, "contradicting": 1, "contradiction_rate": 1 / 3,
                 # horror, family: no word of the item's own line; GoldenEye's line has action and thriller
                 "stating_a_kind": 3, "unsupported": 2, "unsupported_rate": 2 / 3}  # fmt: skip


def test_a_catalogue_of_attribute_ids_checks_no_profile_and_says_why():
    from recgen.data.dataset import from_columns

    table = pa.table({"item_id": ["a", "b"], "title": ["red nail polish", "hair dryer"], "attributes": [[3, 7], [9]]})
    ds = from_columns(["u", "u", "v"], ["a", "b", "a"], [1, 2, 3], item_table=table, name="ids")
    rows = [{"id": "a", "status": "ok", "json": {"genres": ["nail polish", "skincare"]}},
            {"id": "b", "status": "ok", "json": {"genres": ["hair tools"]}}]  # fmt: skip
    c = contradictions(ds, rows)
    assert (c["checked"], c["contradiction_rate"]) == (0, None) and "names no genre or kind" in c["reason"]
    assert (c["stating_a_kind"], c["unsupported"]) == (2, 1)  # "skincare" is in no word of "red nail polish"


def test_profiles_job_resumes_after_a_cut_and_writes_the_side_table(capsys, embedded_gguf, real_data_dir, tmp_path):
    argv = ["augment", "profiles", "ml-100k", "--data-dir", str(real_data_dir), "--kind", "items", "--limit", "3",
            "--out", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    work = tmp_path / "ml-100k" / "items.jsonl"
    lines = work.read_bytes().splitlines(keepends=True)
    assert len(lines) == 3
    work.write_bytes(b"".join(lines[:2]) + lines[2][:15])  # killed while writing the third line
    assert main([*argv[:8], "4", *argv[9:]]) == 0  # resume, with one more item wanted
    record = json.loads((tmp_path / "ml-100k" / "items_profiles.json").read_text())
    assert record["profiles"] == 4 and record["lost"] == 0 and record["duplicated"] == 0
    run = record["this_run"]
    assert run["resumed"] == 2 and run["generated"] + run["missing"] == 2 and record["ok"] >= 3
    assert len(record["runs"]) == 2 and record["runs"][0]["jobs"] == 3 and record["runs"][1] == run  # the history
    assert record["llm"]["model_sha256"] and record["prompt_version"] == "profiles-v1"
    table = pq.read_table(tmp_path / "ml-100k" / "items_profiles.parquet")
    assert table.num_rows == 4 and set(table.column_names) >= {"id", "status", "description", "genres", "audience"}
    assert sorted(table.column("id").to_pylist()) == sorted(json.loads(x)["id"] for x in work.read_text().splitlines())
    # the totals cover every row of the table (the cut run's two included), and the report's table reads them
    rows = [json.loads(x) for x in work.read_text().splitlines()]
    tot = record["totals"]
    assert tot["completion_tokens"] == sum(r["completion_tokens"] for r in rows) > run["completion_tokens"]
    assert tot["seconds"] == pytest.approx(sum(r["seconds"] for r in rows))
    from recgen.experiments.studies.profiles import profiles_table

    row = profiles_table([record]).splitlines()[2].split(" | ")
    assert row[1:8] == ["items", record["llm"]["model"], "4", str(record["ok"]), str(record["missing"]), "0", "0"]


def test_user_profiles_naming_a_genre_absent_from_their_prompt_count_as_contradicting(real_data_dir):
    from recgen.data.augment.profiles import user_contradictions
    from recgen.data.simulate.agents import build_agents, item_text

    train = leave_one_out(load_dataset("ml-100k", data_dir=real_data_dir)).train
    tags = item_text(train).tags
    genres = {}
    for a in build_agents(train, ["1", "2"]):
        genres[a.user] = {t.split(":", 1)[1] for i in (a.liked[-12:] or a.history[-12:]) for t in tags[int(i)]}
    known = sorted({t.split(":", 1)[1] for s in tags for t in s if t.startswith("genres:")})
    absent = next(g for g in known if g not in genres["2"] and "-" not in g and "'" not in g)
    rows = [
        {"id": "1", "status": "ok", "json": {"likes": f"{sorted(genres['1'])[0].lower()} films"}},  # shown
        {"id": "2", "status": "ok", "json": {"likes": f"old {absent} and more"}},  # never shown to the LLM
        {"id": "3", "status": "ok", "json": {"likes": "long walks"}},  # no catalogue genre: not checkable
        {"id": "4", "status": "missing"},
    ]
    assert user_contradictions(train, rows) == {"checked": 2, "contradicting": 1, "contradiction_rate": 0.5}
