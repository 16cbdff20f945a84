"""Small synthetic datasets with known structure, for fast tests."""

from __future__ import annotations

import numpy as np

from recgen.data.dataset import Dataset, from_columns


def make_cluster_dataset(
    n_clusters: int = 4, users_per_cluster: int = 15, items_per_cluster: int = 8, seed: int = 0
) -> Dataset:
    """Users in clusters; each user interacts with all but two items of its own cluster, in random order.

    Item-item co-occurrence identifies the cluster, so a good model ranks the user's remaining cluster
    items (the held-out ones among them) above every other item.
    """
    rng = np.random.default_rng(seed)
    users, items, ts = [], [], []
    t = 0
    for c in range(n_clusters):
        cluster_items = [f"i{c}_{j}" for j in range(items_per_cluster)]
        for u in range(users_per_cluster):
            keep = rng.choice(items_per_cluster, size=items_per_cluster - 2, replace=False)
            for j in keep:
                users.append(f"u{c}_{u}")
                items.append(cluster_items[j])
                ts.append(t)
                t += 1
    order = rng.permutation(len(users))  # shuffle file order; timestamps still give the true order
    return from_columns(
        np.array(users)[order],
        np.array(items)[order],
        np.array(ts, dtype=float)[order],
        ratings=rng.integers(1, 6, size=len(users)).astype(float),
        name="clusters",
    )


def make_tiny_dataset(seed: int = 0) -> Dataset:
    """The default tiny dataset of the conformance suite (60 users, 32 items, well under a second to fit)."""
    return make_cluster_dataset(n_clusters=4, users_per_cluster=15, items_per_cluster=8, seed=seed)


WORDS = ["apple", "river", "stone", "cloud", "ember", "maple", "orbit", "pixel"]


def make_titled_dataset(seed: int = 0) -> Dataset:
    """The tiny dataset with an item table of word titles (``"river stone 2"``), for models that prompt with
    titles (the LLM recommenders); the interactions are the tiny dataset's."""
    import pyarrow as pa

    base = make_tiny_dataset(seed)
    ids = list(base.items.ids)
    titles = [f"{WORDS[i % len(WORDS)]} {WORDS[(i // len(WORDS)) % len(WORDS)]} {i}" for i in range(len(ids))]
    return from_columns(
        base.users.external(base.user_ids),
        base.items.external(base.item_ids),
        base.timestamps,
        ratings=base.ratings,
        item_table=pa.table({"item_id": ids, "title": titles}),
        name="clusters-titled",
    )


def make_cycle_dataset(n_users: int = 80, n_items: int = 12, length: int = 10, seed: int = 0) -> Dataset:
    """Each user walks a fixed cycle of items from a random start: the next item is always determined."""
    rng = np.random.default_rng(seed)
    users, items, ts = [], [], []
    for u in range(n_users):
        start = rng.integers(n_items)
        for t in range(length):
            users.append(f"u{u}")
            items.append(f"i{(start + t) % n_items}")
            ts.append(1000.0 * t)
    return from_columns(users, items, ts)


def make_scale_dataset(
    n_interactions: int,
    n_items: int,
    *,
    mean_length: float = 20.0,
    zipf: float = 1.0,
    topic_size: int = 100,
    mean_session: float = 5.0,
    seed: int = 0,
) -> Dataset:
    """A seeded synthetic dataset of any size with power-law popularity and session structure (for scale
    measurements; labelled synthetic in its name and meta).

    Item popularity follows Zipf's law with exponent ``zipf`` over a random order of the items; items fall into
    random topics of ``topic_size``; a user's sequence is a run of sessions (geometric lengths, mean
    ``mean_session``), each drawing one topic by its popularity and then items of that topic by theirs. User
    lengths are log-normal with mean ``mean_length`` (at least 3), scaled to sum to ``n_interactions``. Built with
    numpy in a few passes over the rows (50M rows: about a minute, 2 GB)."""
    from recgen.data.vocabulary import Vocabulary

    rng = np.random.default_rng(seed)
    pop = 1.0 / np.arange(1, n_items + 1, dtype=np.float64) ** zipf
    pop = pop[rng.permutation(n_items)]  # popularity of item i (0-based), in a random order
    topic = rng.permutation(n_items) // topic_size  # item -> topic
    n_topics = int(topic.max()) + 1
    order = np.argsort(topic, kind="stable")  # items grouped by topic
    tp = np.bincount(topic, weights=pop, minlength=n_topics)
    starts = np.r_[0, np.cumsum(np.bincount(topic, minlength=n_topics))]
    # topic k's items have keys k + (their cumulative share within k): one searchsorted draws an item of a topic
    key = np.cumsum(pop[order] / tp[topic[order]])
    n_users = max(int(n_interactions // mean_length), 1)
    exact = rng.lognormal(0.0, 0.8, n_users)
    exact *= n_interactions / exact.sum()
    lengths = np.floor(exact).astype(np.int64)
    short = n_interactions - int(lengths.sum())  # the floors' shortfall: one more for the largest remainders
    lengths[np.argsort(lengths - exact, kind="stable")[:short]] += 1
    lengths = np.maximum(lengths, 3)
    excess = int(lengths.sum()) - n_interactions
    while excess > 0:  # the raise to 3 is taken back one interaction at a time from the longest users
        longest = np.argsort(-lengths, kind="stable")[:excess]
        longest = longest[lengths[longest] > 3]
        lengths[longest] -= 1
        excess -= len(longest)
    n = int(lengths.sum())
    new_session = rng.random(n) < 1.0 / mean_session
    new_session[np.r_[0, np.cumsum(lengths)[:-1]]] = True  # a user starts with a session
    session = np.cumsum(new_session) - 1
    session_topic = rng.choice(n_topics, size=int(session[-1]) + 1, p=tp / tp.sum())
    t = session_topic[session]
    picked = np.searchsorted(key, t + rng.random(n), side="right")
    picked = np.clip(picked, starts[t], starts[t + 1] - 1)  # float rounding at a topic's end stays in the topic
    items = order[picked] + 1
    users = np.repeat(np.arange(1, n_users + 1), lengths)
    ts = np.arange(n, dtype=np.float64) - np.repeat(np.r_[0, np.cumsum(lengths)[:-1]], lengths)
    used = np.unique(items)
    ds = Dataset(
        user_ids=users,
        item_ids=items,
        timestamps=ts,
        users=Vocabulary(f"u{i}" for i in range(1, n_users + 1)),
        items=Vocabulary(f"i{i}" for i in range(1, n_items + 1)),
        name=f"synthetic-{n // 1_000_000 or n}{'M' if n >= 1_000_000 else ''}x{n_items}",
        meta={
            "synthetic": True,
            "generator": "recgen.testing.synthetic.make_scale_dataset",
            "params": {"n_interactions": n_interactions, "n_items": n_items, "mean_length": mean_length,
                       "zipf": zipf, "topic_size": topic_size, "mean_session": mean_session, "seed": seed},
            "items_with_interactions": int(len(used)),
            "timestamp_source": "position",
        },
    )  # fmt: skip
    return ds
