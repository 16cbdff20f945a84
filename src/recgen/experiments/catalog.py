"""The README's model table: every registered model by family, its paper and file, and its best measured figure
beside the paper's, generated from the results files.

"Best measured" is chosen without looking at test metrics: among the model's leave-one-out runs on the dataset
shown, the one with the most seeds, then the best validation NDCG@10 (zero-shot models have no validation: the
one evaluated on the most users). The Pop column is Pop's test figure on the same split and users, where a Pop
run exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recgen.experiments.published import PUBLISHED
from recgen.experiments.tables import _config_str, protocol_label


@dataclass(frozen=True)
class ModelCard:
    name: str  # the registry name
    family: str
    title: str
    paper: str
    file: str  # under src/recgen/models/
    dataset: str  # the dataset whose figure the README shows
    published: str | None = None  # the model name of the PUBLISHED row on that dataset, if any


CARDS: list[ModelCard] = [
    ModelCard("pop", "classic", "Pop", "most popular items", "classic/pop.py", "beauty"),
    ModelCard("itemknn", "classic", "ItemKNN", "Sarwar et al., WWW 2001", "classic/itemknn.py", "beauty"),
    ModelCard(
        "contentknn",
        "classic",
        "ContentKNN",
        "text similarity (all-MiniLM-L6-v2), the cold-start baseline",
        "classic/contentknn.py",
        "ml-100k",
    ),
    ModelCard("ease", "classic", "EASE", "Steck, WWW 2019", "classic/ease.py", "beauty"),
    ModelCard("bpr", "classic", "BPR-MF", "Rendle et al., UAI 2009", "classic/bpr.py", "ml-100k"),
    ModelCard(
        "sasrec",
        "sequential LRM",
        "SASRec-CE",
        "Kang & McAuley, ICDM 2018; CE loss: Klenitskiy & Vasilev, RecSys 2023",
        "sequential/sasrec.py",
        "beauty",
        "SASRec-CE (max len 50)",
    ),  # fmt: skip
    ModelCard("hstu", "sequential LRM", "HSTU", "Zhai et al., ICML 2024", "sequential/hstu.py", "beauty", "HSTU-CE"),
    ModelCard("tiger", "semantic IDs", "TIGER", "Rajput et al., NeurIPS 2023", "semantic/tiger.py", "beauty", "TIGER"),
    ModelCard("multvae", "diffusion", "MultVAE", "Liang et al., WWW 2018", "diffusion/multvae.py", "ml-100k"),
    ModelCard("diffrec", "diffusion", "DiffRec", "Wang et al., SIGIR 2023", "diffusion/diffrec.py", "ml-100k"),
    ModelCard("ldiffrec", "diffusion", "L-DiffRec", "Wang et al., SIGIR 2023", "diffusion/ldiffrec.py", "ml-100k"),
    ModelCard("dreamrec", "diffusion", "DreamRec", "Yang et al., NeurIPS 2023", "diffusion/dreamrec.py", "ml-100k"),
    ModelCard(
        "llmrank",
        "LLM",
        "LLM re-ranker",
        "LlamaRec (Yue et al. 2023), LLMRank (Hou et al., ECIR 2024)",
        "llm/llmrank.py",
        "ml-100k",
        "LlamaRec (LRURec + Llama-2-7B re-rank of 20)",
    ),  # fmt: skip
    ModelCard("bigrec", "LLM", "BIGRec", "Bao et al., 2023", "llm/bigrec.py", "ml-100k"),
]


def _pick(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Most seeds, then the best validation NDCG@10 (then most evaluated users, then file name): never test."""

    def key(r: dict[str, Any]) -> tuple:
        users = r["protocol"].get("eval_users") or float("inf")
        return (len(r["seeds"]), r.get("valid", {}).get("ndcg@10", -1.0), users, r.get("_path", ""))

    return max(runs, key=key, default=None)


def _cell(r: dict[str, Any]) -> str:
    def one(k: str) -> str:
        v, s = r["test"][k], r.get("test_std", {}).get(k, 0.0)
        return f"{v:.4f} ± {s:.4f}" if len(r["seeds"]) > 1 else f"{v:.4f}"

    return f"{one('recall@10')} / {one('ndcg@10')} ({len(r['seeds'])} seed{'s' if len(r['seeds']) > 1 else ''})"


def models_table(results: list[dict[str, Any]], results_dir: str | Path = "benchmarks/results") -> str:
    """The model-family table of the README (Markdown), from bench results files."""
    lines = [
        "| family | model | paper | file | dataset (split) | recgen R@10 / N@10 | config | published R@10 / N@10 "
        "| Pop on the split | results file |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for card in CARDS:
        loo = [r for r in results if r["model"] == card.name and r["protocol"].get("name") in ("leave-one-out", "loo")]
        # the card's dataset; in a results folder without it (a user's own data), the model's best run anywhere
        r = _pick([r for r in loo if r["dataset"] == card.dataset] or loo)
        dataset = r["dataset"] if r is not None else card.dataset
        pub = next((p for p in PUBLISHED if p["dataset"] == dataset and p["model"] == card.published), None)
        published = f"{pub['recall@10']:.4f} / {pub['ndcg@10']:.4f} ({pub['source']})" if pub else "–"
        if r is None:
            cells = ["–"] * 3 + ["–"]
        else:
            label = protocol_label(r["protocol"])
            split = f"{dataset} ({label})" if label else dataset
            pops = [p for p in results if p["model"] == "pop" and p["dataset"] == dataset]
            pop = next((p for p in pops if protocol_label(p["protocol"]) == label), None)
            name = Path(r["_path"]).name
            link = f"[{name}]({Path(results_dir).as_posix()}/{name})"
            cells = [split, _cell(r), _config_str(r["config"], r["model"]), link]
            pop_cell = f"{pop['test']['recall@10']:.4f} / {pop['test']['ndcg@10']:.4f}" if pop else "–"
        row = [card.family, f"**{card.title}** (`{card.name}`)", card.paper, f"`models/{card.file}`"]
        row += [cells[0], cells[1], cells[2], published, pop_cell if r is not None else "–", cells[3]]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)
