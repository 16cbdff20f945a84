"""Published figures on recgen's protocols (full ranking, leave-one-out), copied from the papers and public
READMEs listed in ../shared/BENCHMARKS.md; the report prints them beside our rows, labelled with their source."""

from __future__ import annotations

from typing import Any

# Published numbers on the same protocol (full ranking, leave-one-out), from ../shared/BENCHMARKS.md.
PUBLISHED: list[dict[str, Any]] = [
    {
        "dataset": "beauty",
        "model": "SASRec",
        "source": "TIGER paper, NeurIPS 2023",
        "recall@5": 0.0387,
        "ndcg@5": 0.0249,
        "recall@10": 0.0605,
        "ndcg@10": 0.0318,
    },
    {
        "dataset": "beauty",
        "model": "TIGER",
        "source": "TIGER paper",
        "recall@5": 0.0454,
        "ndcg@5": 0.0321,
        "recall@10": 0.0648,
        "ndcg@10": 0.0384,
    },
    {
        "dataset": "beauty",
        "model": "SASRec-CE (max len 50)",
        "source": "phonism/genrec README",
        "recall@10": 0.0851,
        "ndcg@10": 0.0421,
    },
    {
        "dataset": "beauty",
        "model": "HSTU-CE",
        "source": "phonism/genrec README",
        "recall@10": 0.0859,
        "ndcg@10": 0.0441,
    },
    {
        "dataset": "sports",
        "model": "SASRec",
        "source": "TIGER paper",
        "recall@5": 0.0233,
        "ndcg@5": 0.0154,
        "recall@10": 0.0350,
        "ndcg@10": 0.0192,
    },
    {
        "dataset": "sports",
        "model": "TIGER",
        "source": "TIGER paper",
        "recall@5": 0.0264,
        "ndcg@5": 0.0181,
        "recall@10": 0.0400,
        "ndcg@10": 0.0225,
    },
    {
        "dataset": "toys",
        "model": "SASRec",
        "source": "TIGER paper",
        "recall@5": 0.0463,
        "ndcg@5": 0.0306,
        "recall@10": 0.0675,
        "ndcg@10": 0.0374,
    },
    {
        "dataset": "toys",
        "model": "TIGER",
        "source": "TIGER paper",
        "recall@5": 0.0521,
        "ndcg@5": 0.0371,
        "recall@10": 0.0712,
        "ndcg@10": 0.0432,
    },
    {
        "dataset": "ml-100k",
        "model": "LlamaRec (LRURec + Llama-2-7B re-rank of 20)",
        "source": "LlamaRec paper",
        "recall@10": 0.1524,
        "ndcg@10": 0.0759,
    },
]

# Published user-simulator fidelity figures (1:m discrimination accuracy, rating RMSE), beside recgen's rows in
# ``recgen simulate fidelity``; other LLMs, other data and splits: scale, not a like-for-like comparison.
PUBLISHED_SIMULATION: list[dict[str, Any]] = [
    {
        "simulator": "Agent4Rec (gpt-3.5-turbo)",
        "dataset": "ML-1M",
        "source": "as reported by SimUSER (Bougie & Watanabe, 2025); other data and split",
        "m1_accuracy": 0.69,
        "rating_rmse": 0.76,
    },
    {
        "simulator": "SimUSER",
        "dataset": "ML-1M",
        "source": "SimUSER paper; another LLM, other data and split",
        "m1_accuracy": 0.791,
        "rating_rmse": 0.50,
    },
]
