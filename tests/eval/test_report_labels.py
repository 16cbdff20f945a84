"""Report helpers: protocol labels and the TALLRec study table."""

from recgen.eval.report import protocol_label, tallrec_table


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
        "zero_shot_auc": 0.5,
        "baselines": {"history_like_rate_auc": 0.6, "item_like_rate_auc": 0.61},
        "published": {"auc": {"16": 0.6724, "64": 0.6748}},
        "runs": [
            {"n_train": 16, "test_auc": 0.55, "steps": 8, "train_seconds": 10.0},
            {"n_train": 32, "test_auc": 0.56, "steps": 16, "train_seconds": 20.0},
        ],
    }
    lines = tallrec_table([r]).splitlines()
    assert "| 16 | 0.5500 | 0.5000 | 0.6000 | 0.6100 | 0.6724 | 8 | 10 |" in lines[2]
    assert "| 32 | 0.5600 |" in lines[3] and "| nan |" in lines[3]
