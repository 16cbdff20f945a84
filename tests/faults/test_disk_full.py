"""A full disk, for real: a tiny tmpfs (mounted by the test; it needs root, as CI has) holds the output, so the
write fails with ENOSPC inside the command. Each case must end in one ``error:`` line, exit code 2, and leave the
earlier version of its output as it was, with no temp file behind."""

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from .conftest import run_fault


@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / f"small-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mnt)], capture_output=True)
    if proc.returncode != 0:
        msg = f"cannot mount a tmpfs here ({proc.stderr.decode().strip() or 'not root'})"
        if os.environ.get("RECGEN_REQUIRE_REAL_DATA") == "1":  # CI runs as root: the case must run there
            pytest.fail(msg)
        pytest.skip(msg)
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def fill(mnt: Path, leave: int) -> None:
    """Fill the tmpfs so that only about ``leave`` bytes stay free."""
    st = os.statvfs(mnt)
    free = st.f_bavail * st.f_frsize
    if free > leave:
        (mnt / "filler").write_bytes(b"\0" * (free - leave))


def test_convert_on_a_full_disk(capsys, ws, small_disk):
    fill(small_disk, 8 * 1024)
    run_fault(capsys, ["data", "convert", str(ws / "tiny.csv"), str(small_disk / "ds")], small_disk,
              "no space left on the device")  # fmt: skip
    assert not (small_disk / "ds").exists()


def test_results_on_a_full_disk_keep_the_earlier_file(capsys, ws, small_disk):
    shutil.copytree(ws / "results", small_disk / "results")
    fill(small_disk, 2 * 1024)
    argv = ["bench", "-d", str(ws / "tiny"), "-m", "ease", "--set", "l2=10", "--out", str(small_disk / "results")]
    run_fault(capsys, argv, small_disk, "no space left on the device")


def test_model_folder_on_a_full_disk_keeps_the_earlier_model(capsys, ws, small_disk):
    shutil.copytree(ws / "pop", small_disk / "model")
    fill(small_disk, 4 * 1024)
    argv = ["train", "-d", str(ws / "tiny"), "-m", "ease", "-o", str(small_disk / "model")]
    run_fault(capsys, argv, small_disk, "no space left on the device")
    from recgen.models.registry import load_model  # the earlier model still loads

    assert load_model(small_disk / "model").name == "pop"


def test_report_on_a_full_disk(capsys, ws, small_disk):
    (small_disk / "R.md").write_text("earlier report\n")
    fill(small_disk, 1024)
    argv = ["report", "--results", str(ws / "results"), "--out", str(small_disk / "R.md"), "--readme", ""]
    run_fault(capsys, argv, small_disk, "no space left on the device")
    assert (small_disk / "R.md").read_text() == "earlier report\n"
