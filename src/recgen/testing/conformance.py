"""The Recommender conformance suite, run over every registered model.

Clauses: at most k unique ids, sorted scores, seen items excluded (and included on request), candidates
respected, NotFittedError before fit, cold-start users served, bad k rejected, identical results after
save/load and with the same seed, the same metrics at any evaluation batch size, evaluation equal to what
``recommend`` returns, decode-time options that leave the fitted model unchanged, and (models trained by
recgen's trainer) a resumed run identical to an uninterrupted one.

``CASES`` names the small configurations each registered model is tested with; ``tests/models/test_conformance.py``
runs the suite over all of them and fails if a registered model has none. A model that cannot meet a clause says
so in ``EXEMPTIONS`` with its reason; the clause still runs and is expected to fail (a strict xfail), so an
exemption that is no longer needed shows up. A new model's own test file can also be three lines::

    class TestMyModel(RecommenderConformance):
        model_name = "mymodel"
        config = {"epochs": 2}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from recgen.data.split import leave_one_out
from recgen.errors import ConfigError, NotFittedError
from recgen.eval.evaluator import evaluate
from recgen.models.registry import create_model
from recgen.testing.synthetic import make_tiny_dataset, make_titled_dataset

TINY_LLM = "{tiny_llm}"  # in a case's config: the tiny test LLM's folder (``recgen.testing.tiny_llm``)


@dataclass(frozen=True)
class Case:
    """One configuration the suite runs a registered model with."""

    model: str
    config: dict[str, Any] = field(default_factory=dict)
    label: str = ""  # what distinguishes a second case of the same model
    titled: bool = False  # the model prompts with item titles: use the titled tiny dataset

    @property
    def id(self) -> str:
        return self.model + (f"-{self.label}" if self.label else "")

    @property
    def needs_llm(self) -> bool:
        return any(TINY_LLM in str(v) for v in self.config.values())


_SEQ = {"epochs": 6, "eval_every": 2, "batch_size": 16, "embedding_dim": 16, "max_seq_len": 8}
CASES: list[Case] = [
    Case("pop"),
    Case("itemknn", {"k": 10}),
    Case("ease", {"l2": 10.0}),
    Case("contentknn", titled=True),
    Case("bpr", {"epochs": 20, "batch_size": 64, "eval_every": 5, "lr": 0.01}),
    Case("sasrec", _SEQ),
    Case("hstu", _SEQ),
    # item text as features: the ID table fused with mapped text, and text-only items (no ID table)
    Case("sasrec", {**_SEQ, "item_text": "title", "text_mode": "fuse"}, "text-fuse", titled=True),
    Case("hstu", {**_SEQ, "item_text": "title", "text_mode": "only"}, "text-only", titled=True),
    Case("multvae", {"epochs": 10, "eval_every": 5, "batch_size": 16, "hidden_dim": 32, "latent_dim": 8}),
    Case("diffrec", {"epochs": 10, "eval_every": 5, "batch_size": 16, "hidden_dims": "32", "lr": 1e-3}),
    # T' > 0 makes inference stochastic: per-query seeded noise must keep every contract
    Case(
        "diffrec",
        {"epochs": 4, "eval_every": 2, "batch_size": 16, "hidden_dims": "32", "sampling_noise_steps": 3},
        "inference-noise",
    ),
    Case(
        "diffrec",
        {"epochs": 4, "eval_every": 2, "batch_size": 16, "hidden_dims": "32", "steps": 10, "inference_steps": -1},
        "steps-chosen-on-valid",
    ),
    Case(
        "ldiffrec",
        {"epochs": 10, "eval_every": 5, "batch_size": 16, "latent_dim": 16, "hidden_dims": "16", "svd_dim": 8},
    ),
    Case("dreamrec", {**_SEQ, "epochs": 4, "steps": 20}),
    Case(
        "tiger",
        {
            "tokenizer": "rqkmeans",
            "embeddings": "svd",
            "svd_dim": 4,
            "codebook_size": 4,
            "levels": 2,
            "d_model": 16,
            "ffn_dim": 32,
            "n_heads": 2,
            "epochs": 4,
            "eval_every": 2,
            "batch_size": 16,
            "beam": 8,
        },
    ),  # fmt: skip
    Case(
        "tiger",
        {
            "tokenizer": "id",
            "embeddings": "svd",
            "d_model": 16,
            "ffn_dim": 32,
            "epochs": 2,
            "eval_every": 2,
            "batch_size": 16,
            "beam": 6,
            "constrained": False,
        },
        "unconstrained",
    ),  # fmt: skip
    Case(
        "llmrank",
        {"retriever": "ease", "retriever_config": "l2=10", "llm": f"hf:{TINY_LLM}", "n_candidates": 5},
        titled=True,
    ),
    Case(
        "llmrank",
        {
            "retriever": "ease",
            "retriever_config": "l2=10",
            "llm": f"hf:{TINY_LLM}",
            "n_candidates": 4,
            "method": "listwise",
            "max_tokens": 12,
        },
        "listwise",
        titled=True,
    ),  # fmt: skip
    Case(
        "bigrec",
        {"llm": TINY_LLM, "epochs": 1, "max_train_samples": 8, "batch_size": 4, "beam": 4, "max_new_tokens": 6},
        titled=True,
    ),
]

_BEAMS_ONLY = (
    "BIGRec's trie grounding scores only the items its beams reach (beam = 4 here); every other item is not "
    "recommendable, so a full ranking of the catalogue (or of a candidate list) is shorter than asked"
)
# (model, clause) -> why the model cannot meet it; the clause runs as a strict xfail
EXEMPTIONS: dict[tuple[str, str], str] = {
    ("bigrec", "seen_items_excluded"): _BEAMS_ONLY,
    ("bigrec", "candidates"): _BEAMS_ONLY,
    ("bigrec", "cold_start"): _BEAMS_ONLY + " (a session is decoded like a user: fewer than k items come back)",
}


def resolve_case(case: Case, tiny_llm: Path | None) -> dict[str, Any]:
    """The case's config with the tiny LLM's folder filled in."""
    return {k: v.replace(TINY_LLM, str(tiny_llm)) if isinstance(v, str) else v for k, v in case.config.items()}


class RecommenderConformance:
    model_name: ClassVar[str] = ""
    config: ClassVar[dict[str, Any]] = {}
    titled: ClassVar[bool] = False

    @pytest.fixture(scope="class")
    @classmethod
    def case(cls) -> Case:
        return Case(cls.model_name, cls.config, titled=cls.titled)

    @pytest.fixture(scope="class")
    @classmethod
    def model_config(cls, case, request) -> dict[str, Any]:
        tiny = request.getfixturevalue("tiny_llm") if case.needs_llm else None
        return resolve_case(case, tiny)

    @pytest.fixture(scope="class")
    @classmethod
    def split(cls, case):
        return leave_one_out(make_titled_dataset() if case.titled else make_tiny_dataset())

    @pytest.fixture(scope="class")
    @classmethod
    def fitted(cls, case, model_config, split):
        return create_model(case.model, **model_config).fit(split.train, valid=split.valid)

    @pytest.fixture(autouse=True)
    def _exemption(self, request, case):
        clause = request.node.originalname.removeprefix("test_")
        reason = EXEMPTIONS.get((case.model, clause))
        if reason:
            request.node.add_marker(pytest.mark.xfail(reason=f"exempt: {reason}", strict=True))

    def test_not_fitted(self, case, model_config, split):
        model = create_model(case.model, **model_config)
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

    def test_same_seed_identical(self, case, model_config, split, fitted):
        again = create_model(case.model, **model_config).fit(split.train, valid=split.valid)
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

    def test_decode_options_leave_the_model_unchanged(self, fitted, split):
        """A decode-time change applies to one call only: the fitted config and the next default call are as
        before; a field that is not decode-time is refused."""
        users = list(fitted.users_.ids[:8])
        before = fitted.recommend_batch(users, 5)
        config = fitted.config
        for name in fitted.decode_fields:
            fitted.recommend_batch(users, 5, decode={name: getattr(config, name)})
        assert fitted.config == config
        for x, y in zip(before, fitted.recommend_batch(users, 5), strict=True):
            assert list(x.item_ids) == list(y.item_ids)
        with pytest.raises(ConfigError, match="decode"):
            fitted.recommend(users[0], 5, decode={"no_such_field": 1})

    def test_resume_matches_uninterrupted(self, case, model_config, split, fitted, tmp_path):
        """Models trained by recgen's trainer: a run stopped after its first epochs and resumed from its run
        folder (``configure_run(..., resume=True)``) ends where the uninterrupted run ended."""
        probe = create_model(case.model, **model_config)
        if not probe.resumable:
            with pytest.raises(ConfigError, match="not trained by recgen's trainer"):
                probe.configure_run(tmp_path / "run")
            return

        class Interrupt(Exception):
            pass

        def stop_after_first(state):
            raise Interrupt

        probe.configure_run(tmp_path / "run", on_epoch_end=stop_after_first)
        with pytest.raises(Interrupt):
            probe.fit(split.train, valid=split.valid)
        resumed = create_model(case.model, **model_config).configure_run(tmp_path / "run", resume=True)
        resumed.fit(split.train, valid=split.valid)
        assert resumed.resumed_from_epoch_ == 1
        assert [e["loss"] for e in resumed.train_log_] == [e["loss"] for e in fitted.train_log_]
        users = split.train.users.ids[:20]
        for x, y in zip(fitted.recommend_batch(users, 10), resumed.recommend_batch(users, 10), strict=True):
            assert list(x.item_ids) == list(y.item_ids)
            np.testing.assert_array_equal(x.scores, y.scores)
