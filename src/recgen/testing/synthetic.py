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
