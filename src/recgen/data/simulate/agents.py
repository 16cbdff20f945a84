"""Simulated users built from real users' training interactions (Agent4Rec, Zhang et al., SIGIR 2024).

An agent stands for one real user and knows only that user's *training* interactions: what they liked and
disliked (titles and metadata), and three traits computed from the data as Agent4Rec does, each a tertile over the
users (low / medium / high):

- **activity**: how many items the user interacted with (an active user browses more pages before leaving);
- **conformity**: how close the user's ratings are to the items' average ratings (mean absolute deviation, low
  deviation = high conformity; without ratings, how popular the items the user picked are);
- **diversity**: how many distinct genres or categories the user's items span.

The agent's memory (what it was shown, watched, rated and said) grows during a simulation; it starts empty.

Where recgen differs from Agent4Rec: the profile holds item ids, titles and metadata rather than an LLM-written
taste summary (an LLM profile from the augmentation job can be added as ``profile_text``), and the traits are
computed on the training part of a recorded split, so no held-out interaction reaches an agent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recgen.data.dataset import Dataset, title_map
from recgen.errors import DataError

TRAIT_LEVELS = ("low", "medium", "high")


@dataclass
class AgentProfile:
    """One simulated user (see the module docstring); items are dense ids of the training data."""

    user: str  # the real user's external id
    dense: int  # its dense id in the training data
    history: np.ndarray  # chronological training items
    liked: list[int]  # rated at least the like threshold (every item where the data has no ratings)
    disliked: list[int]  # rated at most the dislike threshold
    mean_rating: float | None
    traits: dict[str, str]  # activity / conformity / diversity -> low | medium | high
    trait_values: dict[str, float]
    profile_text: str = ""  # an LLM-written taste profile, where one was generated
    memory: list[dict[str, Any]] = field(default_factory=list)

    @property
    def pages_budget(self) -> int:
        """Pages the agent is willing to browse, by activity (Agent4Rec's active users browse longer)."""
        return {"low": 2, "medium": 4, "high": 6}[self.traits["activity"]]


def item_tags(ds: Dataset) -> list[set[str]]:
    """Per dense item (index 0 = padding): its genres / categories / attribute values as strings."""
    tags: list[set[str]] = [set() for _ in range(ds.items.size)]
    table = ds.item_table
    if table is None:
        return tags
    fields = [c for c in table.column_names[1:] if c in ("genres", "categories", "category", "attributes", "brand")]
    ids = [str(v) for v in table.column(0).to_pylist()]
    dense = ds.items.lookup(ids, default=0)
    for name in fields:
        for d, value in zip(dense, table.column(name).to_pylist(), strict=True):
            if d <= 0 or value is None:
                continue
            values = value if isinstance(value, list | tuple) else [value]
            tags[d].update(f"{name}:{v}" for v in values if v not in (None, ""))
    return tags


def _tertiles(values: np.ndarray) -> list[str]:
    """low / medium / high by the values' tertiles (ties go to the lower level)."""
    lo, hi = np.quantile(values, [1 / 3, 2 / 3]) if len(values) else (0.0, 0.0)
    return [TRAIT_LEVELS[0] if v <= lo else TRAIT_LEVELS[1] if v <= hi else TRAIT_LEVELS[2] for v in values]


def build_agents(
    train: Dataset,
    users: Sequence[str] | None = None,
    *,
    like_threshold: float = 4.0,
    dislike_threshold: float = 2.0,
) -> list[AgentProfile]:
    """Agents for ``users`` (external ids; all training users when None), built from ``train`` only.

    Pass the training part of a split (``split.train``): that is the only data an agent sees.
    """
    if train.n_interactions == 0:
        raise DataError("cannot build agents from an empty training set")
    indptr, items, _ = train.user_timelines()
    order = train.chronological_order()
    ratings = train.ratings[order] if train.ratings is not None else None
    n = train.n_users
    lengths = np.diff(indptr)[1:].astype(np.float64)
    counts = train.item_counts().astype(np.float64)
    tags = item_tags(train)
    item_mean = None
    if train.ratings is not None:
        sums = np.bincount(train.item_ids, weights=train.ratings, minlength=train.items.size)
        item_mean = sums / np.maximum(counts, 1)
    deviation, spread = np.zeros(n), np.zeros(n)
    for u in range(1, n + 1):
        seq = items[indptr[u] : indptr[u + 1]]
        if len(seq) == 0:
            continue
        if ratings is not None and item_mean is not None:
            deviation[u - 1] = float(np.mean(np.abs(ratings[indptr[u] : indptr[u + 1]] - item_mean[seq])))
        else:  # conformity without ratings: how far from the most popular items the user's picks are
            deviation[u - 1] = -float(np.mean(np.log1p(counts[seq])))
        spread[u - 1] = len(set().union(*(tags[i] for i in seq))) if any(tags[i] for i in seq) else len(set(seq))
    activity, conformity_low_dev, diversity = _tertiles(lengths), _tertiles(deviation), _tertiles(spread)
    flip = {"low": "high", "medium": "medium", "high": "low"}  # low deviation = high conformity
    wanted = range(1, n + 1) if users is None else [train.users.index(u, default=0) for u in users]
    agents = []
    for u in wanted:
        if u <= 0:
            raise DataError("an agent can only stand for a user of the training data")
        seq = items[indptr[u] : indptr[u + 1]]
        r = ratings[indptr[u] : indptr[u + 1]] if ratings is not None else None
        liked = (
            [int(i) for i, x in zip(seq, r, strict=True) if x >= like_threshold]
            if r is not None
            else list(map(int, seq))
        )
        disliked = [int(i) for i, x in zip(seq, r, strict=True) if x <= dislike_threshold] if r is not None else []
        agents.append(
            AgentProfile(
                user=str(train.users.external(np.asarray([u]))[0]),
                dense=int(u),
                history=np.asarray(seq, dtype=np.int64),
                liked=liked,
                disliked=disliked,
                mean_rating=float(np.mean(r)) if r is not None and len(r) else None,
                traits={
                    "activity": activity[u - 1],
                    "conformity": flip[conformity_low_dev[u - 1]],
                    "diversity": diversity[u - 1],
                },
                trait_values={
                    "interactions": float(lengths[u - 1]),
                    "rating_deviation": float(deviation[u - 1]),
                    "distinct_tags": float(spread[u - 1]),
                },
            )
        )
    return agents


class ItemText:
    """Titles, years and tags of a catalogue, read once, for prompts and reasons."""

    def __init__(self, train: Dataset) -> None:
        from recgen.llm.safety import neutralize

        table = train.item_table
        titles = title_map(table)
        years: dict[str, str] = {}
        if table is not None and "year" in table.column_names:
            years = {str(k): str(v) for k, v in zip(table.column(0).to_pylist(), table.column("year").to_pylist(),
                                                    strict=True) if v not in (None, "")}  # fmt: skip
        self.tags = item_tags(train)
        ext = [""] + [str(x) for x in train.items.external(np.arange(1, train.items.size))]
        self.lines = []
        for i, e in enumerate(ext):
            words = [
                t.split(":", 1)[1] for t in sorted(self.tags[i]) if not t.startswith("attributes:")
            ]  # ids: no words
            extra = "; ".join(x for x in (years.get(e, ""), ", ".join(words)[:80]) if x)
            self.lines.append(neutralize(titles.get(e, e))[0] + (f" ({extra})" if extra else ""))

    def describe(self, items: Sequence[int], limit: int = 8) -> list[str]:
        return [self.lines[int(i)] for i in list(items)[:limit]]


_TEXTS: dict[int, tuple[Dataset, ItemText]] = {}


def item_text(train: Dataset) -> ItemText:
    """The ItemText of a dataset, built once per dataset object."""
    held = _TEXTS.get(id(train))
    if held is None or held[0] is not train:
        if len(_TEXTS) > 8:
            _TEXTS.clear()
        held = _TEXTS[id(train)] = (train, ItemText(train))
    return held[1]


def describe_items(train: Dataset, items: Sequence[int], *, limit: int = 8) -> list[str]:
    """``title (year; tags)`` lines for dense items, for prompts and reasons (neutralised text: data, not
    instructions)."""
    return item_text(train).describe(items, limit)
