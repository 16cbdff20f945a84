"""The layout is the architecture (docs/architecture.md): packages import only packages below them, and no
module grows into a god file."""

import ast
import collections
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "recgen"
# the level of each package: a package may import only packages of a lower level
LEVELS = {
    "(foundation)": 0,  # errors, config, io, cache, memory, progress
    "ops": 1,
    "llm": 1,  # backends: they know nothing of data or models
    "data": 2,  # the data level: datasets, and the generation and simulation that use LLMs
    "eval": 3,
    "models": 4,
    "tasks": 5,  # the task level: conversation, explanation, personalised text over fitted models
    "experiments": 6,  # the harness measures models and tasks
    "testing": 7,
    "serve": 7,
    "cli": 8,
}


def _package(module: str) -> str:
    parts = module.split(".")
    if module == "recgen.__main__":
        return "cli"
    if len(parts) >= 2 and (SRC / parts[1]).is_dir():
        return parts[1]
    return "(foundation)"


def _imports() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = collections.defaultdict(set)
    for f in SRC.rglob("*.py"):
        module = ".".join(f.relative_to(SRC.parent).with_suffix("").parts).removesuffix(".__init__")
        src = _package(module)
        for node in ast.walk(ast.parse(f.read_text())):  # lazy (function-level) imports count too
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("recgen."):
                targets = [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("recgen.")]
            else:
                continue
            edges[src] |= {_package(t) for t in targets} - {src}
    return edges


def test_packages_import_only_lower_levels():
    edges = _imports()
    assert set(edges) | {d for ds in edges.values() for d in ds} <= set(LEVELS), "a package missing from LEVELS"
    upward = [(a, b) for a, ds in edges.items() for b in ds if LEVELS[b] >= LEVELS[a]]
    assert not upward, f"imports that go sideways or up (an import cycle in the making): {sorted(upward)}"


def test_no_god_files():
    sizes = {f.relative_to(SRC).as_posix(): len(f.read_text().splitlines()) for f in SRC.rglob("*.py")}
    # TIGER's config, network, cached beam search and recommender read best in one file (docs/architecture.md)
    limits = {"models/semantic/tiger.py": 500}
    big = {f: n for f, n in sizes.items() if n > limits.get(f, 460)}
    assert not big, f"modules over the size limit (split them): {big}"
