"""What the speed scripts in this folder share: a model whose network and batches are built but not trained, and
writing a speed results file (load average and provenance included). Imported as ``speedlib`` (the scripts run
as ``python benchmarks/NAME.py``, so this folder is on the path)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from recgen.experiments.results import git_commit, provenance, write_json
from recgen.models import create_model


def untrained(name: str, train, **config) -> tuple[Any, dict[str, Any]]:
    """``name`` fitted on ``train`` with its training skipped: the network and the batches are built, and the
    arguments the trainer would have got (``batches``, ``loss_fn``, ...) are returned beside the model."""
    model = create_model(name, epochs=1, **config)
    captured: dict[str, Any] = {}
    model._train = lambda **kw: captured.update(kw)  # build the net and the batches, train nothing
    model.fit(train)
    model._infer_net_ = None  # a fresh inference copy of the (untrained) weights
    return model, captured


def save(benchmark: str, out: str | Path, **fields: Any) -> None:
    """Write ``{benchmark, **fields, load_average_at_end, provenance}`` to ``out`` and say where."""
    script = Path(sys.argv[0]).name
    result = {
        "benchmark": benchmark,
        **fields,
        "load_average_at_end": os.getloadavg(),
        **provenance(git_commit(), f"python benchmarks/{script} " + " ".join(sys.argv[1:])),
    }
    write_json(result, out)
    print(f"results: {out}")
