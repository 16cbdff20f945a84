"""The conformance suite over every registered model (``recgen.testing.conformance.CASES``), exemptions listed in
``EXEMPTIONS`` with their reasons."""

import pytest

from recgen.models.registry import MODELS
from recgen.testing.conformance import CASES, EXEMPTIONS, RecommenderConformance


def test_every_registered_model_has_a_case_and_every_exemption_a_reason():
    assert {c.model for c in CASES} == set(MODELS), "add a Case for each registered model"
    assert len({c.id for c in CASES}) == len(CASES)
    clauses = {name.removeprefix("test_") for name in dir(RecommenderConformance) if name.startswith("test_")}
    for (model, clause), reason in EXEMPTIONS.items():
        assert model in MODELS and clause in clauses and len(reason) > 20


class TestRegisteredModels(RecommenderConformance):
    @pytest.fixture(scope="class", params=CASES, ids=[c.id for c in CASES])
    @classmethod
    def case(cls, request):
        return request.param
