"""The Recommender conformance suite. A model's test file is three lines::

    class TestEASE(RecommenderConformance):
        model_name = "ease"
        config = {"l2": 10.0}

Every registered model must pass it: at most k unique ids, sorted scores, seen items excluded (and included on
request), candidates respected, NotFittedError before fit, cold-start users served, identical results after
save/load and with the same seed, the same metrics at any evaluation batch size, bad k rejected, and (models
trained by recgen's trainer) a resumed run identical to an uninterrupted one.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest

from recgen.data.split import leave_one_out
from recgen.errors import ConfigError, NotFittedError
from recgen.eval.evaluator import evaluate
from recgen.models.registry import create_model
from recgen.testing.synthetic import make_tiny_dataset


class RecommenderConformance:
    model_name: ClassVar[str] = ""
    config: ClassVar[dict[str, Any]] = {}

    @pytest.fixture(scope="class")
    @classmethod
    def split(cls):
        return leave_one_out(make_tiny_dataset())

    @pytest.fixture(scope="class")
    @classmethod
    def fitted(cls, split):
        return create_model(cls.model_name, **cls.config).fit(split.train, valid=split.valid)

    def test_not_fitted(self, split):
        model = create_model(self.model_name, **self.config)
        with pytest.raises(NotFittedError, match="fit"):
            model.recommend(split.train.users.ids[0], 5)

    def test_topk_contract(self, fitted, split):
        for user in split.train.users.ids[:10]:
            recs = fitted.recommend(user, 5)
            assert 0 < len(recs) <= 5
            assert len(set(recs.item_ids)) == len(recs.item_ids)
            assert np.all(np.diff(recs.scores) <= 0), "scores must be sorted descending"
            assert all(i in split.train.items for i in recs.item_ids)

    def test_seen_items_excluded(self, fitted):
        for user in fitted.users_.ids[:10]:
            seen = set(fitted.items_.external(fitted.train_history(fitted.users_.index(user))))
            recs = fitted.recommend(user, fitted.n_items_)
            assert not seen & set(recs.item_ids)
            assert len(recs) == fitted.n_items_ - len(seen)
            with_seen = fitted.recommend(user, fitted.n_items_, exclude_seen=False)
            assert len(with_seen) == fitted.n_items_

    def test_candidates(self, fitted):
        user = fitted.users_.ids[0]
        cands = fitted.items_.ids[::3] + ["no-such-item"]
        recs = fitted.recommend(user, 50, candidates=cands, exclude_seen=False)
        assert set(recs.item_ids) <= set(cands)
        assert len(recs) == len(cands) - 1

    def test_cold_start(self, fitted):
        recs = fitted.recommend("a-user-never-seen", 5)
        assert len(recs) == 5
        pop_order = fitted.items_.external(np.argsort(-fitted.item_counts_[1:], kind="stable")[:5] + 1)
        assert list(recs.item_ids) == list(pop_order)
        session = fitted.recommend(list(fitted.items_.ids[:3]) + ["unknown-item"], 5)
        assert len(session) == 5 and not set(session.item_ids) & set(fitted.items_.ids[:3])

    def test_bad_k(self, fitted):
        for k in (0, -1, 2.5, "3"):
            with pytest.raises(ConfigError, match="k must be"):
                fitted.recommend(fitted.users_.ids[0], k)

    def test_save_load_identical(self, fitted, tmp_path):
        path = fitted.save(tmp_path / "model")
        loaded = type(fitted).load(path)
        users = fitted.users_.ids[:20]
        a = fitted.recommend_batch(users, 10)
        b = loaded.recommend_batch(users, 10)
        for x, y in zip(a, b, strict=True):
            assert list(x.item_ids) == list(y.item_ids)
            np.testing.assert_allclose(x.scores, y.scores, rtol=1e-6, atol=1e-7)
        assert not list(tmp_path.glob("*.tmp-*")), "temporary folder left behind"

    def test_same_seed_identical(self, split, fitted):
        again = create_model(self.model_name, **self.config).fit(split.train, valid=split.valid)
        users = split.train.users.ids[:20]
        for x, y in zip(fitted.recommend_batch(users, 10), again.recommend_batch(users, 10), strict=True):
            assert list(x.item_ids) == list(y.item_ids)
            np.testing.assert_array_equal(x.scores, y.scores)

    def test_metrics_batch_size_invariant(self, fitted, split):
        ref = evaluate(fitted, split.test, batch_size=split.test.n_users).metrics
        for bs in (1, 7, 16):
            assert evaluate(fitted, split.test, batch_size=bs).metrics == ref

    def test_evaluation_matches_recommend(self, fitted, split):
        """Validation metrics equal the hits of the lists the public recommend() returns (one code path):
        under leave-one-out, a user's validation history is exactly its training history."""
        res = evaluate(fitted, split.valid, ks=(5,))
        users = fitted.users_.external(split.valid.user_ids)
        recs = fitted.recommend_batch(list(users), 5)
        targets = fitted.items_.external(split.valid.target_items)
        hits = [float(t in set(r.item_ids)) for t, r in zip(targets, recs, strict=True)]
        assert res.metrics["recall@5"] == pytest.approx(np.mean(hits), abs=1e-12)

    def test_resume_matches_uninterrupted(self, split, fitted, tmp_path):
        """Models trained by recgen's trainer: a run stopped after its first epochs and resumed from its run
        folder (``configure_run(..., resume=True)``) ends where the uninterrupted run ended."""
        probe = create_model(self.model_name, **self.config)
        if not hasattr(probe, "configure_run"):
            pytest.skip(f"{self.model_name} is not trained by recgen's trainer (nothing to resume)")

        class Interrupt(Exception):
            pass

        def stop_after_first(state):
            raise Interrupt

        probe.configure_run(tmp_path / "run", on_epoch_end=stop_after_first)
        with pytest.raises(Interrupt):
            probe.fit(split.train, valid=split.valid)
        resumed = create_model(self.model_name, **self.config).configure_run(tmp_path / "run", resume=True)
        resumed.fit(split.train, valid=split.valid)
        assert resumed.resumed_from_epoch_ == 1
        assert [e["loss"] for e in resumed.train_log_] == [e["loss"] for e in fitted.train_log_]
        users = split.train.users.ids[:20]
        for x, y in zip(fitted.recommend_batch(users, 10), resumed.recommend_batch(users, 10), strict=True):
            assert list(x.item_ids) == list(y.item_ids)
            np.testing.assert_array_equal(x.scores, y.scores)
