"""The CLI end to end (in-process through main(), plus the installed entry point in a subprocess)."""

import json
import subprocess
import sys

import pytest

from recgen.cli.main import main
from recgen.io import seal_json
from recgen.models.registry import MODELS
from recgen.testing import make_tiny_dataset


@pytest.fixture
def data_folder(tmp_path):
    """The tiny dataset as a native folder and as a CSV."""
    ds = make_tiny_dataset()
    ds.save(tmp_path / "tiny")
    rows = ["user,item,timestamp"] + [
        f"{u},{i},{t}"
        for u, i, t in zip(ds.users.external(ds.user_ids), ds.items.external(ds.item_ids), ds.timestamps, strict=True)
    ]
    (tmp_path / "tiny.csv").write_text("\n".join(rows) + "\n")
    return tmp_path


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_data_info_json(capsys, data_folder):
    code, out, _ = run(capsys, "data", "info", str(data_folder / "tiny"), "--json")
    stats = json.loads(out)
    assert code == 0 and (stats["users"], stats["items"], stats["interactions"]) == (60, 32, 360)
    code, out, _ = run(capsys, "data", "info", str(data_folder / "tiny.csv"), "--format", "csv", "--json")
    assert code == 0 and json.loads(out)["interactions"] == 360
    code, out, _ = run(capsys, "data", "info", str(data_folder / "tiny.csv"))
    assert code == 0 and "interactions" in out


def test_bench_writes_results_json(capsys, data_folder, tmp_path):
    out_dir = tmp_path / "results"
    code, out, err = run(
        capsys,
        "bench",
        "--dataset",
        str(data_folder / "tiny.csv"),
        "--model",
        "ease",
        "--set",
        "l2=5",
        "--seeds",
        "2",
        "--out",
        str(out_dir),
    )
    assert code == 0, err
    files = list(out_dir.glob("*.json"))
    assert len(files) == 1
    r = json.loads(files[0].read_text())
    for key in (
        "dataset",
        "protocol",
        "model",
        "config",
        "seeds",
        "test",
        "valid",
        "timings",
        "recgen_version",
        "git_commit",
        "machine",
        "command",
        "throughput",
    ):
        assert key in r, key
    for key in ("recall@5", "recall@10", "ndcg@5", "ndcg@10", "mrr"):
        assert 0.0 <= r["test"][key] <= 1.0 and key in r["valid"]
    assert r["config"]["l2"] == 5.0 and r["seeds"] == [0, 1]
    assert r["protocol"]["name"] == "leave-one-out" and "file's order" in r["protocol"]["description"]
    assert r["machine"]["matmul_peak_gflops"] > 0
    assert "recall@10" in out and "protocol:" in out
    # the report regenerates tables from the files alone
    readme = tmp_path / "README.md"
    readme.write_text("x\n<!-- models:start -->\nSTALE-TABLE\n<!-- models:end -->\ny\n")
    code, _, err = run(
        capsys, "report", "--results", str(out_dir), "--out", str(tmp_path / "R.md"), "--readme", str(readme)
    )
    assert code == 0, err
    text = readme.read_text()
    assert "STALE-TABLE" not in text and "**EASE** (`ease`)" in text and text.endswith("y\n")
    assert f"{r['test']['ndcg@10']:.4f}" in text  # the model table shows the run
    assert f"{r['test']['ndcg@10']:.4f}" in (tmp_path / "R.md").read_text()


def test_train_and_recommend(capsys, data_folder, tmp_path):
    model_dir = tmp_path / "model"
    code, _, err = run(
        capsys,
        "train",
        "-d",
        str(data_folder / "tiny"),
        "-m",
        "itemknn",
        "--set",
        "k=5",
        "-o",
        str(model_dir),
    )
    assert code == 0, err
    user = make_tiny_dataset().users.ids[0]
    code, out, err = run(capsys, "recommend", "--model-dir", str(model_dir), "--user", user, "-k", "3", "--json")
    assert code == 0, err
    recs = json.loads(out)
    assert recs[0]["query"] == user and recs[0]["known_user"] and len(recs[0]["items"]) == 3
    code, out, _ = run(capsys, "recommend", "--model-dir", str(model_dir), "--user", "stranger", "-k", "2")
    assert code == 0 and "unknown user" in out
    # a session: unknown ids are named; a session of unknown ids only says it falls back to popularity
    code, out, _ = run(capsys, "recommend", "--model-dir", str(model_dir), "--items", "nope1,nope2", "-k", "2")
    assert code == 0 and "no item of the session is in the catalogue: most popular items" in out
    known = json.loads(run(capsys, "recommend", "--model-dir", str(model_dir), "--user", user, "--json")[1])
    item = known[0]["items"][0]["item_id"]
    code, out, _ = run(capsys, "recommend", "--model-dir", str(model_dir), "--items", f"{item},nope3", "-k", "2")
    assert code == 0 and "not in the catalogue, ignored: nope3" in out


BAD = [
    (["data", "info", "no/such/path.csv"], "not found"),
    (["data", "info", "nosuchdataset"], "unknown dataset"),
    (["data", "info", "{tiny_csv}", "--format", "excel"], "unknown format"),
    (["data", "info", "{tiny_csv}", "--columns", "user=nope"], "column 'nope'"),
    (["data", "info", "{tiny_csv}", "--sep", "\t"], "no user column"),
    (["data", "info", "{empty}"], "empty"),
    (["data", "info", "{latin1}"], "--encoding latin-1"),
    (["bench", "-d", "{tiny}", "-m", "nosuchmodel"], "unknown model"),
    (["bench", "-d", "{tiny}", "-m", "ease", "--seeds", "0"], "--seeds must be >= 1"),
    (["bench", "-d", "{tiny}", "-m", "ease", "--set", "l2=abc"], "l2 must be float"),
    (["bench", "-d", "{tiny}", "-m", "ease", "--set", "bogus=1"], "unknown config field"),
    (["bench", "-d", "{tiny}", "-m", "ease", "--set", "l2"], "key=value"),
    (["bench", "-d", "{tiny}", "-m", "ease", "--protocol", "weird"], "unknown split protocol"),
    (["bench", "-d", "{tiny}"], "Missing option"),
    (["bench", "-d", "{tiny}", "-m", "pop", "--cold-frac", "0.1"], "--cold-frac applies to --protocol item-cold"),
    (["bench", "-d", "{tiny}", "-m", "pop", "--protocol", "item-cold-start", "--max-train", "3"], "--max-train"),
    (["bench", "-d", "{tiny}", "-m", "pop", "--protocol", "item-cold-start", "--cold-frac", "1"], "cold_frac must"),
    (["recommend", "--model-dir", "{tiny}", "-u", "1"], "not a recgen model folder"),
    (["recommend", "--model-dir", "no/such/dir", "-u", "1"], "model folder not found"),
    (["recommend", "--model-dir", "{tiny}", "-u", "1", "-k", "0"], "k must be an integer >= 1"),
    (["data", "fetch", "beauty", "--data-dir", "{tmp}"], "has no fetcher"),
    (
        ["train", "-d", "{tiny}", "-m", "ease", "-o", "{tmp}/m", "--resume", "--run-dir", "{tmp}"],
        "trained by recgen's trainer (bpr, diffrec, dreamrec, hstu",
    ),
    (["train", "-d", "{tiny}", "-m", "sasrec", "-o", "{tmp}/m", "--resume"], "--resume needs --run-dir"),
    (["llm", "llara", "{tiny}", "--variants", "text,foo"], "--variants must be comma-separated names"),
    (["llm", "llara", "{tiny}", "--set", "n_candidates=1"], "n_candidates must be >= 2"),
]


@pytest.mark.parametrize("argv,match", BAD, ids=[" ".join(a[:2]) + f" {i}" for i, (a, _) in enumerate(BAD)])
def test_bad_input_one_line_error(capsys, data_folder, tmp_path, argv, match):
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "latin1.csv").write_bytes("user,item\n1,caf\xe9\n".encode("latin-1"))
    subs = {
        "{tiny_csv}": str(data_folder / "tiny.csv"),
        "{tiny}": str(data_folder / "tiny"),
        "{empty}": str(tmp_path / "empty.csv"),
        "{latin1}": str(tmp_path / "latin1.csv"),
        "{tmp}": str(tmp_path),
    }
    argv = [subs.get(a, a).replace("{tmp}", str(tmp_path)) for a in argv]
    code, out, err = run(capsys, *argv)
    assert code != 0
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert match in lines[0]
    assert "Traceback" not in err + out


def test_cold_start_shares_reach_the_split_and_name_the_results_file(capsys, data_folder, tmp_path):
    base = ["bench", "-d", str(data_folder / "tiny"), "-m", "pop", "--out", str(tmp_path / "r")]
    runs = {
        "item-cold-start": ["--protocol", "item-cold-start"],
        "item-cold-start-c30": ["--protocol", "item-cold-start", "--cold-frac", "0.3"],
        "user-cold-start-c50-n2": ["--protocol", "user-cold-start", "--cold-frac", "0.5", "--max-train", "2"],
    }
    for proto, args in runs.items():
        code, out, err = run(capsys, *base, *args)
        assert code == 0, err
        (path,) = (tmp_path / "r").glob(f"*__pop__{proto}__*.json")
        p = json.loads(path.read_text())["protocol"]
        assert p["cold_frac"] == (float(args[3]) if "--cold-frac" in args else 0.15)
        assert p.get("max_train") == (2 if proto.startswith("user") else None)
    # 30% of the 32 items is 10 cold items (round(9.6)); the default 15% is 5
    cold = {
        f.name.split("__")[2]: json.loads(f.read_text())["protocol"]["cold_items"]
        for f in (tmp_path / "r").glob("*item*")
    }
    assert cold == {"item-cold-start": 5, "item-cold-start-c30": 10}


def test_latin1_with_encoding_option(capsys, tmp_path):
    (tmp_path / "latin1.csv").write_bytes("user,item\n1,caf\xe9\n2,caf\xe9\n".encode("latin-1"))
    code, out, err = run(capsys, "data", "info", str(tmp_path / "latin1.csv"), "--encoding", "latin-1", "--json")
    assert code == 0, err
    assert json.loads(out)["items"] == 1


def test_entry_point_subprocess(tmp_path):
    """The installed `python -m recgen` entry point: exit code 2, one line, no traceback."""
    proc = subprocess.run(
        [sys.executable, "-m", "recgen", "data", "info", str(tmp_path / "missing.csv")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error:") and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    ok = subprocess.run([sys.executable, "-m", "recgen", "models"], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.split() == sorted(MODELS)


def test_import_is_light():
    """`import recgen` must not pull in torch (heavy parts load lazily)."""
    code = "import sys, recgen; print('torch' in sys.modules, 'pyarrow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.split()
    assert out == ["False", "False"]


def test_sequence_model_bench_speed_and_scaling_plot(capsys, data_folder, tmp_path):
    out_dir = tmp_path / "results"
    for dim in (8, 16):
        code, _, err = run(
            capsys,
            "bench",
            "-d",
            str(data_folder / "tiny"),
            "-m",
            "sasrec",
            "--set",
            "epochs=2",
            "--set",
            f"embedding_dim={dim}",
            "--set",
            "max_seq_len=6",
            "--out",
            str(out_dir),
        )
        assert code == 0, err
    results = [json.loads(p.read_text()) for p in out_dir.glob("*.json")]
    assert len(results) == 2
    for r in results:
        assert r["throughput"]["train_samples_per_second"] > 0
        assert 0 < r["throughput"]["mfu"] < 1.5
        assert r["per_seed"][0]["non_embedding_parameters"] > 0
        assert r["best_epochs"] == [r["per_seed"][0]["best_epoch"]]
    png = tmp_path / "scaling.png"
    code, _, err = run(capsys, "plot-scaling", "-d", "clusters", "--results", str(out_dir), "--out", str(png))
    assert code == 0, err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, _, err = run(capsys, "plot-scaling", "-d", "nosuch", "--results", str(out_dir), "--out", str(png))
    assert code == 2 and "no results" in err
    # a study in a subfolder gets its own section (model size, FLOPs, MFU) in the report
    code, _, err = run(capsys, "report", "--results", str(tmp_path), "--out", str(tmp_path / "R.md"), "--readme", "")
    assert code == 0, err
    text = (tmp_path / "R.md").read_text()
    assert "## Study: `results`" in text
    rows = [r for r in text.splitlines() if r.startswith("| clusters | sasrec | ")]  # settings, then embedding_dim
    assert len(rows) == 2 and "embedding_dim=8, max_seq_len=6 | 8 | 2 |" in rows[0]  # smallest first
    assert "embedding_dim=16, max_seq_len=6 | 16 | 2 |" in rows[1]


def test_bench_grid_chooses_on_validation(capsys, data_folder, tmp_path):
    out_dir = tmp_path / "results"
    argv = ["bench", "-d", str(data_folder / "tiny"), "-m", "ease", "--grid", "l2=1,50,5000", "--out", str(out_dir)]
    code, _, err = run(capsys, *argv)
    assert code == 0, err
    (res,) = [json.loads(p.read_text()) for p in out_dir.glob("*.json")]
    points = res["grid"]["points"]
    assert [p["l2"] for p in points] == [1.0, 50.0, 5000.0]
    best = max(points, key=lambda p: p["valid_ndcg@10"])
    assert res["grid"]["chosen"] == {"l2": best["l2"]} and res["config"]["l2"] == best["l2"]
    assert res["valid"]["ndcg@10"] == best["valid_ndcg@10"]  # the chosen config is what was run
    code, _, err = run(capsys, "bench", "-d", str(data_folder / "tiny"), "-m", "ease", "--grid", "l2")
    assert code == 2 and "--grid takes key=v1,v2" in err


def test_codebook_study_records_tokenizer_statistics(capsys, data_folder, tmp_path):
    from recgen.experiments.report import write_report

    out = tmp_path / "results" / "codebooks"
    argv = ["codebook", "-d", str(data_folder / "tiny"), "--tokenizers", "rqkmeans,id", "--out", str(out)]
    argv += ["--set", "embeddings=svd", "--set", "svd_dim=3", "--set", "codebook_size=3", "--set", "levels=2"]
    assert main(argv) == 0
    (path,) = out.glob("*__codebooks__svd.json")
    r = json.loads(path.read_text())
    rq, ids = r["tokenizers"]
    assert rq["tokenizer"] == "rqkmeans" and len(rq["perplexity"]) == 2 and rq["level_sizes"][:2] == [3, 3]
    assert 0.0 <= rq["collision_rate"] <= 1.0 and rq["reconstruction_mse"] >= 0.0
    assert ids["level_sizes"] == [r["n_items"], 1] and ids["collision_rate"] == 0.0
    body = write_report(tmp_path / "results", tmp_path / "R.md", None)
    assert "| rqkmeans | svd | [3, 3," in body
    assert main(["codebook", "-d", str(data_folder / "tiny"), "--tokenizers", "bpe", "--out", str(out)]) == 2
    assert "tokenizer must be one of" in capsys.readouterr().err
    # a later study of one more tokenizer on the same data and config adds its row and keeps the others
    argv[4] = "rqvae"
    assert main(argv + ["--set", "rqvae_epochs=2"]) == 0  # another config: the file is replaced
    assert [t["tokenizer"] for t in json.loads(path.read_text())["tokenizers"]] == ["rqvae"]
    assert main(argv[:4] + ["rqkmeans,id"] + argv[5:] + ["--set", "rqvae_epochs=2"]) == 0
    merged = json.loads(path.read_text())["tokenizers"]
    assert [t["tokenizer"] for t in merged] == ["rqvae", "rqkmeans", "id"]
    assert all("git_commit" in t for t in merged)
    assert merged[0]["command"].startswith("recgen codebook") and "rqvae" in merged[0]["command"]
    assert "rqkmeans,id" in merged[1]["command"]


def test_tiger_bench_records_invalid_rate_tokenizer_and_speed(capsys, data_folder, tmp_path):
    out_dir = tmp_path / "results"
    args = ["bench", "-d", str(data_folder / "tiny"), "-m", "tiger", "--out", str(out_dir)]
    for kv in ("embeddings=svd", "svd_dim=3", "codebook_size=3", "levels=2", "d_model=16", "ffn_dim=32", "epochs=2"):
        args += ["--set", kv]
    code, _, err = run(capsys, *args, "--decode-variant", "constrained=false", "--decode-variant", "beam=5")
    assert code == 0, err
    (path,) = out_dir.glob("*tiger*.json")
    r = json.loads(path.read_text())
    info = r["per_seed"][0]["run_info"]
    assert info["constrained"] and info["stats"]["invalid_rate"] == 0.0 and info["stats"]["ms_per_user"] > 0
    assert info["tokenizer"]["name"] == "rqvae" and len(info["tokenizer"]["perplexity"]) == 2
    assert r["throughput"]["train_samples_per_second"] > 0 and 0 < r["throughput"]["mfu"] < 1.5
    # the same fitted model decoded freely and with a narrower beam; the run's own config is unchanged
    free, narrow = (r["per_seed"][0]["test_variants"][k] for k in ("constrained=false", "beam=5"))
    assert free["run_info"]["constrained"] is False and 0.0 <= free["run_info"]["stats"]["invalid_rate"] <= 1.0
    assert narrow["run_info"]["beam"] == 5 and narrow["run_info"]["stats"]["invalid_rate"] == 0.0
    assert set(free["test"]) == set(r["test"]) and r["config"]["constrained"] is True and r["config"]["beam"] == 20
    from recgen.experiments.tables import variants_table

    table = variants_table([r])
    assert "| as run | 1 |" in table and "| constrained=false | 1 |" in table and "| beam=5 | 1 |" in table
    code, _, err = run(capsys, *args, "--decode-variant", "d_model=8")
    assert code == 2 and "reads when recommending (constrained, beam), not d_model" in err


def test_bench_writes_after_each_seed_and_resume_runs_only_missing_seeds(capsys, data_folder, tmp_path, monkeypatch):
    from recgen.experiments.tables import results_table
    from recgen.models.sequential.sasrec import SASRec

    out_dir = tmp_path / "results"
    base = ["bench", "-d", str(data_folder / "tiny"), "-m", "sasrec", "--out", str(out_dir)]
    base += ["--set", "epochs=1", "--set", "embedding_dim=8", "--set", "n_layers=1"]
    # an interruption in seed 1 leaves seed 0 on disk, marked incomplete
    real_fit, calls = SASRec.fit, []

    def failing_fit(self, *a, **k):
        calls.append(self.config.seed)
        if self.config.seed == 1:
            raise KeyboardInterrupt
        return real_fit(self, *a, **k)

    monkeypatch.setattr(SASRec, "fit", failing_fit)
    assert main([*base, "--seeds", "2"]) != 0  # main reports the interruption and exits non-zero
    (path,) = out_dir.glob("*.json")
    partial = json.loads(path.read_text())
    assert partial["seeds"] == [0] and partial["seeds_planned"] == 2 and partial["complete"] is False
    assert "| 1 of 2 planned |" in results_table([partial])
    monkeypatch.setattr(SASRec, "fit", real_fit)
    capsys.readouterr()
    # --resume keeps seed 0 as it was (same fit time to the bit) and runs seeds 1 and 2 only
    code, out, err = run(capsys, *base, "--seeds", "3", "--resume")
    assert code == 0, err
    r = json.loads(path.read_text())
    assert "keeping seed(s) [0]" in out + err
    assert r["seeds"] == [0, 1, 2] and r["complete"] is True
    assert r["per_seed"][0]["fit_seconds"] == partial["per_seed"][0]["fit_seconds"]
    assert all(e["git_commit"] == r["git_commit"] for e in r["per_seed"])
    mean = sum(e["test"]["ndcg@10"] for e in r["per_seed"]) / 3
    assert r["test"]["ndcg@10"] == pytest.approx(mean)
    assert "| 3 |" in results_table([r])
    # a file made from other data is not silently mixed in
    r["dataset_fingerprint"] = "0" * 16
    path.write_text(json.dumps(seal_json(r)))  # as recgen writes it
    code, _, err = run(capsys, *base, "--seeds", "3", "--resume")
    assert code == 2 and "different dataset fingerprint" in err and "without --resume" in err


def test_bench_resume_continues_a_seed_interrupted_mid_training(capsys, data_folder, tmp_path, monkeypatch):
    from recgen.models.training.trainer import Trainer

    base = ["bench", "-d", str(data_folder / "tiny"), "-m", "sasrec", "--seeds", "1"]
    base += ["--set", "epochs=4", "--set", "eval_every=1", "--set", "patience=10", "--set", "embedding_dim=8"]
    code, _, err = run(capsys, *base, "--out", str(tmp_path / "whole"))
    assert code == 0, err
    (whole,) = (tmp_path / "whole").glob("*.json")
    # the same run, interrupted after epoch 2 (its last.pt written), then resumed from the run folder
    real_save, runs = Trainer.save_last, tmp_path / "runs"

    def save_then_stop(self):
        real_save(self)
        if self.state.epoch == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "save_last", save_then_stop)
    assert main([*base, "--out", str(tmp_path / "cut"), "--run-dir", str(runs)]) != 0
    (seed_dir,) = runs.glob("*/seed0")
    assert seed_dir.parent.name == whole.stem and (seed_dir / "last.pt").exists()
    monkeypatch.setattr(Trainer, "save_last", real_save)
    code, out, err = run(capsys, *base, "--out", str(tmp_path / "cut"), "--run-dir", str(runs), "--resume")
    assert code == 0, err
    assert "continuing the interrupted training" in out + err
    a = json.loads(whole.read_text())["per_seed"][0]
    b = json.loads((tmp_path / "cut" / whole.name).read_text())["per_seed"][0]
    assert b["resumed_from_epoch"] == 2 and "resumed_from_epoch" not in a
    assert b["test"] == a["test"] and b["valid"] == a["valid"] and b["best_epoch"] == a["best_epoch"]
    assert [e["loss"] for e in b["train_log"]] == [e["loss"] for e in a["train_log"]]
    code, _, err = run(capsys, "bench", "-d", str(data_folder / "tiny"), "-m", "pop", "--run-dir", str(runs))
    assert code == 2 and "--run-dir applies to models trained by recgen's trainer" in err


def test_runs_says_where_an_interrupted_and_a_finished_run_stand(capsys, caplog, data_folder, tmp_path, monkeypatch):
    from recgen.models.training.trainer import Trainer, load_checkpoint

    base = ["bench", "-d", str(data_folder / "tiny"), "-m", "sasrec", "--seeds", "1", "--out", str(tmp_path / "o")]
    base += ["--set", "epochs=4", "--set", "eval_every=1", "--set", "patience=10", "--set", "embedding_dim=8"]
    base += ["--run-dir", str(tmp_path / "runs")]
    real_save = Trainer.save_last

    def save_then_stop(self):
        real_save(self)
        if self.state.epoch == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "save_last", save_then_stop)
    assert run(capsys, *base)[0] != 0
    monkeypatch.setattr(Trainer, "save_last", real_save)
    (seed_dir,) = (tmp_path / "runs").glob("*/seed0")
    code, out, err = run(capsys, "runs", str(tmp_path / "runs"), "--json")
    assert code == 0, err
    (s,) = json.loads(out)
    state = load_checkpoint(seed_dir / "last.pt")["state"]  # what --resume continues from
    assert s["folder"] == f"{seed_dir.parent.name}/seed0" and (s["model"], s["seed"]) == ("sasrec", 0)
    assert (s["epoch"], s["epochs"], s["best_epoch"]) == (2, 4, state["best_epoch"])
    assert s["best_value"] == pytest.approx(state["best_value"]) and s["metric"] == "ndcg@10"
    assert s["state"] == "resumable" and s["source"] == "progress.json"
    assert (s["epochs_left_min"], s["epochs_left_max"]) == (2, 2)  # patience 10 cannot stop it before epoch 4
    # a folder from before progress.json: the same figures from last.pt
    (seed_dir / "progress.json").unlink()
    code, out, _ = run(capsys, "runs", str(tmp_path / "runs"), "--json")
    (t,) = json.loads(out)
    assert t["source"] == "last.pt" and {k: v for k, v in t.items() if k not in ("source", "saved_seconds_ago")} == {
        k: v for k, v in s.items() if k not in ("source", "saved_seconds_ago")
    }
    code, out, _ = run(capsys, "runs", str(seed_dir))
    assert code == 0 and "resumable" in out and "2/4" in out and "2 epochs" in out
    # resumed to the end: finished, nothing left; the log says where it took over
    caplog.set_level("INFO", logger="recgen.training")
    assert run(capsys, *base, "--resume")[0] == 0
    best = f"best ndcg@10 {state['best_value']:.4f} at epoch {state['best_epoch']}"
    assert f"resumed after epoch 2 of 4; {best}" in caplog.text
    code, out, _ = run(capsys, "runs", str(tmp_path / "runs"), "--json")
    (f,) = json.loads(out)
    assert (f["epoch"], f["state"], f["epochs_left_max"], f["seconds_left_max"]) == (4, "finished (all epochs)", 0, 0)
    # bad input: one line, exit 2
    code, _, err = run(capsys, "runs", str(tmp_path / "o"))
    assert code == 2 and "no training run under" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "runs", str(tmp_path / "nowhere"))
    assert code == 2 and "no such folder" in err
    (seed_dir / "progress.json").write_text('{"format": 1, "epo')  # truncated, and newer than last.pt
    code, _, err = run(capsys, "runs", str(tmp_path / "runs"))
    assert code == 2 and "progress.json: not valid JSON" in err and len(err.strip().splitlines()) == 1
    (seed_dir / "progress.json").unlink()
    data = (seed_dir / "last.pt").read_bytes()
    (seed_dir / "last.pt").write_bytes(data[: len(data) // 2])
    code, _, err = run(capsys, "runs", str(tmp_path / "runs"))
    assert code == 2 and "last.pt" in err and len(err.strip().splitlines()) == 1


def test_epochs_left_counts_the_evaluations_patience_still_allows():
    from recgen.models.training.runs import RunStatus

    def status(**kw):
        base = dict(
            folder="r",
            model="m",
            seed=0,
            epoch=3,
            epochs=40,
            eval_every=2,
            patience=3,
            metric="ndcg@10",
            best_epoch=2,
            best_value=0.1,
            bad_evals=1,
            stop_reason="",
            wall_seconds=300.0,
            saved_seconds_ago=0.0,
            source="progress.json",
        )
        return RunStatus(**{**base, **kw})

    # evaluations at 4 and 6 without a gain make 3 since the best: stops at epoch 6, 3 epochs on; at most 37
    assert status().epochs_left() == (3, 37) and status().as_dict()["seconds_left_max"] == 37 * 100.0
    assert status(epoch=4, bad_evals=2).epochs_left() == (2, 36)  # one more evaluation, at 6
    assert status(epoch=39).epochs_left() == (1, 1)  # the last epoch comes first
    assert status(eval_every=None).epochs_left() == (37, 37)
    assert status(epochs=None).epochs_left() is None
    assert status(stop_reason="early_stopping").state == "finished (early stopping)"
    assert status(stop_reason="early_stopping").epochs_left() == (0, 0)
    # the time per epoch is the last epochs' (a resumed run may have sped up), else the whole run's mean
    from recgen.models.training.runs import recent_epochs

    log = [{"epoch": e, "wall_seconds": w} for e, w in enumerate([400.0, 800.0, 1200.0, 1300.0, 1400.0, 1520.0], 1)]
    assert recent_epochs(log) == (400.0, 100.0, 100.0, 120.0) and recent_epochs(log[:1]) == ()
    assert status(recent_epoch_seconds=(100.0, 120.0)).seconds_per_epoch == 110.0
    assert status().seconds_per_epoch == 100.0  # 300 s over 3 epochs


def test_bench_rescores_a_finished_run_under_another_scoring_field(capsys, data_folder, tmp_path):
    """``reason_score`` is read only when recommending: a run folder trained under ``trained`` serves a bench with
    ``reason_score=valid`` (copied under the new stem, nothing trained), and a training field change trains anew."""
    base = ["bench", "-d", str(data_folder / "tiny"), "-m", "sasrec", "--seeds", "1", "--run-dir", str(tmp_path / "r")]
    base += ["--set", "epochs=2", "--set", "eval_every=1", "--set", "embedding_dim=8", "--set", "reason_steps=1"]
    code, _, err = run(capsys, *base, "--out", str(tmp_path / "a"))
    assert code == 0, err
    (first,) = (tmp_path / "a").glob("*.json")
    again = [*base, "--set", "reason_score=valid", "--decode-variant", "reason_score=trained", "--resume"]
    code, out, err = run(capsys, *again, "--out", str(tmp_path / "b"))
    assert code == 0, err
    assert "holds this training" in out + err and "resuming from a copy of it" in out + err
    (second,) = (tmp_path / "b").glob("*.json")
    assert second.name != first.name and (tmp_path / "r" / second.stem / "seed0" / "last.pt").exists()
    a = json.loads(first.read_text())["per_seed"][0]
    b = json.loads(second.read_text())["per_seed"][0]
    assert b["resumed_from_epoch"] == 2 and b["best_epoch"] == a["best_epoch"]  # nothing trained
    assert b["test_variants"]["reason_score=trained"]["test"] == a["test"]
    assert set(b["run_info"]["valid_by_state"]) == {"h0", "h1", "mean1"}
    assert b["run_info"]["reason_state"] in b["run_info"]["valid_by_state"]
    code, out, err = run(capsys, *base, "--set", "reason_kl=0.1", "--resume", "--out", str(tmp_path / "c"))
    assert code == 0, err
    assert "holds this training" not in out + err
    assert "resumed_from_epoch" not in json.loads(next((tmp_path / "c").glob("*.json")).read_text())["per_seed"][0]


def test_resume_finds_a_file_made_before_the_config_gained_fields(capsys, data_folder, tmp_path):
    out_dir = tmp_path / "results"
    base = ["bench", "-d", str(data_folder / "tiny"), "-m", "sasrec", "--out", str(out_dir)]
    base += ["--set", "epochs=1", "--set", "embedding_dim=8", "--set", "n_layers=1"]
    assert main([*base, "--seeds", "1"]) == 0
    (path,) = out_dir.glob("*.json")
    r = json.loads(path.read_text())
    del r["config"]["train_prefixes"]  # as written before the field existed (its name hashed fewer fields)
    old = path.with_name(path.name.rsplit("__", 1)[0] + "__0ld0ld00.json")
    old.write_text(json.dumps(seal_json(r)))  # as recgen writes it
    path.unlink()
    capsys.readouterr()
    code, out, err = run(capsys, *base, "--seeds", "2", "--resume")
    assert code == 0, err
    assert "keeping seed(s) [0]" in out + err
    assert [p.name for p in out_dir.glob("*.json")] == [old.name]
    assert json.loads(old.read_text())["seeds"] == [0, 1]
    # a non-default value of the new field is a different run: nothing is kept
    code, out, err = run(capsys, *base, "--set", "train_prefixes=true", "--seeds", "1", "--resume")
    assert code == 0 and "no earlier results file" in out + err


def _seeds_run_apart(capsys, data_folder, tmp_path):
    """A 2-seed SASRec bench on the tiny data, each seed in its own process-like run and folder (as parallel
    processes would): the bench arguments and the two results files."""
    base = ["bench", "-d", str(data_folder / "tiny"), "-m", "sasrec", "--seeds", "2"]
    base += ["--set", "epochs=1", "--set", "embedding_dim=8", "--set", "n_layers=1"]
    for seed in (0, 1):
        code, _, err = run(capsys, *base, "--only-seed", str(seed), "--out", str(tmp_path / f"s{seed}"))
        assert code == 0, err
    (a,), (b,) = (tmp_path / "s0").glob("*.json"), (tmp_path / "s1").glob("*.json")
    return base, a, b


def test_seeds_run_apart_with_only_seed_merge_into_the_file_of_one_run(capsys, data_folder, tmp_path):
    base, a, b = _seeds_run_apart(capsys, data_folder, tmp_path)
    part = json.loads(a.read_text())
    assert part["seeds"] == [0] and part["complete"] is False and part["seeds_planned"] == 2
    code, _, err = run(capsys, *base, "--out", str(tmp_path / "whole"))  # both seeds in one process
    assert code == 0, err
    (whole,) = (tmp_path / "whole").glob("*.json")
    code, out, err = run(capsys, "merge-results", str(b), str(a), "--out", str(tmp_path / "merged"))
    assert code == 0, err
    (merged,) = (tmp_path / "merged").glob("*.json")
    assert merged.name == a.name == whole.name and "(complete)" in out
    m, w = json.loads(merged.read_text()), json.loads(whole.read_text())
    assert m["seeds"] == [0, 1] and m["complete"] is True
    assert [e["test"] for e in m["per_seed"]] == [e["test"] for e in w["per_seed"]]  # deterministic seeds
    assert m["test"] == pytest.approx(w["test"]) and m["test_std"] == pytest.approx(w["test_std"])
    assert [f["seeds"] for f in m["merged_from"]] == [[1], [0]] and m["command"].startswith("recgen merge-results")
    # merged again with a seed file it holds: the sources stay the bench runs, each listed once
    code, _, err = run(capsys, "merge-results", str(merged), str(a), "--out", str(tmp_path / "again"))
    assert code == 0, err
    again = json.loads(next((tmp_path / "again").glob("*.json")).read_text())
    assert again["merged_from"] == m["merged_from"] and again["test"] == m["test"]
    # bad input: a seed outside --seeds, files of different runs, one seed with two different outcomes
    code, _, err = run(capsys, *base, "--only-seed", "2", "--out", str(tmp_path / "x"))
    assert code == 2 and "--only-seed must name seeds in 0..1" in err
    other = json.loads(a.read_text())
    other["config"]["dropout"] = 0.5
    (tmp_path / "other.json").write_text(json.dumps(seal_json(other)))  # as recgen writes it
    code, _, err = run(capsys, "merge-results", str(a), str(tmp_path / "other.json"), "--out", str(tmp_path / "y"))
    assert code == 2 and "not the same run (they differ in config)" in err
    clash = json.loads(a.read_text())
    clash["per_seed"][0]["test"]["ndcg@10"] += 0.1
    (tmp_path / "clash.json").write_text(json.dumps(seal_json(clash)))  # as recgen writes it
    code, _, err = run(capsys, "merge-results", str(a), str(tmp_path / "clash.json"), "--out", str(tmp_path / "z"))
    assert code == 2 and "seed 0 is in" in err and "different test metrics" in err
    assert not (tmp_path / "y").exists() and not (tmp_path / "z").exists()


def test_merge_accepts_a_file_written_before_a_config_field_existed(capsys, data_folder, tmp_path):
    _, a, b = _seeds_run_apart(capsys, data_folder, tmp_path)
    old = json.loads(a.read_text())
    assert old["config"]["device"] == "cpu"  # the default
    del old["config"]["device"]  # as a file written before SASRec had a device field
    (tmp_path / "old.json").write_text(json.dumps(seal_json(old)))  # as recgen writes it
    code, _, err = run(capsys, "merge-results", str(tmp_path / "old.json"), str(b), "--out", str(tmp_path / "m"))
    assert code == 0, err
    (merged,) = (tmp_path / "m").glob("*.json")
    m = json.loads(merged.read_text())
    assert merged.name == b.name and m["config"]["device"] == "cpu" and m["seeds"] == [0, 1]
    assert m["merged_from"][0]["config_fields_at_default"] == ["device"]
    assert "config_fields_at_default" not in m["merged_from"][1]
    # a missing field is only the default: a file whose other run used a non-default value is another run
    gpu = json.loads(b.read_text())
    gpu["config"]["device"] = "cuda"
    (tmp_path / "gpu.json").write_text(json.dumps(seal_json(gpu)))  # as recgen writes it
    code, _, err = run(
        capsys, "merge-results", str(tmp_path / "old.json"), str(tmp_path / "gpu.json"), "--out", str(tmp_path / "n")
    )
    assert code == 2 and "differ in config" in err


def test_merge_joins_seeds_of_one_recipe_run_on_different_devices_only_when_asked(capsys, data_folder, tmp_path):
    from recgen.experiments.tables import results_table

    _, a, b = _seeds_run_apart(capsys, data_folder, tmp_path)
    gpu = json.loads(a.read_text())  # seed 0 as if trained with --set device=cuda
    gpu["config"]["device"] = "cuda"
    gpu["machine"] = {**gpu["machine"], "device": "cuda:0", "gpu": "Some GPU"}
    gpu["per_seed"][0]["fit_seconds"] = 1.0
    (tmp_path / "gpu.json").write_text(json.dumps(seal_json(gpu)))  # as recgen writes it
    args = ["merge-results", str(tmp_path / "gpu.json"), str(b), "--out", str(tmp_path / "m")]
    code, _, err = run(capsys, *args)
    assert code == 2 and "device 'cpu' there, 'cuda' here" in err and "--mixed-devices" in err
    code, _, err = run(capsys, *args, "--mixed-devices")
    assert code == 0, err
    (merged,) = (tmp_path / "m").glob("*.json")
    m = json.loads(merged.read_text())
    assert m["seeds"] == [0, 1] and m["config"]["device"] == "cuda+cpu"
    assert [e["device"] for e in m["per_seed"]] == ["cuda", "cpu"]
    by = m["throughput_by_device"]
    assert list(by) == ["cuda", "cpu"] and by["cuda"]["seeds"] == [0] and by["cuda"]["fit_seconds_mean"] == 1.0
    assert by["cpu"]["fit_seconds_mean"] == json.loads(b.read_text())["per_seed"][0]["fit_seconds"]
    assert len(m["machines"]) == 2
    assert "fit_seconds_mean" not in m["timings"] and "eval_users_per_second" not in m["throughput"]
    row = next(line for line in results_table([m]).splitlines() if "**sasrec**" in line)
    assert "device=cuda+cpu" in row and "| cuda 1.0 / cpu " in row
    # the recipe must still be the same
    other = json.loads(b.read_text())
    other["config"]["lr"] = 0.5
    (tmp_path / "other.json").write_text(json.dumps(seal_json(other)))  # as recgen writes it
    code, _, err = run(
        capsys,
        "merge-results",
        str(tmp_path / "gpu.json"),
        str(tmp_path / "other.json"),
        "--mixed-devices",
        "--out",
        str(tmp_path / "n"),
    )
    assert code == 2 and "differ in config)" in err


def test_scaling_points_keep_one_line_per_recipe():
    from recgen.experiments.plots import _points

    def run_of(model, dim, dropout, ndcg):
        seed = {"non_embedding_parameters": dim * 10, "train_speed": {"train_flops": dim * 1e9}}
        cfg = {"embedding_dim": dim, "n_layers": 1, "dropout": dropout, "epochs": 60}
        return {"dataset": "d", "model": model, "config": cfg, "per_seed": [seed], "test": {"ndcg@10": ndcg}}

    runs = [run_of("sasrec", 16, 0.2, 0.1), run_of("sasrec", 64, 0.2, 0.3), run_of("sasrec", 32, 0.5, 0.2)]
    runs += [run_of("hstu", 32, 0.2, 0.4), run_of("hstu", 16, 0.2, 0.5)]
    runs += [{**run_of("hstu", 8, 0.2, 0.6), "dataset": "other"}]
    pts = _points(runs, "d", "ndcg@10")
    assert pts == {
        "sasrec (dropout=0.2)": [(160.0, 16e9, 0.1), (640.0, 64e9, 0.3)],
        "sasrec (dropout=0.5)": [(320.0, 32e9, 0.2)],
        "hstu": [(160.0, 16e9, 0.5), (320.0, 32e9, 0.4)],
    }


def test_bench_item_block_gives_the_whole_row_metrics_and_records_peak_memory(capsys, data_folder, tmp_path):
    results = {}
    for label, extra in (("rows", []), ("blocks", ["--item-block", "5"])):
        code, _, err = run(capsys, "bench", "-d", str(data_folder / "tiny.csv"), "-m", "itemknn", "--out",
                           str(tmp_path / label), *extra)  # fmt: skip
        assert code == 0, err
        (f,) = (tmp_path / label).glob("*.json")
        results[label] = json.loads(f.read_text())
    assert results["blocks"]["test"] == results["rows"]["test"]
    assert results["blocks"]["peak_rss_mb"] > 10 and results["blocks"]["per_seed"][0]["peak_rss_mb"] > 10
    code, _, err = run(capsys, "bench", "-d", str(data_folder / "tiny.csv"), "-m", "pop", "--item-block", "-1")
    assert code == 2 and "--item-block" in err
