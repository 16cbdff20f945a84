"""The task level: the conversational recommender never shows what the catalogue lacks, filters hold, and
explanations cite only the user's training history and are faithful to the model."""

import json

import numpy as np
import pytest

from recgen.cli.main import main
from recgen.data.loaders import load_dataset
from recgen.data.split import leave_one_out
from recgen.llm.base import Generation
from recgen.models.registry import create_model
from recgen.tasks.catalog import Catalog
from recgen.tasks.chat import ChatSession
from recgen.tasks.explain import Explainer, occlusion
from recgen.tasks.personalize import invented_values, personalise


@pytest.fixture(scope="module")
def ml100k_ease(real_data_dir):
    ds = load_dataset("ml-100k", data_dir=real_data_dir)
    split = leave_one_out(ds)
    return split, create_model("ease").fit(split.train)


class PlantedLLM:
    """Stands in for an LLM whose generations are planted (a bad one must be caught, not shown)."""

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.prompts = []

    def chat(self, prompt, **kw):
        self.prompts.append(prompt)
        return Generation(text=self.replies.pop(0) if self.replies else "{}")


def test_catalog_reads_constraints_and_titles(ml100k_ease):
    _, model = ml100k_ease
    cat = Catalog.from_model(model)
    c = cat.constraints_in("No horror please, a comedy from the 80s, nothing with war")
    assert c.want == {"genre": {"comedy"}} and c.avoid == {"genre": {"horror", "war"}} and c.year == (1980, 1989)
    assert cat.constraints_in("something around 1996").year == (1994, 1998)
    assert cat.constraints_in("a thriller, not a Western").describe() == "genre: thriller, no western"
    assert cat.constraints_in("a cooking show").empty()  # no such genre: nothing is made up
    assert cat.titles[cat.lookup("star wars")[0][0]] == "Star Wars"
    assert cat.titles[cat.lookup("apolo 13")[0][0]] == "Apollo 13"  # a typo still resolves
    assert cat.name(cat.dense("1")) == "Toy Story" and cat.name(cat.lookup("Birdcage")[0][0]) == "The Birdcage"
    birdcage, star_wars = cat.lookup("Birdcage")[0][0], cat.lookup("star wars")[0][0]
    assert set(cat.mentioned("we watched the birdcage and star wars")) == {birdcage, star_wars}
    assert cat.mentioned("a bird in a cage, stars and wars") == []


def test_chat_filters_exclude_what_they_should(ml100k_ease):
    _, model = ml100k_ease
    cat = Catalog.from_model(model)
    s = ChatSession(model, user="5", max_questions=0)
    shown = []
    for text in ["a comedy from the 80s", "no romance", "more please"]:
        r = s.respond(text)
        assert r.action == "recommend" and len(r.items) == 5 and not r.relaxed
        shown += [i["item_id"] for i in r.items]
        for i in r.items:
            d = cat.dense(i["item_id"])
            assert cat.holds(d, "genre", "comedy") and 1980 <= cat.year[d] <= 1989
            if text != "a comedy from the 80s":
                assert not cat.holds(d, "genre", "romance")
    assert len(set(shown)) == 15  # nothing is shown twice
    history = set(map(str, model.items_.external(model.train_history(int(model.users_.index("5"))))))
    assert not set(shown) & history  # nor what the user already has
    # an impossible wish relaxes the filter, and says so
    r = ChatSession(model, user="5", max_questions=0).respond("a documentary western musical from 1920")
    assert r.relaxed and "closest" in r.text and len(r.items) == 5


def test_chat_asks_then_answers_from_the_catalogue(ml100k_ease):
    _, model = ml100k_ease
    s = ChatSession(model, user="5")
    r = s.respond("Hi! Can you recommend me something?")
    assert r.action == "ask" and r.attribute in ("genre", "year")
    r = s.respond("tell me about Star Wars")
    assert r.action == "answer" and "1977" in r.text and "Sci-Fi" in r.text


def test_a_planted_bad_llm_generation_is_never_shown(ml100k_ease):
    _, model = ml100k_ease
    cat = Catalog.from_model(model)
    bad = [
        '{"lead": "You will love \\"The Matrix Reloaded\\" too!"}',  # not in the catalogue
        '{"lead": "Also try Pulp Fiction, a classic."}',  # in the catalogue but not among the items shown
        '{"lead": "Here are Comedy gems from ',  # malformed JSON
    ]
    for lead in bad:
        llm = PlantedLLM('{"action": "recommend", "attribute": "genre"}', lead)
        s = ChatSession(model, user="5", llm=llm)
        r = s.respond("a comedy please")
        assert r.action == "recommend" and r.withheld == 1
        assert "Matrix" not in r.text and "Pulp" not in r.text and r.text.startswith("Here is what I found")
        assert all(i["item_id"] in cat.index for i in r.items)
    good = PlantedLLM('{"action": "recommend", "attribute": "genre"}', '{"lead": "Some light comedies for tonight:"}')
    r = ChatSession(model, user="5", llm=good).respond("a comedy please")
    assert r.withheld == 0 and r.text.startswith("Some light comedies")
    # a malformed action falls back to the rules; an action outside the schema too
    r = ChatSession(model, user="5", llm=PlantedLLM("not json", "{}")).respond("a comedy please")
    assert r.action in ("ask", "recommend") and r.withheld >= 1


def test_explanations_cite_only_the_users_training_history(ml100k_ease):
    split, model = ml100k_ease
    ex = Explainer(model)
    cat = ex.catalog
    users = [str(u) for u in split.train.users.external(np.arange(1, 41))]
    for user, rec in zip(users, model.recommend_batch(users, 1), strict=True):
        e = ex.explain(user, str(rec.item_ids[0]))
        u = int(model.users_.index(user))
        history = set(map(str, model.items_.external(model.train_history(u))))
        assert e.cited and {c["item_id"] for c in e.cited} <= history
        d = cat.dense(e.item)
        for attr, values in e.shared.items():
            for v in values:
                if attr != "decade":
                    assert cat.holds(d, attr, v)
                    assert any(cat.holds(cat.dense(c["item_id"]), attr, v) for c in e.cited)
        contributions = [c["contribution"] for c in e.cited]
        assert contributions == sorted(contributions, reverse=True) and contributions[0] > 0
    with pytest.raises(Exception, match="not in the catalogue"):
        ex.explain(users[0], "no-such-item")


def test_ease_occlusion_equals_its_weights_and_removal_lowers_the_score(ml100k_ease):
    """EASE scores are linear in the history: removing item j lowers item i's score by exactly B[j, i]."""
    _, model = ml100k_ease
    u = int(model.users_.index("7"))
    hist = model.train_history(u)
    item = int(model.items_.index(str(model.recommend("7", 1).item_ids[0])))
    c = occlusion(model, u, hist, item)
    weights = np.asarray(model.weights_)[hist, item]
    assert np.allclose(c, weights, atol=1e-5)
    e = Explainer(model).explain("7", str(model.items_.external(np.asarray([item]))[0]))
    cited = [model.items_.index(x["item_id"]) for x in e.cited]
    full = float(model.score(np.asarray([u]), [hist])[0, item])
    without = float(model.score(np.asarray([u]), [hist[~np.isin(hist, cited)]])[0, item])
    assert full - without == pytest.approx(sum(c[list(hist).index(x)] for x in cited), abs=1e-4)


def test_explanation_llm_text_is_checked(ml100k_ease):
    _, model = ml100k_ease
    item = str(model.recommend("5", 1).item_ids[0])
    wrong = Explainer(model, llm=PlantedLLM('{"why": "A horror western like Pulp Fiction."}')).explain("5", item)
    assert wrong.withheld and wrong.source == "template" and "Pulp" not in wrong.text
    base = Explainer(model).explain("5", item)
    ok_text = f"You liked {base.cited[0]['title']}, so this one fits."
    fine = Explainer(model, llm=PlantedLLM(json.dumps({"why": ok_text}))).explain("5", item)
    assert not fine.withheld and fine.source == "llm" and fine.text == ok_text


def test_personalised_text_invented_attributes_are_caught(ml100k_ease):
    _, model = ml100k_ease
    cat = Catalog.from_model(model)
    d = cat.dense("50")  # Star Wars (1977): Action, Adventure, Romance, Sci-Fi, War
    assert invented_values(cat, "A sci-fi adventure from 1977.", d) == 0
    assert invented_values(cat, "A horror comedy from 1980.", d) == 3  # horror, comedy, and the year
    liked = [cat.dense("1")]
    bad = personalise(cat, d, liked, PlantedLLM('{"text": "A western classic from 1979."}'))
    assert bad.withheld and bad.text == bad.generic and bad.invented == 2
    good = personalise(cat, d, liked, PlantedLLM('{"text": "Since you liked Toy Story: a sci-fi adventure."}'))
    assert not good.withheld and good.text.startswith("Since you liked Toy Story")
    # a liked title alone says nothing of the item: not shown as its description
    other = personalise(cat, d, liked, PlantedLLM('{"text": "Toy Story"}'))
    assert other.withheld and other.text == other.generic and other.invented == 0


def test_chat_and_explain_cli(capsys, ml100k_ease, tmp_path):
    _, model = ml100k_ease
    model.save(tmp_path / "m")
    code = main(["chat", "--model-dir", str(tmp_path / "m"), "--user", "5", "--message", "a comedy from the 80s",
                 "--message", "no romance", "--json"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    replies = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    assert [r["action"] for r in replies] in (["ask", "recommend"], ["recommend", "recommend"], ["ask", "ask"])
    assert main(["explain", "--model-dir", str(tmp_path / "m"), "--user", "5"]) == 0
    e = json.loads(capsys.readouterr().out)
    assert e["cited"] and e["text"].startswith("Recommended because")
    assert main(["explain", "--model-dir", str(tmp_path / "m"), "--user", "5", "--item", "nope"]) == 2
    assert "not in the catalogue" in capsys.readouterr().err


def test_titles_without_attributes_give_a_kind_to_ask_about():
    """Amazon-style data (short titles, anonymised attribute ids): the kind of thing each title names becomes an
    attribute the catalogue can filter on and a simulated user can state, read from the title alone."""
    import pyarrow as pa

    from recgen.data.text import title_kinds
    from recgen.tasks.catalog import Catalog

    titles = ["red nail polish", "blue nail lacquer", "nail file", "argan hair oil", "hair shampoo", "zq9 thing"]
    assert title_kinds(titles, min_items=2) == ["nail", "nail", "nail", "hair", "hair", None]
    big = titles * 3  # the catalogue's floor: a kind must be used by at least 5 titles
    ids = [f"i{n}" for n in range(len(big))]
    cat = Catalog(["", *ids], pa.table({"item_id": ids, "title": big}))
    assert cat.words["kind"][1] == {"nail"} and cat.words["kind"][4] == {"hair"} and cat.words["kind"][6] == set()
    c = cat.constraints_in("I am looking for something hair, no nail things")
    assert c.want == {"kind": {"hair"}} and c.avoid == {"kind": {"nail"}}


def test_a_kind_is_never_a_word_of_ordinary_speech():
    """A user's sentence ("Can you show me something with ...") must not read as a wish for a kind: title words
    such as "you" (Beauty has "thank you" sets) are not kinds."""
    from recgen.data.text import title_kinds

    titles = ["thank you nail polish"] * 6 + ["you and me hair oil"] * 6
    assert set(title_kinds(titles)) == {"nail", "hair"}
