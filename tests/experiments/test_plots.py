"""Figures are written as every recgen file is: atomically, an earlier figure kept whole when a write fails."""

import matplotlib
import pytest

from recgen.experiments.plots import save_figure

matplotlib.use("Agg")


def test_a_failed_figure_write_keeps_the_earlier_figure_and_leaves_no_temp_file(tmp_path):
    import matplotlib.pyplot as plt

    out = tmp_path / "fig.png"
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    assert save_figure(fig, out) == out and out.read_bytes()[:4] == b"\x89PNG"
    before = out.read_bytes()
    bad = tmp_path / "fig.nosuchformat"
    fig, _ = plt.subplots()
    with pytest.raises(ValueError):
        save_figure(fig, bad)
    assert not bad.exists()
    fig, _ = plt.subplots()
    fig.savefig = lambda *a, **k: (_ for _ in ()).throw(OSError("disk full"))  # fails mid-write
    with pytest.raises(OSError):
        save_figure(fig, out)
    assert out.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["fig.png"]
