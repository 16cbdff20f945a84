"""Report helpers: protocol labels, the TALLRec study table, the HSTU vs SASRec head-to-head."""

from recgen.experiments.tables import head_to_head_table, protocol_label, tallrec_table, tokenizer_table


def test_protocol_labels_name_splits_and_user_subsets():
    assert protocol_label({"name": "leave-one-out"}) == ""
    assert protocol_label({"name": "leave-one-out", "eval_users": 300}) == "300 seeded test users"
    assert protocol_label({"name": "temporal", "valid_frac": 0.1, "test_frac": 0.2}) == "temporal 7:1:2"
    assert (
        protocol_label({"name": "user-temporal", "valid_frac": 0.1, "test_frac": 0.2, "eval_users": 50})
        == "user-temporal 7:1:2, 50 seeded test users"
    )


def test_tallrec_table_puts_the_published_row_beside_each_size():
    r = {
        "dataset": "ml-100k",
        "model_file": "/x/m.gguf",
        "model_sha256": "ab" * 32,
        "seed": 0,
        "prompt_template": "tallrec-v1",
        "n_test": 189,
        "zero_shot_auc": 0.5,
        "baselines": {"history_like_rate_auc": 0.6, "item_like_rate_auc": 0.61},
        "published": {"auc": {"16": 0.6724, "64": 0.6748}},
        "runs": [
            {"n_train": 16, "test_auc": 0.55, "epochs": 4, "steps": 8, "train_seconds": 10.0},
            {"n_train": 32, "test_auc": 0.56, "steps": 16, "train_seconds": 20.0},
        ],
    }
    lines = tallrec_table([r]).splitlines()
    assert (
        "| tallrec-v1 | 0 | 189 | 16 | 4 | 0.5500 | 0.5000 | 0.6000 | 0.6100 (per title) | – | 0.6724 | 8 | 10 |"
        in (lines[2])
    )  # a file from before the per-item count says which count it holds
    assert "| 32 | - | 0.5600 |" in lines[3] and "| – | – | 16 | 20 |" in lines[3]  # no published row at 32
    r["baselines"]["item_like_rate_counted"] = "per item"
    assert "| 0.6000 | 0.6100 | – | 0.6724 |" in tallrec_table([r]).splitlines()[2]


def _run(dataset, model, seeds, valid, test, dropout=0.2, protocol=None):
    return {
        "dataset": dataset,
        "model": model,
        "config": {"dropout": dropout},
        "protocol": protocol or {"name": "leave-one-out"},
        "seeds": list(range(seeds)),
        "valid": {"ndcg@10": valid},
        "test": {"ndcg@10": test, "recall@10": 2 * test},
        "test_std": {"ndcg@10": 0.001, "recall@10": 0.002},
    }


def test_head_to_head_picks_runs_by_seeds_then_validation_never_by_test():
    rs = [
        _run("beauty", "hstu", 3, valid=0.05, test=0.040),
        _run("beauty", "hstu", 1, valid=0.09, test=0.090),  # fewer seeds: not picked despite better numbers
        _run("beauty", "sasrec", 3, valid=0.06, test=0.030, dropout=0.5),  # better validation: picked
        _run("beauty", "sasrec", 3, valid=0.04, test=0.050),  # better test only
        _run("toys", "hstu", 1, valid=0.05, test=0.020),
        _run("toys", "sasrec", 1, valid=0.05, test=0.025),
        _run("yelp", "hstu", 1, valid=0.05, test=0.020),  # no sasrec run: no row
        _run("ml-100k", "sasrec", 3, valid=0.1, test=0.5, protocol={"name": "leave-one-out", "eval_users": 100}),
    ]
    table = head_to_head_table(rs)
    rows = [line for line in table.splitlines() if line.startswith("| ") and "config" not in line]
    assert [r.split(" | ")[0] for r in rows] == ["| beauty", "| toys"]
    assert "0.0400 ± 0.0010" in rows[0] and "0.0300 ± 0.0010" in rows[0] and "+0.0100" in rows[0]
    assert "-0.0050" in rows[1]
    assert table.endswith("hstu >= sasrec on test NDCG@10 on 1 of 2 datasets.")  # toys: 1 seed, no tie call
    tied = head_to_head_table(
        [_run("lastfm", "hstu", 3, 0.05, 0.0330), _run("lastfm", "sasrec", 3, 0.05, 0.0335)]  # -0.0005, std 0.001
        + [_run("beauty", "hstu", 3, 0.05, 0.030), _run("beauty", "sasrec", 3, 0.05, 0.035)]  # -0.005: no tie
    )
    assert tied.endswith(
        "hstu >= sasrec on test NDCG@10 on 0 of 2 datasets. Behind by no more than the larger seed standard "
        "deviation of the two (a tie at this many seeds) on: lastfm."
    )
    assert head_to_head_table([_run("toys", "hstu", 1, 0.1, 0.1)]) == ""


def _tiger(tokenizer, ndcg, epochs=8, free=None):
    seed = {
        "run_info": {"tokenizer": {"levels": [256, 3], "perplexity": [200.4, 99.6], "collision_rate": 0.05}},
        "test_variants": {
            "constrained=false": {"test": {"ndcg@10": free}, "run_info": {"stats": {"invalid_rate": 0.01}}}
        }
        if free is not None
        else {},
    }
    return {
        "dataset": "beauty",
        "model": "tiger",
        "config": {"tokenizer": tokenizer, "epochs": epochs, "seed": 0},
        "protocol": {"name": "leave-one-out"},
        "seeds": [0],
        "test": {"recall@10": 2 * ndcg, "ndcg@10": ndcg},
        "per_seed": [seed],
    }


def test_tokenizer_table_sets_side_by_side_only_runs_that_differ_in_the_tokenizer():
    runs = [_tiger("rqvae", 0.02, free=0.019), _tiger("id", 0.03), _tiger("collab", 0.05, epochs=20)]
    lines = tokenizer_table(runs).splitlines()
    assert len(lines) == 4  # header, rule, id then rqvae; collab trained longer: not comparable, left out
    assert "**id**" in lines[2] and "**rqvae**" in lines[3]
    assert "| 0.0190 | 0.0100 | 256/3 | 200/100 | 0.0500 |" in lines[3]
    assert "| 0.0300 | – | – |" in lines[2]
    assert tokenizer_table([_tiger("id", 0.03)]) == ""


ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


def _outside_generated_blocks(text: str) -> str:
    import re

    return re.sub(r"<!-- (\w+):start -->.*?<!-- \1:end -->", "", text, flags=re.S)


def test_readme_holds_no_typed_figures_and_stays_a_guide():
    """Every four-decimal figure in the README sits in a block `recgen report` generates; the README stays short."""
    import re

    text = (ROOT / "README.md").read_text()
    typed = re.findall(r"\d\.\d{4}", _outside_generated_blocks(text))
    assert not typed, f"figures typed into the README outside the generated blocks: {typed[:5]}"
    assert len(text.splitlines()) <= 250
    assert "<!-- models:start -->" in text and "<!-- models:end -->" in text


def test_report_regenerates_the_committed_readme_and_results_with_zero_diff(tmp_path):
    """The committed README.md and benchmarks/RESULTS.md are exactly what `recgen report` writes from the
    committed results files: no figure in them is typed by hand or left stale."""
    import shutil

    from recgen.experiments.report import write_report

    readme = tmp_path / "README.md"
    shutil.copy(ROOT / "README.md", readme)
    out = tmp_path / "RESULTS.md"
    cwd = __import__("os").getcwd()
    __import__("os").chdir(ROOT)  # results files are named relative to the repository root, as `recgen report` runs
    try:
        write_report("benchmarks/results", out, readme)
    finally:
        __import__("os").chdir(cwd)
    assert readme.read_text() == (ROOT / "README.md").read_text(), "README.md is stale: run `recgen report`"
    assert out.read_text() == (ROOT / "benchmarks/RESULTS.md").read_text(), "RESULTS.md is stale: run `recgen report`"


def test_below_pop_rows_are_marked():
    from recgen.experiments.tables import results_table

    def run(model, ndcg, users=0):
        proto = {"name": "leave-one-out", **({"eval_users": users} if users else {})}
        return {
            "dataset": "d", "model": model, "config": {}, "protocol": proto, "seeds": [0],
            "test": {"recall@5": 0.1, "ndcg@5": 0.1, "recall@10": 0.1, "ndcg@10": ndcg, "mrr": 0.1},
            "throughput": {"eval_users_per_second": 10.0}, "timings": {"fit_seconds_mean": 1.0},
        }  # fmt: skip

    table = results_table([run("pop", 0.05), run("weak", 0.01), run("good", 0.2), run("tiny", 0.0, users=100)])
    rows = {line.split("|")[2].strip(): line for line in table.splitlines()[2:]}
    assert rows["**weak** (recgen, below Pop)"] and rows["**good** (recgen)"] and rows["**pop** (recgen)"]
    assert "**tiny** (recgen, below Pop on all users)" in rows


def test_a_truncated_results_file_is_an_error_not_a_missing_row(tmp_path, capsys):
    from recgen.cli.main import main

    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "x__ease__leave-one-out__00000000.json").write_text('{"schema": "recgen-bench/1", "da')
    code = main(["report", "--results", str(tmp_path / "results"), "--out", str(tmp_path / "R.md"), "--readme", ""])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "not a valid results file" in err and "x__ease" in err
    assert not (tmp_path / "R.md").exists()


def test_a_results_file_a_study_table_cannot_read_is_named_in_one_line(tmp_path, capsys):
    import json

    from recgen.cli.main import main

    study = tmp_path / "results" / "text-items"
    study.mkdir(parents=True)
    good = json.loads((ROOT / "benchmarks/results/text-items/yelp__hstu__leave-one-out__729be592.json").read_text())
    (study / "yelp__hstu__leave-one-out__729be592.json").write_text(json.dumps(good))
    main(["report", "--results", str(tmp_path / "results"), "--out", str(tmp_path / "R.md"), "--readme", ""])
    assert "| yelp | hstu | meta | fuse | 3 |" in (tmp_path / "R.md").read_text()  # the file as written reads
    del good["valid"]  # valid JSON, recgen's schema, a field its table reads gone (an edited or foreign file)
    (study / "yelp__sasrec__leave-one-out__00000000.json").write_text(json.dumps(good))
    code = main(["report", "--results", str(tmp_path / "results"), "--out", str(tmp_path / "R2.md"), "--readme", ""])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "yelp__sasrec__leave-one-out__00000000.json" in err
    assert "Traceback" not in err and not (tmp_path / "R2.md").exists()


def test_scaling_table_names_each_row_by_its_settings_and_seeds():
    from recgen.experiments.tables import scaling_table

    def run(cfg, seeds, r10, std):
        seed = {"non_embedding_parameters": 100, "best_epoch": 5, "train_speed": {"train_flops": 1e9}}
        return {"dataset": "beauty", "model": "dreamrec", "config": {"embedding_dim": 64, "n_layers": 1, **cfg},
                "seeds": list(range(seeds)), "per_seed": [seed] * seeds, "test": {"recall@10": r10, "ndcg@10": r10 / 2},
                "test_std": {"recall@10": std, "ndcg@10": std / 2}}  # fmt: skip

    lines = scaling_table([run({"item_table": "sasrec"}, 3, 0.05, 0.01), run({}, 1, 0.001, 0.0)]).splitlines()
    assert "| item_table=sasrec |" in lines[2] and "| 3 | 0.0500 ± 0.0100 | 0.0250 ± 0.0050 |" in lines[2]
    assert "| 1 | 0.0010 | 0.0005 |" in lines[3]
