"""Like / dislike evaluation (recgen.data.labels, recgen.eval.ctr, recgen ctr): hand-computed UAUC, the labelled
time split, learnability on a planted pattern that counting cannot see, and bad input."""

import json

import numpy as np
import pytest

from recgen.cli.main import main
from recgen.data.labels import labelled_split
from recgen.data.loaders import load_dataset
from recgen.errors import DataError
from recgen.eval.ctr import counting_baselines, evaluate_scores, pair_scores
from recgen.eval.metrics import uauc
from recgen.models.registry import create_model


def planted_csv(path, n_users=40, n_items=20, seed=0):
    """Half the users like items 1-10 and hate 11-20, the other half the reverse; every item is liked by half the
    users and every user likes half the items, so like-rates carry no signal and co-occurrence all of it."""
    rng = np.random.default_rng(seed)
    rows = ["user,item,timestamp,rating"]
    for u in range(1, n_users + 1):
        for i in rng.permutation(np.arange(1, n_items + 1)):
            likes = (i <= n_items // 2) == (u % 2 == 0)
            rows.append(f"u{u},i{i},{int(rng.integers(0, 10**6))},{5 if likes else 1}")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_uauc_by_hand():
    users = np.array([1, 1, 1, 2, 2, 3])
    labels = np.array([1.0, 0.0, 1.0, 0.0, 1.0, 1.0])
    scores = np.array([0.9, 0.1, 0.5, 0.3, 0.2, 0.7])
    # user 1: both likes above the dislike -> 1.0; user 2: the like below the dislike -> 0.0; user 3: one class
    assert uauc(users, labels, scores) == (0.5, 2)
    with pytest.raises(ValueError, match="both a like and a dislike"):
        uauc(np.array([1, 1]), np.array([1.0, 1.0]), np.array([0.1, 0.2]))


def test_labelled_split_keeps_labels_cuts_by_time_and_fits_on_likes(tmp_path):
    ds = load_dataset(planted_csv(tmp_path / "p.csv"))
    s = labelled_split(ds, like_threshold=4)
    assert len(s.train) + len(s.valid) + len(s.test) == ds.n_interactions
    assert s.train.timestamps.max() <= s.valid.timestamps.min() <= s.valid.timestamps.max() <= s.test.timestamps.min()
    assert 0 < s.test.labels.mean() < 1  # dislikes are kept in test
    # the ranking models see only liked training interactions
    fit = s.fit.train
    liked = {(u, i) for u, i, r in zip(ds.user_ids, ds.item_ids, ds.ratings, strict=True) if r >= 4}
    assert all((u, i) in liked for u, i in zip(fit.user_ids, fit.item_ids, strict=True))
    assert fit.n_interactions == int(s.train.labels.sum())
    assert labelled_split(ds, fit_on="all").fit.train.n_interactions == len(s.train)


def test_collaborative_signal_beats_counting_on_a_planted_pattern(tmp_path):
    ds = load_dataset(planted_csv(tmp_path / "p.csv"))
    s = labelled_split(ds, like_threshold=4, valid_frac=0.15, test_frac=0.25)
    rows = {r["model"]: r for r in counting_baselines(s, ds.users.size, ds.items.size)}
    assert rows["user like-rate"]["uauc"] == pytest.approx(0.5)  # constant per user
    assert abs(rows["item like-rate"]["auc"] - 0.5) < 0.15
    model = create_model("ease", l2=1.0).fit(s.fit.train)
    ease = evaluate_scores(s, pair_scores(model, s.valid), pair_scores(model, s.test))
    assert ease["auc"] > 0.9 and ease["uauc"] > 0.9
    assert ease["log_loss"] < rows["user like-rate"]["log_loss"]
    # the pair scores are the model's own scores from the training history
    u, i = int(s.test.users[0]), int(s.test.items[0])
    full = model.score(np.array([u]), [model.train_history(u)]).numpy()[0]
    assert pair_scores(model, s.test)[0] == pytest.approx(full[i])


def test_ctr_cli_writes_results_and_refuses_data_without_labels(capsys, tmp_path):
    csv = planted_csv(tmp_path / "p.csv")
    out = tmp_path / "out"
    code = main(["ctr", str(csv), "--models", "ease,pop", "--out", str(out)])
    _, err = capsys.readouterr()
    assert code == 0, err
    (path,) = out.glob("*.json")
    r = json.loads(path.read_text())
    assert [row["model"] for row in r["rows"]][-2:] == ["ease", "pop"]
    assert r["protocol"]["fit_on"] == "liked" and r["git_commit"] is not None
    (tmp_path / "n.csv").write_text("user,item,timestamp\na,x,1\na,y,2\nb,x,3\n")
    code = main(["ctr", str(tmp_path / "n.csv"), "--models", "ease", "--out", str(out)])
    _, err = capsys.readouterr()
    assert code == 2 and "no ratings or labels" in err and len(err.strip().splitlines()) == 1
    code = main(["ctr", str(csv), "--like-threshold", "9", "--out", str(out)])
    _, err = capsys.readouterr()
    assert code == 2 and "every rating" in err
    with pytest.raises(DataError, match="no ratings"):
        labelled_split(load_dataset(tmp_path / "n.csv"))
