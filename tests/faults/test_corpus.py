"""The fault corpus: bad input, corrupted, truncated and mismatched files, config mistakes and failing backends,
each one a case that must end in exit code 2 with one ``error:`` line naming the problem, with no file lost or
half-written (``run_fault``)."""

import json
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from recgen.io import seal_json

from .conftest import SASREC, run_fault


def flip(path: Path, at: float = 0.5) -> None:
    """Flip every bit of one byte at the given fraction of the file."""
    data = bytearray(path.read_bytes())
    i = min(int(len(data) * at), len(data) - 1)
    data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path: Path, keep: float = 0.5) -> None:
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * keep)])


def edit_json(path: Path, change: Callable[[dict], None], *, reseal: bool = False) -> None:
    obj = json.loads(path.read_text())
    change(obj)
    path.write_text(json.dumps(seal_json(obj) if reseal else obj))


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def results_file(ws: Path) -> Path:
    return next((ws / "results").glob("*.json"))


def recommend(ws: Path, folder: str = "ease") -> list[str]:
    return ["recommend", "--model-dir", str(ws / folder), "-u", "u0_0"]


def bench(ws: Path, *extra: str) -> list[str]:
    return ["bench", "-d", str(ws / "tiny"), "-m", "ease", "--set", "l2=10", "--out", str(ws / "results"), *extra]


def train_sasrec(ws: Path, *extra: str) -> list[str]:
    return ["train", "-d", str(ws / "tiny"), "-m", "sasrec", *SASREC, "-o", str(ws / "m2"), "--split", *extra]


# (id, setup: workspace -> argv (the fault applied), expected fragment of the error line)
CASES: list[tuple[str, Callable[[Path], list[str]], str]] = [
    # ---------------------------------------------------------------------------------- input files
    ("csv-missing", lambda ws: ["data", "info", str(ws / "nope.csv")], "not found"),
    ("csv-empty", lambda ws: ["data", "info", str(write(ws / "e.csv", ""))], "empty"),
    ("csv-header-only", lambda ws: ["data", "info", str(write(ws / "h.csv", "user,item\n"))], "no rows"),
    ("csv-no-user-column", lambda ws: ["data", "info", str(write(ws / "c.csv", "a,b\n1,2\n"))], "no user column"),
    ("csv-wrong-column-map", lambda ws: ["data", "info", str(ws / "tiny.csv"), "--columns", "user=who"], "'who'"),
    ("csv-bad-column-role", lambda ws: ["data", "info", str(ws / "tiny.csv"), "--columns", "owner=user"], "keys"),
    ("csv-column-map-syntax", lambda ws: ["data", "info", str(ws / "tiny.csv"), "--columns", "user"], "role=column"),
    ("csv-wrong-separator", lambda ws: ["data", "info", str(ws / "tiny.csv"), "--sep", ";"], "no user column"),
    ("csv-long-separator", lambda ws: ["data", "info", str(ws / "tiny.csv"), "--sep", "::"], "one character"),
    (
        "csv-latin1-as-utf8",
        lambda ws: ["data", "info", str((ws / "l.csv", (ws / "l.csv").write_bytes(b"user,item\n1,caf\xe9\n"))[0])],
        "--encoding latin-1",
    ),
    ("csv-unknown-encoding", lambda ws: ["data", "info", str(ws / "tiny.csv"), "--encoding", "klingon"], "encoding"),
    ("csv-folder-as-file", lambda ws: ["data", "info", str(ws / "tiny"), "--format", "csv"], "is a folder"),
    (
        "csv-missing-ids",
        lambda ws: ["data", "info", str(write(ws / "m.csv", "user,item\n1,2\n,3\n"))],
        "missing values",
    ),
    (
        "csv-text-timestamp",
        lambda ws: ["data", "info", str(write(ws / "t.csv", "user,item,timestamp\n1,2,soon\n"))],
        "must be numeric",
    ),
    (
        "csv-all-labels-zero",
        lambda ws: ["data", "info", str(write(ws / "z.csv", "user,item,clicked\n1,2,0\n1,3,0\n"))],
        "no row has a positive label",
    ),
    (
        "csv-min-rating-without-ratings",
        lambda ws: ["data", "info", str(write(ws / "r.csv", "user,item\n1,2\n")), "--min-rating", "4"],
        "has no ratings",
    ),
    ("csv-min-rating-too-high", lambda ws: ["data", "info", str(ws / "tiny.csv"), "--min-rating", "9"], "no rating"),
    (
        "pickle-refused",
        lambda ws: ["data", "info", str((ws / "d.pkl", (ws / "d.pkl").write_bytes(pickle.dumps([1, 2])))[0])],
        "does not load pickles",
    ),
    (
        "pickle-as-csv-refused",
        lambda ws: ["data", "info", str((ws / "d.csv", (ws / "d.csv").write_bytes(pickle.dumps({"a": 1})))[0])],
        "does not load pickles",
    ),
    (
        "zip-refused",
        lambda ws: ["data", "info", str(_zip(ws)), "--format", "movielens"],
        "unpack it first",
    ),
    (
        "movielens-other-file",
        lambda ws: ["data", "info", str(write(ws / "my.data", "1\t2\t3\t4\n")), "--format", "movielens"],
        "not a MovieLens ratings file",
    ),
    ("unknown-format", lambda ws: ["data", "info", str(ws / "tiny.csv"), "--format", "excel"], "unknown format"),
    ("unknown-dataset", lambda ws: ["data", "info", "nosuchdataset"], "unknown dataset"),
    (
        "format-option-on-named-dataset",
        lambda ws: ["data", "info", "ml-100k", "--sep", ",", "--data-dir", str(ws)],
        "apply to a path, not a name",
    ),
    (
        "sequences-bad-line",
        lambda ws: ["data", "info", str(write(ws / "s.txt", "u1 i1 i2\nu2\n")), "--format", "sequences"],
        "line 2",
    ),
    (
        "amazon-raw-not-json",
        lambda ws: ["data", "info", str(write(ws / "r.json", "{oops\n")), "--format", "amazon-raw"],
        "line 1",
    ),
    (
        "no-evaluable-users",
        lambda ws: [
            "bench",
            "-d",
            str(write(ws / "few.csv", "user,item\n1,2\n1,3\n2,3\n")),
            "-m",
            "pop",
            "--out",
            str(ws / "results"),
        ],  # fmt: skip
        "at least 3 interactions",
    ),
    (
        "recbole-benchmark-file-as-interactions",
        lambda ws: [
            "data",
            "info",
            str(write(ws / "x.test.inter", "user_id:token\titem_id_list:token_seq\titem_id:token\nu1\ti1 i2\ti3\n")),
        ],  # fmt: skip
        "RecBole benchmark split file",
    ),
    (
        "column-of-id-lists",
        lambda ws: [
            "data",
            "info",
            str(write(ws / "h.tsv", "user\thist\nu1\ta b c\nu2\tb c\n")),
            "--columns",
            "user=user,item=hist",
        ],  # fmt: skip
        "holds lists of ids",
    ),
    (
        "given-split-incomplete",
        lambda ws: [
            *bench(ws, "--protocol", "given")[:1],
            "-d",
            str(_train_only(ws)),
            "-m",
            "pop",
            "--protocol",
            "given",
        ],
        "one train, one valid and one test",
    ),  # fmt: skip
    (
        "json-sequences-not-lists",
        lambda ws: ["data", "info", str(write(ws / "s.json", '{"u1": "abc"}')), "--format", "json-sequences"],
        "must map to a list",
    ),  # fmt: skip
    (
        "json-sequences-truncated",
        lambda ws: ["data", "info", str(write(ws / "t.json", '{"u1": ["a", "b"')), "--format", "json-sequences"],
        "not JSON",
    ),  # fmt: skip
    (
        "codes-file-missing-items",
        lambda ws: [
            "bench",
            "-d",
            str(ws / "tiny"),
            "-m",
            "tiger",
            "--set",
            "tokenizer=file",
            "--set",
            f"codes_file={write(ws / 'c.json', json.dumps({'i0_0': [1, 2]}))}",
            "--out",
            str(ws / "results"),
        ],  # fmt: skip
        "has no codes for",
    ),
    (
        "codes-file-without-tokenizer",
        lambda ws: ["bench", "-d", str(ws / "tiny"), "-m", "tiger", "--set", "codes_file=x.json"],
        "tokenizer=file",
    ),  # fmt: skip
    ("memory-estimate-over-limit", lambda ws: [*_env("RECGEN_MEMORY_LIMIT", "1K"), *bench(ws)], "RECGEN_MEMORY_LIMIT"),
    # ------------------------------------------------------------------------------ converted datasets
    (
        "dataset-items-flipped",
        lambda ws: [*_flip_then(ws / "tiny" / "items_vocab.parquet"), "data", "info", str(ws / "tiny")],
        "SHA-256",
    ),  # fmt: skip
    (
        "dataset-interactions-truncated",
        lambda ws: [*_truncate_then(ws / "tiny" / "interactions.parquet"), "data", "info", str(ws / "tiny")],
        "interactions.parquet has",
    ),
    (
        "dataset-schema-truncated",
        lambda ws: [*_truncate_then(ws / "tiny" / "schema.json"), "data", "info", str(ws / "tiny")],
        "schema.json",
    ),
    (
        "dataset-member-missing",
        lambda ws: [*_delete_then(ws / "tiny" / "users_vocab.parquet"), "data", "info", str(ws / "tiny")],
        "is missing",
    ),
    (
        "dataset-manifest-corrupt",
        lambda ws: [*_write_then(ws / "tiny" / "manifest.json", "{"), "data", "info", str(ws / "tiny")],
        "not a readable manifest",
    ),
    (
        "dataset-old-folder-flipped-parquet",  # a folder written before manifests: the Parquet reader catches it
        lambda ws: [
            *_delete_then(ws / "tiny" / "manifest.json"),
            *_truncate_then(ws / "tiny" / "items_vocab.parquet"),
            "data",
            "info",
            str(ws / "tiny"),
        ],  # fmt: skip
        "not a readable Parquet file",
    ),
    # ----------------------------------------------------------------------------------- model folders
    (
        "model-weights-flipped",
        lambda ws: [*_flip_then(ws / "ease" / "weights.safetensors", 0.9), *recommend(ws)],
        "SHA-256",
    ),  # fmt: skip
    (
        "model-weights-truncated",
        lambda ws: [*_truncate_then(ws / "ease" / "weights.safetensors"), *recommend(ws)],
        "weights.safetensors has",
    ),
    (
        "model-weights-from-another-model",
        lambda ws: [
            *_copy_then(ws / "pop" / "weights.safetensors", ws / "ease" / "weights.safetensors"),
            *_delete_then(ws / "ease" / "manifest.json"),
            *recommend(ws),
        ],  # fmt: skip
        "do not fit the ease",
    ),
    (
        "model-vocabulary-from-another-dataset",
        lambda ws: [*_vocab_from_other(ws), *recommend(ws)],
        "items_vocab.parquet holds",
    ),
    (
        "model-config-names-another-model",
        lambda ws: [
            *_edit_then(ws / "ease" / "config.json", lambda c: c.update(model="sasrec")),
            *_delete_then(ws / "ease" / "manifest.json"),
            *recommend(ws),
        ],  # fmt: skip
        "do not fit the sasrec",
    ),
    (
        "model-config-names-unknown-model",
        lambda ws: [
            *_edit_then(ws / "ease" / "config.json", lambda c: c.update(model="gpt9")),
            *_delete_then(ws / "ease" / "manifest.json"),
            *recommend(ws),
        ],  # fmt: skip
        "names no model this recgen knows",
    ),
    (
        "model-config-edited",
        lambda ws: [*_edit_then(ws / "ease" / "config.json", lambda c: c["config"].update(l2=99.0)), *recommend(ws)],
        "the model folder is corrupt or was modified",
    ),
    (
        "model-config-invalid-json",
        lambda ws: [
            *_write_then(ws / "ease" / "config.json", "{"),
            *_delete_then(ws / "ease" / "manifest.json"),
            *recommend(ws),
        ],  # fmt: skip
        "not valid JSON",
    ),
    (
        "model-config-bad-value",
        lambda ws: [
            *_edit_then(ws / "ease" / "config.json", lambda c: c["config"].update(l2="lots")),
            *_delete_then(ws / "ease" / "manifest.json"),
            *recommend(ws),
        ],  # fmt: skip
        "does not describe a ease",
    ),
    (
        "model-weights-missing",
        lambda ws: [*_delete_then(ws / "ease" / "weights.safetensors"), *recommend(ws)],
        "is missing",
    ),  # fmt: skip
    (
        "model-not-a-model-folder",
        lambda ws: ["recommend", "--model-dir", str(ws / "tiny"), "-u", "1"],
        "not a recgen model folder",
    ),  # fmt: skip
    ("model-folder-missing", lambda ws: ["recommend", "--model-dir", str(ws / "nope"), "-u", "1"], "not found"),
    ("recommend-bad-k", lambda ws: [*recommend(ws), "-k", "0"], "k must be an integer >= 1"),
    ("recommend-no-query", lambda ws: ["recommend", "--model-dir", str(ws / "ease")], "give --user"),
    (
        "sasrec-weights-shape-mismatch",
        lambda ws: [
            *_edit_then(ws / "sasrec" / "config.json", lambda c: c["config"].update(embedding_dim=16)),
            *_delete_then(ws / "sasrec" / "manifest.json"),
            *recommend(ws, "sasrec"),
        ],  # fmt: skip
        "do not fit the sasrec",
    ),
    # ------------------------------------------------------------------------------ training checkpoints
    ("checkpoint-truncated", lambda ws: [*_truncate_then(ws / "run" / "last.pt"), *_resume(ws)], "last.pt"),
    ("checkpoint-flipped", lambda ws: [*_flip_then(ws / "run" / "last.pt", 0.6), *_resume(ws)], "SHA-256"),
    (
        "checkpoint-other-config",
        lambda ws: [*train_sasrec(ws, "--run-dir", str(ws / "run"), "--resume", "--set", "lr=0.5")],
        "different config",
    ),
    (
        "resume-empty-run-folder",
        lambda ws: [*train_sasrec(ws, "--run-dir", str(ws / "empty"), "--resume")],
        "holds no interrupted run",
    ),  # fmt: skip
    ("resume-without-run-dir", lambda ws: [*train_sasrec(ws, "--resume")], "--resume needs --run-dir"),
    ("run-dir-for-untrained-model", lambda ws: [*bench(ws, "--run-dir", str(ws / "r"))], "trained by recgen's"),
    (
        "training-diverges",
        lambda ws: [
            "bench",
            "-d",
            str(ws / "tiny"),
            "-m",
            "bpr",
            "--set",
            "lr=1e6",
            "--set",
            "epochs=3",
            "--set",
            "batch_size=32",
            "--out",
            str(ws / "results"),
        ],  # fmt: skip
        "training diverged",
    ),
    # ----------------------------------------------------------------------------------------- results
    (
        "results-truncated",
        lambda ws: [
            *_truncate_then(results_file(ws)),
            "report",
            "--results",
            str(ws / "results"),
            "--out",
            str(ws / "R.md"),
            "--readme",
            "",
        ],
        "not a valid results file",
    ),  # fmt: skip
    (
        "results-figure-edited",
        lambda ws: [
            *_edit_then(results_file(ws), lambda r: r["test"].update({"ndcg@10": 0.99})),
            "report",
            "--results",
            str(ws / "results"),
            "--out",
            str(ws / "R.md"),
            "--readme",
            "",
        ],  # fmt: skip
        "does not match the SHA-256",
    ),
    ("rerun-would-drop-seeds", lambda ws: [*_add_seed(ws), *bench(ws)], "pass --resume"),
    ("resume-and-force", lambda ws: [*bench(ws, "--resume", "--force")], "pass one of the two"),
    (
        "resume-other-data",
        lambda ws: [
            *_edit_then(results_file(ws), lambda r: r.update(dataset_fingerprint="0" * 16), reseal=True),
            *bench(ws, "--resume"),
        ],  # fmt: skip
        "different dataset fingerprint",
    ),
    (
        "merge-different-runs",
        lambda ws: ["merge-results", str(results_file(ws)), str(_other_run(ws)), "--out", str(ws / "merged")],
        "not the same run",
    ),
    (
        "merge-a-folder",
        lambda ws: ["merge-results", str(ws / "results"), "--out", str(ws / "m")],
        "not a results file",
    ),  # fmt: skip
    ("report-missing-folder", lambda ws: ["report", "--results", str(ws / "none")], "results folder not found"),
    # ------------------------------------------------------------------------------------------ configs
    ("config-unknown-field", lambda ws: bench(ws, "--set", "bogus=1"), "unknown config field"),
    ("config-wrong-type", lambda ws: bench(ws, "--set", "l2=abc"), "l2 must be float"),
    ("config-bool-for-number", lambda ws: bench(ws, "--set", "l2=True"), "l2 must be float"),
    (
        "config-negative-epochs",
        lambda ws: ["bench", "-d", str(ws / "tiny"), "-m", "sasrec", "--set", "epochs=-1"],
        "epochs must be >= 1",
    ),  # fmt: skip
    ("unknown-model", lambda ws: ["bench", "-d", str(ws / "tiny"), "-m", "nosuchmodel"], "unknown model"),
    ("unknown-protocol", lambda ws: bench(ws, "--protocol", "weird"), "unknown split protocol"),
    ("zero-seeds", lambda ws: bench(ws, "--seeds", "0"), "--seeds must be >= 1"),
    ("only-seed-out-of-range", lambda ws: bench(ws, "--seeds", "2", "--only-seed", "5"), "--only-seed must name"),
    ("fractions-with-leave-one-out", lambda ws: bench(ws, "--valid-frac", "0.1"), "not leave-one-out"),
    ("decode-variant-not-decode-field", lambda ws: bench(ws, "--decode-variant", "l2=5"), "reads when recommending"),
    ("negative-sampled", lambda ws: bench(ws, "--sampled", "-1"), "--sampled must be >= 0"),
    # ------------------------------------------------------------------------------------- LLM backends
    ("llm-unknown-backend", lambda ws: ["llm", "generate", "hi", "--model", "gpt:4"], "backend"),
    ("llm-missing-gguf", lambda ws: ["llm", "generate", "hi", "--model", f"llamacpp:{ws}/no.gguf"], "does not exist"),
    (
        "llm-server-unreachable",
        lambda ws: ["llm", "generate", "hi", "--model", "openai:http://127.0.0.1:9", "--no-cache"],
        "127.0.0.1:9",
    ),
    ("llm-bad-json-schema", lambda ws: ["llm", "generate", "hi", "--json-schema", "{not json"], "not valid JSON"),
    (
        "llm-corrupt-cache-file",
        lambda ws: [
            "llm",
            "generate",
            "hi",
            "--model",
            "openai:http://127.0.0.1:9",
            "--cache",
            str(write(ws / "c.sqlite", "not a database" * 100)),
        ],  # fmt: skip
        "cannot open the LLM cache",
    ),
]


def _train_only(ws: Path) -> Path:
    (ws / "split").mkdir()
    write(ws / "split" / "train.csv", "user,item\n1,2\n")
    return ws / "split"


_ENV: dict[str, str] = {}


def _env(name: str, value: str) -> list[str]:
    _ENV[name] = value
    return []


def _then(action: Callable[[], object]) -> list[str]:
    action()
    return []


def _flip_then(path: Path, at: float = 0.5) -> list[str]:
    return _then(lambda: flip(path, at))


def _truncate_then(path: Path) -> list[str]:
    return _then(lambda: truncate(path))


def _delete_then(path: Path) -> list[str]:
    return _then(path.unlink)


def _write_then(path: Path, text: str) -> list[str]:
    return _then(lambda: path.write_text(text))


def _edit_then(path: Path, change: Callable[[dict], None], *, reseal: bool = False) -> list[str]:
    return _then(lambda: edit_json(path, change, reseal=reseal))


def _copy_then(src: Path, dst: Path) -> list[str]:
    return _then(lambda: dst.write_bytes(src.read_bytes()))


def _zip(ws: Path) -> Path:
    with zipfile.ZipFile(ws / "d.zip", "w") as zf:
        zf.writestr("u.data", "1\t2\t3\t4\n")
    return ws / "d.zip"


def _vocab_from_other(ws: Path) -> list[str]:
    """A model folder whose item vocabulary comes from other data (1,682-style: more ids than the model has)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": [f"x{i}" for i in range(50)]}), ws / "ease" / "items_vocab.parquet")
    (ws / "ease" / "manifest.json").unlink()
    return []


def _resume(ws: Path) -> list[str]:
    return train_sasrec(ws, "--run-dir", str(ws / "run"), "--resume")


def _add_seed(ws: Path) -> list[str]:
    """The results file holds seeds 0 and 1 (as a 2-seed run leaves it); a 1-seed re-run would drop seed 1."""
    path = results_file(ws)
    r = json.loads(path.read_text())
    r["per_seed"].append({**r["per_seed"][0], "seed": 1})
    path.write_text(json.dumps(seal_json(r)))
    return []


def _other_run(ws: Path) -> Path:
    r = json.loads(results_file(ws).read_text())
    r["config"]["l2"] = 99.0
    other = ws / "other.json"
    other.write_text(json.dumps(seal_json(r)))
    return other


@pytest.mark.parametrize("setup,match", [(s, m) for _, s, m in CASES], ids=[i for i, _, _ in CASES])
def test_fault(capsys, ws, setup, match, monkeypatch):
    _ENV.clear()
    argv = setup(ws)
    for name, value in _ENV.items():
        monkeypatch.setenv(name, value)
    run_fault(capsys, argv, ws, match)


def test_corpus_size():
    assert len(CASES) >= 60
