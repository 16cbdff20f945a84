"""The HTTP API in-process (FastAPI's test client over the real app, store and registry)."""

import threading

import pytest
from fastapi.testclient import TestClient

from recgen.serve.app import create_app
from recgen.serve.registry import ModelRegistry
from recgen.serve.retrain import retrain

from .conftest import GENRES


@pytest.fixture
def client(registry, sqlite_store):
    app = create_app(registry, sqlite_store, rate=0)
    key = sqlite_store.create_key("tests")
    with TestClient(app, raise_server_exceptions=False) as c:
        c.headers["X-API-Key"] = key
        yield c


def test_health_needs_no_key_and_names_the_version(registry, sqlite_store):
    with TestClient(create_app(registry, sqlite_store)) as c:
        assert c.get("/health/live").json() == {"status": "live"}
        ready = c.get("/health/ready")
        assert ready.status_code == 200 and ready.json()["model_version"] == "v001-ease"


def test_keys_are_required_checked_and_revocable(client, sqlite_store):
    assert client.get("/v1/users/u0_0/recommendations", headers={"X-API-Key": ""}).status_code == 401
    assert client.get("/v1/users/u0_0/recommendations", headers={"X-API-Key": "rk_wrong"}).status_code == 401
    other = sqlite_store.create_key("other")
    assert client.get("/v1/users", headers={"X-API-Key": other}).status_code == 200
    sqlite_store.revoke_key("other")
    r = client.get("/v1/users", headers={"X-API-Key": other})
    assert r.status_code == 401 and "X-API-Key" in r.json()["detail"]


def test_recommend_known_and_unknown_users(client, dataset):
    r = client.get("/v1/users/u0_0/recommendations", params={"k": 10})
    body = r.json()
    assert r.status_code == 200 and body["known"] and body["model_version"] == "v001-ease"
    assert 0 < len(body["items"]) <= 10 and all(i["title"] for i in body["items"])
    history = {i["item_id"] for i in client.get("/v1/users/u0_0").json()["history"]}
    assert history and not history & {i["item_id"] for i in body["items"]}  # seen items excluded
    cold = client.get("/v1/users/somebody-new/recommendations", params={"k": 3}).json()
    assert not cold["known"] and cold["fallback"].startswith("unknown user") and len(cold["items"]) == 3


def test_bad_input_is_a_4xx_saying_what_was_wrong(client):
    r = client.get("/v1/users/u0_0/recommendations", params={"k": 0})
    assert r.status_code == 422 and "k" in r.json()["detail"]
    r = client.get("/v1/users/u0_0/recommendations", params={"k": 5000})
    assert r.status_code == 422
    r = client.get("/v1/users/bad%01id/recommendations")
    assert r.status_code == 422 and "user_id" in r.json()["detail"]
    r = client.post("/v1/feedback", content=b"{" + b" " * 70_000 + b"}", headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "bytes" in r.json()["detail"]
    r = client.post("/v1/feedback", json={"user_id": "u", "item_id": "i", "event": "like"})
    assert r.status_code == 422 and "event" in r.json()["detail"]
    r = client.post("/v1/recommendations/session", json={"items": []})
    assert r.status_code == 422
    r = client.get("/v1/users/u0_0/recommendations", params={"filter": "colour:red"})
    assert r.status_code == 422 and "FIELD:VALUE" in r.json()["detail"]


def test_feedback_is_stored_once_per_idempotency_key_and_extends_the_history(client, sqlite_store):
    before = {i["item_id"] for i in client.get("/v1/users/u0_0/recommendations", params={"k": 3}).json()["items"]}
    item = sorted(before)[0]
    body = {"user_id": "u0_0", "item_id": item, "event": "click"}
    first = client.post("/v1/feedback", json=body, headers={"Idempotency-Key": "k-1"})
    again = client.post("/v1/feedback", json=body, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == 201 and again.status_code == 200
    assert first.json()["event_id"] == again.json()["event_id"] and again.json()["duplicate"]
    assert sqlite_store.count_events() == 1
    user = client.get("/v1/users/u0_0").json()
    assert user["history"][-1]["item_id"] == item and user["feedback_events"] == 1
    after = {i["item_id"] for i in client.get("/v1/users/u0_0/recommendations", params={"k": 3}).json()["items"]}
    assert item not in after  # seen now: excluded


def test_feedback_makes_an_unknown_user_known_to_the_recommender(client):
    client.post("/v1/feedback", json={"user_id": "newcomer", "item_id": "i0_1", "event": "purchase"})
    r = client.get("/v1/users/newcomer/recommendations", params={"k": 5}).json()
    assert r["fallback"] == "" and "i0_1" not in {i["item_id"] for i in r["items"]}


def test_metadata_filters_and_similar_items(client, dataset):
    r = client.get("/v1/users/u0_0/recommendations", params={"k": 50, "filter": "genres:comedy"}).json()
    genres = {row["item_id"]: row["genres"] for row in dataset.item_table.to_pylist()}
    assert r["items"] and all("Comedy" in genres[i["item_id"]] for i in r["items"])
    similar = client.get("/v1/items/i0_1/similar", params={"k": 4})
    assert similar.status_code == 200 and "i0_1" not in {i["item_id"] for i in similar.json()["items"]}
    assert client.get("/v1/items/nope/similar").status_code == 404
    info = client.get("/v1/items/i0_1").json()
    assert info["fields"]["title"] and set(info["fields"]["genres"]) <= set(GENRES)


def test_rate_limit_answers_429_with_retry_after(registry, sqlite_store):
    key = sqlite_store.create_key("limited")
    with TestClient(create_app(registry, sqlite_store, rate=1.0, burst=2)) as c:
        codes = [c.get("/v1/users", headers={"X-API-Key": key}).status_code for _ in range(3)]
        last = c.get("/v1/users", headers={"X-API-Key": key})
    assert codes[:2] == [200, 200] and 429 in codes[2:] + [last.status_code]
    assert float(last.headers["Retry-After"]) > 0


def test_versions_activate_and_roll_back_without_failing_requests_in_flight(client):
    assert client.get("/v1/models").json()["active"] == "v001-ease"
    seen, failures, stop = set(), [], threading.Event()

    def hammer():
        while not stop.is_set():
            r = client.get("/v1/users/u1_1/recommendations", params={"k": 5})
            (seen.add(r.json()["model_version"]) if r.status_code == 200 else failures.append(r.status_code))

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for version in ("v002-itemknn", "v001-ease", "v002-itemknn"):
        assert client.post(f"/v1/models/{version}/activate").json()["active"] == version
    stop.set()
    for t in threads:
        t.join()
    assert not failures and seen <= {"v001-ease", "v002-itemknn"}
    rolled = client.post("/v1/models/rollback").json()
    assert rolled["active"] == "v001-ease"
    assert client.post("/v1/models/v999/activate").status_code == 404


def test_a_single_model_folder_cannot_switch(tmp_path, models, sqlite_store):
    models["ease"].save(tmp_path / "ease")
    key = sqlite_store.create_key("t")
    with TestClient(create_app(ModelRegistry(tmp_path / "ease"), sqlite_store)) as c:
        r = c.post("/v1/models/ease/activate", headers={"X-API-Key": key})
        assert r.status_code == 409 and "registry" in r.json()["detail"]


def test_an_unexpected_failure_is_a_500_without_a_stack_trace(client, registry, monkeypatch):
    _, model = registry.current()

    def boom(*a, **k):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(model, "recommend", boom)
    r = client.get("/v1/users/u0_0/recommendations")
    assert r.status_code == 500 and r.json()["detail"] == "internal error" and r.json()["request_id"]
    assert "secret" not in r.text and "Traceback" not in r.text


def test_retrain_activates_only_a_challenger_that_is_not_worse(registry, sqlite_store, dataset, tmp_path):
    dataset.save(tmp_path / "data")
    for i, (u, item) in enumerate([("u0_0", "i0_2"), ("u0_1", "i0_3"), ("newcomer", "i1_1")]):
        sqlite_store.add_event(u, item, "click", timestamp=1e9 + i)
    same = retrain(registry, str(tmp_path / "data"), sqlite_store, log=lambda *_: None)
    assert same["feedback_events"] == 3 and same["activated"]  # the same recipe ties with itself
    assert registry.current()[0] == same["version"]
    worse = retrain(registry, str(tmp_path / "data"), sqlite_store, model="pop", log=lambda *_: None)
    assert not worse["activated"] and worse["valid_ndcg@10"] < worse["champion"]["valid_ndcg@10"]
    assert registry.current()[0] == same["version"] and worse["version"] in registry.versions()


def test_explanations_cite_the_users_history_including_new_feedback(client):
    recs = client.get("/v1/users/u0_0/recommendations", params={"k": 1}).json()
    item = recs["items"][0]["item_id"]
    r = client.get(f"/v1/users/u0_0/explanations/{item}")
    body = r.json()
    history = {i["item_id"] for i in client.get("/v1/users/u0_0").json()["history"]}
    assert r.status_code == 200 and body["cited"] and {c["item_id"] for c in body["cited"]} <= history
    assert body["text"].startswith("Recommended because") and body["model_version"] == "v001-ease"
    for values in body["shared"].values():
        assert values
    assert client.get("/v1/users/u0_0/explanations/no-such-item").status_code == 404
    # a new user explained by the feedback they gave
    seed = body["cited"][0]["item_id"]
    client.post("/v1/feedback", json={"user_id": "newbie", "item_id": seed, "event": "click"})
    fresh = client.get(f"/v1/users/newbie/explanations/{item}").json()
    assert [c["item_id"] for c in fresh["cited"]] == [seed]  # EASE: its weight to the item is positive


def test_chat_sessions_are_stored_and_continue(client, sqlite_store):
    first = client.post("/v1/chat", json={"message": "Something with Comedy please", "user_id": "u0_0"})
    body = first.json()
    assert first.status_code == 200 and body["session_id"] >= 1 and body["action"] in ("ask", "recommend")
    sid = body["session_id"]
    shown = set()
    for text in ["just show me some", "more please"]:
        r = client.post("/v1/chat", json={"message": text, "session_id": sid}).json()
        if r["action"] == "recommend":
            ids = {i["item_id"] for i in r["items"]}
            assert ids and not ids & shown  # the stored session remembers what was shown
            shown |= ids
            assert all("Comedy" in i["facts"].get("genre", []) for i in r["items"]) or r["relaxed"]
    user_id, messages = sqlite_store.chat_messages(sid)
    assert user_id == "u0_0" and len(messages) == 3 and messages[0]["user"] == "Something with Comedy please"
    assert client.post("/v1/chat", json={"message": "hi", "session_id": 999999}).status_code == 404
    assert client.post("/v1/chat", json={"message": "hi", "session_id": sid, "user_id": "u1_1"}).status_code == 409
    assert client.post("/v1/chat", json={"message": ""}).status_code == 422
