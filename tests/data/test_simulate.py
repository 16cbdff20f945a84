"""Simulated users: built from training data only, seeded and replayable, resumable after kill -9, and the
dialogue user's leak check; the fidelity metrics against hand-computed cases."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from recgen.data.loaders import load_dataset
from recgen.data.simulate import (
    DialogueUser,
    GroundedDecider,
    RecommenderTurn,
    SimulationConfig,
    build_agents,
    leaks,
    make_decider,
    run_agents,
    run_episode,
    title_aliases,
)
from recgen.data.split import leave_one_out
from recgen.errors import ConfigError, DataError
from recgen.experiments.studies.fidelity import _auc, discrimination, rating_fit
from recgen.experiments.studies.interactive import model_pages
from recgen.models.registry import create_model
from recgen.testing import make_cluster_dataset


@pytest.fixture(scope="module")
def ml100k(real_data_dir):
    ds = load_dataset("ml-100k", data_dir=real_data_dir)
    return ds, leave_one_out(ds)


def test_agents_never_see_validation_or_test_interactions(ml100k):
    ds, split = ml100k
    agents = build_agents(split.train)
    assert len(agents) == ds.n_users
    held = {}
    for es in (split.valid, split.test):
        for row in range(es.n_users):
            held.setdefault(int(es.user_ids[row]), set()).update(map(int, es.targets(row)))
    for a in agents:
        seen = set(map(int, a.history)) | set(a.liked) | set(a.disliked)
        assert not seen & held.get(a.dense, set()) or len(a.history) > len(set(a.history))
        assert len(a.history) == ds.item_ids[ds.user_ids == a.dense].size - 2  # all but the last two
    # changing every held-out interaction (items and ratings) changes no agent: they are built from train only
    roles_changed = ds.ratings.copy()
    order = ds.chronological_order()
    last_two = np.zeros(ds.n_interactions, dtype=bool)
    users = ds.user_ids[order]
    ends = np.r_[np.flatnonzero(np.diff(users)), len(users) - 1]
    last_two[order[ends]] = True
    last_two[order[ends - 1]] = True
    roles_changed[last_two] = 6 - roles_changed[last_two]
    items_changed = ds.item_ids.copy()
    items_changed[last_two] = (items_changed[last_two] % ds.n_items) + 1
    other = dataclasses.replace(ds, ratings=roles_changed, item_ids=items_changed)
    again = build_agents(leave_one_out(other).train)
    for a, b in zip(agents, again, strict=True):
        assert (a.user, a.liked, a.disliked, a.traits) == (b.user, b.liked, b.disliked, b.traits)
        assert np.array_equal(a.history, b.history)
    with pytest.raises(DataError, match="training data"):
        build_agents(split.train, ["no-such-user"])


def _simulate(split, log, decider="grounded", n=12, **cfg):
    model = create_model("ease").fit(split.train)
    users = [str(u) for u in split.train.users.external(np.arange(1, n + 1))]
    agents = build_agents(split.train, users)
    dec = make_decider(decider, split.train, seed=0)
    return run_agents(agents, dec, model_pages(model, split.train, 4), split.train, SimulationConfig(**cfg), log)


def test_a_seeded_simulation_replays_identically(ml100k, tmp_path):
    _, split = ml100k
    for decider in ("grounded", "random", "popularity"):
        a = _simulate(split, tmp_path / f"{decider}-a.jsonl", decider)
        b = _simulate(split, tmp_path / f"{decider}-b.jsonl", decider)
        assert (tmp_path / f"{decider}-a.jsonl").read_bytes() == (tmp_path / f"{decider}-b.jsonl").read_bytes()
        assert a == b and len(a) == 12
    lines = [json.loads(x) for x in (tmp_path / "grounded-a.jsonl").read_text().splitlines()]
    actions = {x["action"] for x in lines}
    assert actions <= {"watch", "skip", "continue", "exit", "satisfaction"} and "satisfaction" in actions
    per_agent = {}
    for x in lines:
        if x["action"] in ("watch", "skip"):
            assert x["reason"] and 0 <= x["p_watch"] <= 1
            shown = per_agent.setdefault(x["agent"], set())
            assert x["item"] not in shown  # no item is shown twice to an agent
            shown.add(x["item"])
        if x["action"] == "watch":
            assert 1 <= x["rating"] <= 5
    assert all(1 <= s["satisfaction"] <= 10 for s in a)


def test_pages_exclude_history_and_what_was_shown(tiny_split):
    model = create_model("ease").fit(tiny_split.train)
    pages = model_pages(model, tiny_split.train, 4)
    agent = build_agents(tiny_split.train)[0]
    history = list(map(int, agent.history))
    shown: set[int] = set()
    for _ in range(20):
        page = pages(agent, history, shown)
        assert not set(page) & set(history) and not set(page) & shown
        shown.update(page)
        if not page:
            break
    assert len(shown) == tiny_split.train.n_items - len(set(history))  # the whole rest of the catalogue, once


def test_grounded_decider_learns_a_planted_taste():
    """Users consume items of their own cluster: the decider, fitted on training data, should prefer an unseen
    item of the agent's cluster over items of other clusters, and explain with a liked item that exists."""
    ds = make_cluster_dataset(n_clusters=4, users_per_cluster=30, items_per_cluster=10, seed=1)
    split = leave_one_out(ds)
    dec = GroundedDecider(split.train)
    agents = build_agents(split.train)
    cluster = lambda i: str(split.train.items.external(np.asarray([i]))[0]).split("_")[0]  # noqa: E731 - "i<c>_<k>"
    pos, neg = [], []
    for a in agents:
        mine = cluster(int(a.history[0]))
        unseen = [i for i in range(1, split.train.n_items + 1) if i not in set(map(int, a.history))]
        p = dec.watch_probs(a, unseen)
        pos += [x for x, i in zip(p, unseen, strict=True) if cluster(i) == mine]
        neg += [x for x, i in zip(p, unseen, strict=True) if cluster(i) != mine]
    assert _auc(np.asarray(pos), np.asarray(neg)) > 0.95
    assert "which I liked" in dec.reason(agents[0], int(agents[0].history[0]), True)


KILLED = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from recgen.data.simulate import SimulationConfig, build_agents, make_decider, run_agents
    from recgen.data.split import leave_one_out
    from recgen.experiments.studies.interactive import model_pages
    from recgen.models.registry import create_model
    from recgen.testing import make_cluster_dataset

    split = leave_one_out(make_cluster_dataset(n_clusters=4, users_per_cluster=10, seed=3))
    model = create_model("ease").fit(split.train)
    pages = model_pages(model, split.train, 4)
    slow = sys.argv[2] == "slow"
    calls = []

    def next_page(agent, history, shown):
        calls.append(agent.user)
        if slow:
            time.sleep(0.05)
        return pages(agent, history, shown)

    agents = build_agents(split.train)
    run_agents(agents, make_decider("grounded", split.train), next_page, split.train, SimulationConfig(), sys.argv[1])
    print(len(set(calls)))
    """
)


def test_a_killed_run_resumes_without_redoing_finished_agents(tmp_path):
    script = tmp_path / "sim.py"
    script.write_text(KILLED)
    log, clean = tmp_path / "killed.jsonl", tmp_path / "clean.jsonl"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(script), str(log), "slow"], env=env)
    deadline = time.time() + 60
    while time.time() < deadline:
        if log.exists() and log.read_text().count('"satisfaction"') >= 3:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = log.read_text().count('"satisfaction"')
    assert 3 <= finished < 40, "the run was killed midway"
    with open(log, "ab") as f:  # as if killed in the middle of writing an agent's lines
        f.write(b'{"action": "watch", "agent": "zz", "item": "1", "pa')
    out = subprocess.run([sys.executable, str(script), str(log), "fast"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) == 40 - finished  # only the unfinished agents ran
    subprocess.run([sys.executable, str(script), str(clean), "fast"], env=env, check=True, capture_output=True)
    resumed = sorted(log.read_text().splitlines())
    assert resumed == sorted(clean.read_text().splitlines())  # every agent once, as in an uninterrupted run


class PlantedLLM:
    """Stands in for an LLM that gives the target away (iEvaLM's failure), to check the check catches it."""

    def __init__(self, reply: str) -> None:
        self.reply = reply

    def chat(self, prompt, **kw):
        from recgen.llm.base import Generation

        return Generation(text=json.dumps({"reply": self.reply}))


def test_dialogue_leak_check_catches_a_planted_leak(ml100k):
    ds, split = ml100k
    user = str(ds.users.external(np.asarray([split.test.user_ids[0]]))[0])
    target = "69"  # Forrest Gump (1994): Comedy, Romance, War
    title = DialogueUser(split.train, user, target).title
    assert title == "Forrest Gump"
    for leak in ("I want to see forrest gump again!", "Something like Forrest-Gump.", "FORREST GUMP (1994) please"):
        u = DialogueUser(split.train, user, target, llm=PlantedLLM(leak))
        r = u.answer(RecommenderTurn("ask", attribute="genre"))
        assert r.leaked and r.done and "Gump" not in r.text
        assert run_episode(DialogueUser(split.train, user, target, llm=PlantedLLM(leak)),
                           lambda u, t: RecommenderTurn("ask", attribute="genre"))["leaked"]  # fmt: skip
    clean = DialogueUser(split.train, user, target, llm=PlantedLLM("A funny romance, with a war in it."))
    r = clean.answer(RecommenderTurn("ask", attribute="genre"))
    assert not r.leaked and r.text.startswith("A funny romance") and r.invented == 0
    wrong = DialogueUser(split.train, user, target, llm=PlantedLLM("A horror film with a western feel."))
    r = wrong.answer(RecommenderTurn("ask", attribute="genre"))  # horror and western are not Forrest Gump's
    assert r.invented == 2 and "horror" not in r.text.lower()  # fell back to the catalogue's facts
    assert set(title_aliases("Birdcage, The (1996)")) >= {" the birdcage ", " birdcage "}
    assert leaks("we loved the birdcage", title_aliases("Birdcage, The")) == "the birdcage"
    assert leaks("a bird in a cage", title_aliases("Birdcage, The")) is None
    # the template user never names its target, over many users and every attribute
    for row in range(50):
        u = str(ds.users.external(np.asarray([split.test.user_ids[row]]))[0])
        t = str(ds.items.external(np.asarray([split.test.targets(row)[0]]))[0])
        d = DialogueUser(split.train, u, t, max_turns=4)
        for attribute in ("genre", "year", None):
            assert not d.answer(RecommenderTurn("ask", attribute=attribute)).leaked
        assert d.answer(RecommenderTurn("recommend", items=[t])).accepted == t


def test_fidelity_metrics_match_hand_computed_values():
    cases = [{"positives": [1, 2]}, {"positives": [3]}]
    probs = [(np.array([0.9, 0.4]), np.array([0.6, 0.1, 0.2, 0.3])), (np.array([0.7]), np.array([0.2, 0.8]))]
    m1 = discrimination(cases, probs, 1)  # negatives used: [0.6, 0.1] and [0.2]
    # TP 2 (0.9, 0.7), FN 1 (0.4), FP 1 (0.6), TN 2 (0.1, 0.2)
    assert m1["accuracy"] == pytest.approx(4 / 6) and m1["precision"] == pytest.approx(2 / 3)
    assert m1["recall"] == pytest.approx(2 / 3) and m1["f1"] == pytest.approx(2 / 3)
    # AUC: positives 0.9, 0.4, 0.7 against 0.6, 0.1, 0.2: pairs won 3 + 2 + 3 = 8 of 9
    assert m1["auc"] == pytest.approx(8 / 9)
    m2 = discrimination(cases, probs, 2)  # all four negatives of case 1, both of case 2
    assert m2["decisions"] == 9 and m2["precision"] == pytest.approx(2 / 4)
    assert _auc(np.array([0.5]), np.array([0.5])) == 0.5
    r = rating_fit(np.array([5.0, 3.0, 1.0, 4.0]), np.array([4.6, 3.4, 2.2, 4.0]))
    assert r["rmse"] == pytest.approx(np.sqrt(1 / 4)) and r["mae"] == pytest.approx(1 / 4)
    assert r["simulated_distribution"] == [0, 0.25, 0.25, 0.25, 0.25]
    assert r["total_variation"] == pytest.approx(0.25)


def test_llm_decider_is_calibrated_on_training_pairs(embedded_llm, tiny_split):
    from recgen.data.simulate.deciders import LLMDecider

    grounded = GroundedDecider(tiny_split.train)
    llm = LLMDecider(tiny_split.train, embedded_llm)
    dec = make_decider("llm", tiny_split.train, llm=llm, grounded=grounded, calibration_pairs=6)
    distinct = {(u, i) for (u, p), n in zip(grounded.pairs[:6], grounded.pair_negatives, strict=False) for i in (p, n)}
    assert dec is llm and llm.calibration_pairs == 6 and llm.calls["yes_no"] == len(distinct)  # each asked once
    asked = llm.calls["yes_no"]
    agent = build_agents(tiny_split.train)[0]
    p = dec.watch_probs(agent, [1, 2, 3])
    assert ((0 < p) & (p < 1)).all() and llm.calls["yes_no"] == asked + 3
    assert np.array_equal(p, dec.watch_probs(agent, [1, 2, 3])) and llm.calls["yes_no"] == asked + 3  # remembered
    r = dec.ratings(agent, [1])
    assert 1 <= r[0] <= 5
    both = make_decider("llm+grounded", tiny_split.train, llm=llm, grounded=grounded)
    assert llm.calls["yes_no"] == asked + 3 and both.watch_probs(agent, [1, 2, 3]).shape == (3,)
    assert isinstance(both.reason(agent, 1, True), str)
    with pytest.raises(ConfigError, match="needs an LLM"):
        make_decider("llm", tiny_split.train)
    with pytest.raises(ConfigError, match="unknown decider"):
        make_decider("oracle", tiny_split.train)


def test_a_served_model_that_would_say_nothing_gives_no_view(tiny_dataset):
    """llama-cpp-python's server returns no log-probabilities when the likeliest next token is end-of-text: the
    simulated user then has no view (log-odds 0, the middle rating), counted, and the run goes on."""
    import numpy as np

    from recgen.data.simulate.agents import build_agents
    from recgen.data.simulate.deciders import LLMDecider
    from recgen.llm.base import EndOfTextError

    class Silent:
        def next_token_logprobs(self, prompt, options):
            raise EndOfTextError("the model's most likely next token after the prompt is end-of-text")

    dec = LLMDecider(tiny_dataset, Silent())
    agent = build_agents(tiny_dataset, [str(tiny_dataset.users.external(np.array([1]))[0])])[0]
    assert dec.log_odds(agent, [1, 2]).tolist() == [0.0, 0.0]
    assert dec._ask("rating", agent, [1]).tolist() == [3.0]
    assert dec.calls["no_view"] == 3 and dec.calls["yes_no"] == 2 and dec.calls["rating"] == 1
