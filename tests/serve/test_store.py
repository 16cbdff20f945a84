"""The store on SQLite and on a real PostgreSQL server: migrations, concurrent writes with zero lost events, an
idempotency key stored once even when two retries race, and (with a real server process) kill -9 during a burst
of feedback losing no acknowledged event."""

import concurrent.futures as cf
import threading

import httpx
import pytest

from recgen.serve.migrations import current
from recgen.serve.store import Store


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request):
    return request.getfixturevalue(f"{'sqlite' if request.param == 'sqlite' else 'postgres'}_store")


def test_migrated_to_head(store):
    assert current(store.engine) == "0001"
    Store(store.url)  # opening again runs no migration twice
    assert current(store.engine) == "0001"


def test_concurrent_writes_lose_nothing(store):
    acknowledged = []
    lock = threading.Lock()

    def write(i: int) -> None:
        e = store.add_event(f"u{i % 7}", f"i{i}", "click", timestamp=1e9 + i)
        with lock:
            acknowledged.append(e.id)

    with cf.ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(400)))
    assert len(acknowledged) == len(set(acknowledged)) == 400
    assert store.count_events() == 400


def test_racing_retries_of_one_key_store_one_event(store):
    barrier = threading.Barrier(6)

    def retry(_):
        barrier.wait()
        return store.add_event("u1", "i1", "purchase", idempotency_key="order-42")

    with cf.ThreadPoolExecutor(6) as pool:
        results = list(pool.map(retry, range(6)))
    assert len({r.id for r in results}) == 1 and sum(not r.duplicate for r in results) == 1
    assert store.count_events() == 1


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_kill_9_during_a_feedback_burst_loses_no_acknowledged_event(backend, request, tmp_path, models,
                                                                    server_factory):  # fmt: skip
    """Clients post feedback to a real server process; it is killed (SIGKILL) mid-burst; every event the server
    acknowledged (201) is in the store afterwards."""
    db = f"sqlite:///{tmp_path / 'burst.sqlite'}" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    if backend == "postgresql":
        s = Store(db)
        with s.engine.begin() as conn:
            conn.exec_driver_sql("TRUNCATE events, api_keys, chat_sessions RESTART IDENTITY")
    models["ease"].save(tmp_path / "model")
    server = server_factory(tmp_path / "model", db)
    acked, stop = [], threading.Event()
    lock = threading.Lock()

    def client(n: int) -> None:
        with httpx.Client(base_url=server.url, headers={"X-API-Key": server.key}, timeout=5) as c:
            for i in range(10_000):
                if stop.is_set():
                    return
                try:
                    r = c.post("/v1/feedback", json={"user_id": f"c{n}", "item_id": f"i{i}", "event": "view"})
                except httpx.HTTPError:
                    return  # the server is gone
                if r.status_code == 201:
                    with lock:
                        acked.append(r.json()["event_id"])

    threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    while len(acked) < 150:
        threading.Event().wait(0.05)
    server.stop(kill=True)
    stop.set()
    for t in threads:
        t.join()
    stored = {e.id for e in Store(db).events()}
    assert len(acked) >= 150 and set(acked) <= stored, f"{len(set(acked) - stored)} acknowledged events lost"
