"""keep_freed_memory: applied once per process on glibc, left alone on request, and tensors work after it."""

import subprocess
import sys

import pytest

CODE = (
    "import torch; from recgen.ops.allocator import keep_freed_memory as k; a = k(); "
    "x = torch.randn(1024, 1024); y = (x @ x).relu(); del x; "
    "print(a, k(), bool(torch.isfinite(y).all()))"
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt exists on Linux only")
@pytest.mark.parametrize(
    ("env", "expected"), [({}, "True True True"), ({"RECGEN_MALLOC": "default"}, "False False True")]
)
def test_applied_once_or_left_to_the_c_library(env, expected, monkeypatch):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    out = subprocess.run([sys.executable, "-c", CODE], check=True, capture_output=True, text=True).stdout
    assert out.strip() == expected
