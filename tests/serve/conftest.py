"""Fixtures of the service's tests: small fitted models in a registry, SQLite and a real PostgreSQL server that
the tests start themselves (initdb + pg_ctl in a temp folder on a free port), and a real uvicorn server process."""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pyarrow as pa
import pytest

from recgen.data.dataset import from_columns
from recgen.models import create_model
from recgen.serve.registry import create_registry
from recgen.serve.store import Store, sqlite_url
from recgen.testing.postgres import free_port
from recgen.testing.synthetic import make_titled_dataset

GENRES = ["Drama", "Comedy", "Action", "Horror"]


def require(msg: str):
    """Skip outside CI; CI (RECGEN_REQUIRE_REAL_DATA=1, set by .ci/run) needs every real component."""
    if os.environ.get("RECGEN_REQUIRE_REAL_DATA") == "1":
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(scope="session")
def dataset():
    """The titled tiny dataset with a genres list per item (for metadata filters)."""
    base = make_titled_dataset()
    table = base.item_table
    genres = [[GENRES[i % 4], GENRES[(i + 1) % 4]] for i in range(table.num_rows)]
    return from_columns(
        base.users.external(base.user_ids), base.items.external(base.item_ids), base.timestamps,
        ratings=base.ratings, item_table=table.append_column("genres", pa.array(genres)), name="titled",
    )  # fmt: skip


@pytest.fixture(scope="session")
def models(dataset):
    return {
        "ease": create_model("ease", l2=10.0).fit(dataset),
        "itemknn": create_model("itemknn", k=10).fit(dataset),
    }


@pytest.fixture
def registry(tmp_path, models):
    reg = create_registry(tmp_path / "registry", models["ease"], "v001-ease")
    reg.add_version(models["itemknn"], "v002-itemknn")
    return reg


@pytest.fixture
def sqlite_store(tmp_path):
    store = Store(sqlite_url(tmp_path / "serve.sqlite"))
    yield store
    store.close()


@pytest.fixture(scope="session")
def postgres_url():
    """A real PostgreSQL server in a temp folder on a free port, for this test session (Debian's postgresql)."""
    from recgen.errors import BackendUnavailableError
    from recgen.testing.postgres import temporary_postgres

    try:
        with temporary_postgres() as url:
            yield url
    except BackendUnavailableError as exc:
        require(str(exc))


@pytest.fixture
def postgres_store(postgres_url):
    store = Store(postgres_url)
    with store.engine.begin() as conn:  # a clean slate for each test
        conn.exec_driver_sql("TRUNCATE events, api_keys, chat_sessions RESTART IDENTITY")
    yield store
    store.close()


class Server:
    """``recgen serve`` in a subprocess on a free port."""

    def __init__(self, model_dir: Path, db: str, key_name: str = "tests", extra: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
        argv = [sys.executable, "-m", "recgen", "serve", "--model-dir", str(model_dir), "--db", db,
                "--port", str(self.port), "--create-key", key_name, *extra]  # fmt: skip
        env = {**os.environ, "RECGEN_PROGRESS": "0"}
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.log, text=True, env=env)
        line = self.proc.stdout.readline()
        if "rk_" not in line:
            self.stop()
            raise RuntimeError(f"the server did not start: {line} {Path(self.log.name).read_text()[-2000:]}")
        self.key = line.strip().split()[-1]
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if httpx.get(self.url + "/health/live", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("the server did not answer /health/live within 60 s")

    def stop(self, kill: bool = False) -> None:
        if self.proc.poll() is None:
            self.proc.kill() if kill else self.proc.terminate()
            self.proc.wait(timeout=30)


@pytest.fixture
def server_factory():
    started: list[Server] = []

    def start(*args, **kwargs) -> Server:
        s = Server(*args, **kwargs)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()
