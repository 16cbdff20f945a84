"""Top-K recommendation as a task: a fitted model's lists for users or sessions, with item titles and an honest
note where the model fell back to popularity (an unknown user, or a session of unknown items).

The CLI's ``recgen recommend`` prints these; the service will return them. The ranking itself is the model's
``recommend_batch`` (the path the evaluator measures), so what is shown is what was evaluated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from recgen.errors import ConfigError
from recgen.models.base import Recommender, check_k


@dataclass
class TopK:
    """One query's recommendations: ``query`` as given, the items (``item_id``, ``score``, ``title`` where the
    catalogue has one), and what the model knew about the query."""

    query: str
    items: list[dict[str, Any]]
    known_user: bool | None = None  # a user query: whether the model has seen the user (None for a session)
    unknown_items: list[str] = field(default_factory=list)  # a session query: the ids the catalogue lacks
    known_items: int = 0  # a session query: how many of its ids the catalogue has

    @property
    def fallback(self) -> str:
        """Why the list is the popularity ranking, or "" when the model used the query."""
        if self.known_user is False:
            return "unknown user: most popular items"
        if self.known_user is None and self.unknown_items and not self.known_items:
            return "no item of the session is in the catalogue: most popular items"
        return ""

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "fallback": self.fallback}


def recommend_topk(
    model: Recommender,
    *,
    users: Sequence[str] = (),
    sessions: Sequence[Sequence[str]] = (),
    k: int = 10,
    exclude_seen: bool = True,
) -> list[TopK]:
    """Top-k lists for each user id and each session (a list of item ids in time order), users first."""
    k = check_k(k)
    if not users and not sessions:
        raise ConfigError("give at least one user id or one session of item ids")
    queries: list[Any] = [str(u) for u in users] + [list(map(str, s)) for s in sessions]
    recs = model.recommend_batch(queries, k, exclude_seen=exclude_seen)
    titles = model.item_titles()
    out = []
    for q, r in zip(queries, recs, strict=True):
        items = [{**x, **({"title": titles[x["item_id"]]} if x["item_id"] in titles else {})} for x in r.to_list()]
        if isinstance(q, str):
            out.append(TopK(query=q, items=items, known_user=q in model.users_))
        else:
            unknown = [i for i in q if i not in model.items_]
            out.append(TopK(query=",".join(q), items=items, unknown_items=unknown, known_items=len(q) - len(unknown)))
    return out
