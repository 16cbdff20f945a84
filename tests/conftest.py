import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # two processes on 2 cores must not busy-wait
from pathlib import Path

import pytest

from recgen.data.split import leave_one_out
from recgen.testing import make_tiny_dataset


@pytest.fixture
def tiny_dataset():
    return make_tiny_dataset()


@pytest.fixture
def tiny_split(tiny_dataset):
    return leave_one_out(tiny_dataset)


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The data directory with the real datasets (RECGEN_DATA_DIR). Skips where absent; CI sets
    RECGEN_REQUIRE_REAL_DATA=1, which turns that skip into a failure."""
    d = os.environ.get("RECGEN_DATA_DIR")
    if d and (Path(d) / "ml-100k").is_dir():
        return Path(d)
    msg = "real datasets not found: set RECGEN_DATA_DIR to a folder holding ml-100k/, amazon-2014/, ..."
    if os.environ.get("RECGEN_REQUIRE_REAL_DATA") == "1":
        pytest.fail(msg)
    pytest.skip(msg)
