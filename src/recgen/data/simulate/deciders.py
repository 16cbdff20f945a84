"""How a simulated user decides: watch or skip an item, how to rate it, and why.

Five deciders share one interface (``watch_probs``, ``ratings``, ``reason``), so every study can put them side by
side:

- ``random``: watch with probability 0.5, rate uniformly (the floor);
- ``popularity``: the item's popularity percentile in the training data as the watch probability, its mean
  training rating as the rating;
- ``grounded`` (the default): a logistic model fitted on training data only, over features of the item against the
  agent's history (largest and mean item-item cosine similarity in the training co-occurrences, tag overlap with
  the liked items, popularity), trained to tell each user's last training item from an unseen item drawn
  uniformly and one drawn in proportion to popularity (what recommenders show: with uniform negatives alone the
  model learns "popular = watched" and watches nearly every page), over co-occurrences without those last items,
  so a positive's similarity is not its own interaction; ratings from a kNN baseline predictor (global mean +
  user and item biases, regularised, plus the similarity-weighted residuals of the agent's 20 most similar rated
  training items; Koren, 2008) fitted on training ratings; reasons cite the most similar liked item, which exists;
- ``llm``: the LLM alone: the log-odds of " Yes" against " No" to "would you watch it?" (verbalizer scoring),
  Platt-scaled on 100 of those training pairs (the raw probability of a small model sits on one side of 0.5), the
  expected value of its next-token distribution over "1" ... "5" (after "Rating: ") as the rating, a sentence as
  the reason (generated under a JSON schema);
- ``llm+grounded``: a logistic regression over the grounded logit and the LLM's log-odds fitted on those training
  pairs; the grounded ratings; the LLM's reasons.

The embedded 135M model is near chance on its own, so ``grounded`` is the default; the LLM rows are measured
beside it (``recgen simulate fidelity``) and run unchanged against a larger model on an OpenAI-compatible server.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from recgen.data.dataset import Dataset, title_map
from recgen.data.matrix import interaction_matrix
from recgen.data.simulate.agents import AgentProfile, describe_items, item_tags
from recgen.errors import ConfigError
from recgen.llm.base import EndOfTextError
from recgen.ops.logistic import fit_logistic

DECIDERS = ("random", "popularity", "grounded", "llm", "llm+grounded")
LIKE = 4.0  # a rating at least this is a liked item (build_agents' like_threshold)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


class Decider:
    name = ""

    def watch_probs(self, agent: AgentProfile, items: Sequence[int]) -> np.ndarray:
        raise NotImplementedError

    def ratings(self, agent: AgentProfile, items: Sequence[int]) -> np.ndarray:
        raise NotImplementedError

    def reason(self, agent: AgentProfile, item: int, watched: bool) -> str:
        return "watched" if watched else "skipped"


class RandomDecider(Decider):
    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def _rng(self, agent: AgentProfile, items: Sequence[int], salt: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, agent.dense, salt, *map(int, items)])

    def watch_probs(self, agent, items):
        return self._rng(agent, items, 1).random(len(items))

    def ratings(self, agent, items):
        return self._rng(agent, items, 2).integers(1, 6, len(items)).astype(np.float64)


class PopularityDecider(Decider):
    name = "popularity"

    def __init__(self, train: Dataset) -> None:
        counts = train.item_counts().astype(np.float64)
        order = np.argsort(np.argsort(counts[1:], kind="stable"), kind="stable")
        self.percentile = np.r_[0.0, (order + 0.5) / max(len(order), 1)]
        self.item_mean = _item_means(train)

    def watch_probs(self, agent, items):
        return self.percentile[np.asarray(items, dtype=np.int64)]

    def ratings(self, agent, items):
        return self.item_mean[np.asarray(items, dtype=np.int64)]


def _item_means(train: Dataset) -> np.ndarray:
    if train.ratings is None:
        return np.full(train.items.size, 4.0)
    counts = train.item_counts().astype(np.float64)
    sums = np.bincount(train.item_ids, weights=train.ratings, minlength=train.items.size)
    mean = float(train.ratings.mean())
    return (sums + 5 * mean) / (counts + 5)  # shrunk towards the global mean


class GroundedDecider(Decider):
    """The default decider: fitted on training data only (see the module docstring)."""

    name = "grounded"
    FEATURES = ("max_similarity", "mean_similarity_recent", "tag_overlap", "log_popularity")
    NEIGHBOURS, SHRINK = 20, 1.0  # of the rating's neighbourhood term

    def __init__(
        self, train: Dataset, *, seed: int = 0, max_users: int = 5000, l2: float = 1.0, negatives: str = "mixed"
    ) -> None:
        if negatives not in ("uniform", "popularity", "mixed"):
            raise ConfigError(f"negatives must be uniform, popularity or mixed, got {negatives!r}")
        self.train, self.negatives = train, negatives
        x = interaction_matrix(train).astype(np.float64)
        x.data[:] = 1.0
        self.tags = item_tags(train)
        self.titles = title_map(train.item_table)
        # fitted on co-occurrences without each user's last training item (the positive of its pair), so the
        # similarity of a positive is not inflated by the very interaction it stands for; used on all of them
        indptr, items, _ = train.user_timelines()
        last = np.zeros(train.users.size, dtype=np.int64)
        has = np.diff(indptr) > 0
        last[has] = items[indptr[1:][has] - 1]
        held = x.tolil(copy=True)
        for u in np.flatnonzero(last):
            held[u, last[u]] = 0.0
        held = held.tocsr()
        held.eliminate_zeros()
        self._set_similarity(held)
        self._fit_watch(seed, max_users, l2)
        self._set_similarity(x)
        self._fit_ratings()

    def _set_similarity(self, x: sp.csr_matrix) -> None:
        """Item-item cosine similarity of co-occurrence (N+1, N+1) and normalised log popularity from ``x``."""
        counts = np.asarray(x.sum(axis=0)).ravel()
        norms = np.sqrt(counts)
        norms[norms == 0] = 1.0
        co = (x.T @ x).tocsr()
        co.setdiag(0.0)
        co.eliminate_zeros()
        self.sim = (sp.diags(1.0 / norms) @ co @ sp.diags(1.0 / norms)).tocsr()
        self.log_pop = np.log1p(counts) / max(np.log1p(counts.max()), 1e-9)

    # --------------------------------------------------------------------------------- features
    def features(self, history: np.ndarray, liked: Sequence[int], items: Sequence[int]) -> np.ndarray:
        """(len(items), 4): the FEATURES of each item against a history."""
        items = np.asarray(items, dtype=np.int64)
        out = np.zeros((len(items), len(self.FEATURES)))
        if len(history):
            s = self.sim[items][:, np.asarray(history, dtype=np.int64)].toarray()  # (I, H)
            out[:, 0] = s.max(axis=1)
            out[:, 1] = s[:, -10:].mean(axis=1)
        liked_tags = set().union(*(self.tags[int(i)] for i in liked)) if len(liked) else set()
        for row, i in enumerate(items):
            own = self.tags[i]
            out[row, 2] = len(own & liked_tags) / len(own) if own else 0.0
        out[:, 3] = self.log_pop[items]
        return out

    def _fit_watch(self, seed: int, max_users: int, l2: float) -> None:
        """Logistic regression (Newton steps, L2) on (last training item vs unseen item) pairs, one per kind of
        negative per user (see the module docstring)."""
        rng = np.random.default_rng(seed)
        indptr, items, _ = self.train.user_timelines()
        r = self.train.ratings[self.train.chronological_order()] if self.train.ratings is not None else None
        users = np.flatnonzero(np.diff(indptr)[1:] >= 2) + 1
        users = rng.choice(users, min(max_users, len(users)), replace=False) if len(users) else users
        rows, labels, negatives = [], [], []
        n_items = self.train.n_items
        counts = self.train.item_counts().astype(np.float64)
        popular = counts / counts.sum()
        kinds = {"uniform": [None], "popularity": [popular], "mixed": [None, popular]}[self.negatives]
        for u in users:
            seq = items[indptr[u] : indptr[u + 1]]
            history, target = seq[:-1], int(seq[-1])
            seen = set(map(int, seq))
            liked = history if r is None else history[r[indptr[u] : indptr[u + 1] - 1] >= LIKE]
            for draw in kinds:  # one negative of each kind, the positive repeated to balance them
                negative = 0
                while negative == 0 or negative in seen:
                    negative = (
                        int(rng.choice(n_items + 1, p=draw)) if draw is not None else int(rng.integers(1, n_items + 1))
                    )
                rows.append(self.features(history, liked, [target, negative]))
                labels += [1.0, 0.0]
                negatives.append(negative)
        # (user, positive) of each pair, aligned with pair_features' row pairs and pair_negatives
        self.pairs = [(int(u), int(items[indptr[u + 1] - 1])) for u in users for _ in kinds]
        self.pair_features = np.vstack(rows) if rows else np.zeros((0, len(self.FEATURES)))
        self.pair_labels = np.asarray(labels)
        self.pair_negatives = negatives
        self.weights = fit_logistic(self.pair_features, self.pair_labels, l2)
        self.fit_pairs = len(labels)

    def pair_logits(self) -> np.ndarray:
        """The model's logits on its own fitting pairs (features without the positive's interaction)."""
        return np.c_[self.pair_features, np.ones(len(self.pair_features))] @ self.weights

    def _fit_ratings(self) -> None:
        """Baseline predictor mu + b_u + b_i (regularised alternating least squares, a few passes)."""
        t = self.train
        self.has_ratings = t.ratings is not None
        if not self.has_ratings:
            return
        r = t.ratings.astype(np.float64)
        self.mu = float(r.mean())
        self.bu = np.zeros(t.users.size)
        self.bi = np.zeros(t.items.size)
        for _ in range(5):
            resid = r - self.mu - self.bu[t.user_ids]
            self.bi = np.bincount(t.item_ids, resid, t.items.size) / (
                np.bincount(t.item_ids, minlength=t.items.size) + 10
            )
            resid = r - self.mu - self.bi[t.item_ids]
            self.bu = np.bincount(t.user_ids, resid, t.users.size) / (
                np.bincount(t.user_ids, minlength=t.users.size) + 5
            )
        # what the baseline leaves unexplained of each training rating, by user, for the neighbourhood term
        resid = r - self.mu - self.bu[t.user_ids] - self.bi[t.item_ids]
        order = np.argsort(t.user_ids, kind="stable")
        self.res_indptr = np.r_[0, np.cumsum(np.bincount(t.user_ids, minlength=t.users.size))]
        self.res_items, self.res_values = t.item_ids[order], resid[order]

    # --------------------------------------------------------------------------------- decisions
    def watch_probs(self, agent, items):
        f = self.features(agent.history, agent.liked, items)
        return 1.0 / (1.0 + np.exp(-(np.c_[f, np.ones(len(f))] @ self.weights)))

    def ratings(self, agent, items):
        items = np.asarray(items, dtype=np.int64)
        if not self.has_ratings:
            return np.full(len(items), 4.0)
        base = self.mu + self.bu[agent.dense] + self.bi[items]
        lo, hi = self.res_indptr[agent.dense], self.res_indptr[agent.dense + 1]
        if hi > lo:  # kNN baseline (Koren, 2008): the similar rated items' residuals, top NEIGHBOURS by similarity
            s = self.sim[items][:, self.res_items[lo:hi]].toarray()
            if s.shape[1] > self.NEIGHBOURS:
                s[s < -np.partition(-s, self.NEIGHBOURS - 1, axis=1)[:, [self.NEIGHBOURS - 1]]] = 0.0
            base = base + (s @ self.res_values[lo:hi]) / (s.sum(axis=1) + self.SHRINK)
        return np.clip(base, 1.0, 5.0)

    def reason(self, agent, item, watched):
        """A sentence citing the liked training item most similar to ``item`` (an item that exists)."""
        liked = agent.liked or list(map(int, agent.history))
        if not liked:
            return "I know nothing like it" if not watched else "it looked popular"
        sims = self.sim[int(item)][:, np.asarray(liked, dtype=np.int64)].toarray().ravel()
        best = liked[int(np.argmax(sims))]
        name = describe_items(self.train, [best], limit=1)[0]
        return f"it is like {name}, which I liked" if watched else f"nothing in it like {name}, which I liked"


class LLMDecider(Decider):
    """The LLM alone (see the module docstring): one forward pass per yes/no decision and per rating."""

    name = "llm"
    PROMPT_VERSION = "agent-v1"

    def __init__(self, train: Dataset, llm: Any, *, max_reason_tokens: int = 48) -> None:
        self.train, self.llm, self.max_reason_tokens = train, llm, max_reason_tokens
        self.calls = {"yes_no": 0, "rating": 0, "reason": 0, "no_view": 0, "prompt_tokens": 0, "completion_tokens": 0}
        self._memo: dict[tuple[str, str, int], float] = {}  # (kind, persona, item): asked once per run
        self.platt: np.ndarray | None = None  # (a, b) of Platt scaling, once calibrated

    def _persona(self, agent: AgentProfile) -> str:
        liked = "; ".join(describe_items(self.train, agent.liked[-8:] or agent.history[-8:]))
        disliked = "; ".join(describe_items(self.train, agent.disliked[-4:])) or "nothing in particular"
        traits = ", ".join(f"{k} {v}" for k, v in agent.traits.items())
        extra = f"\nYour taste: {agent.profile_text}" if agent.profile_text else ""
        return (
            f"You are a user of a recommendation site ({traits}). You liked: {liked}. You disliked: {disliked}."
            f"{extra}\n"
        )

    def _ask(self, kind: str, agent: AgentProfile, items: Sequence[int]) -> np.ndarray:
        """Per item: the log-odds of " Yes" against " No" (watch) or the expected rating (rating); remembered per
        persona and item, so a decider asks each question once."""
        persona = self._persona(agent)
        lines = describe_items(self.train, items, limit=len(items))
        out = []
        for i, line in zip(items, lines, strict=True):
            key = (kind, persona, int(i))
            if key not in self._memo:
                if kind == "watch":
                    try:
                        lp = self.llm.next_token_logprobs(f"{persona}Would you watch {line}? Answer Yes or No.\n"
                                                          "Answer:", [" Yes", " No"])  # fmt: skip
                    except EndOfTextError:  # a served model that would say nothing gives no view (counted)
                        lp = [np.nan, np.nan]
                        self.calls["no_view"] += 1
                    z = float(lp[0] - lp[1])  # a server's top-k may lack a label: -inf, so clip (nan: no view)
                    self._memo[key] = 0.0 if np.isnan(z) else float(np.clip(z, -20.0, 20.0))
                else:
                    # the space ends the prompt: " 1" .. " 5" share their first token " "
                    try:
                        lp = np.asarray(self.llm.next_token_logprobs(
                            f"{persona}You watched {line}. Rate it from 1 (bad) to 5 (great).\nRating: ",
                            ["1", "2", "3", "4", "5"]))  # fmt: skip
                    except EndOfTextError:
                        lp = np.full(5, -np.inf)
                        self.calls["no_view"] += 1
                    p = np.exp(lp - lp.max()) if np.isfinite(lp).any() else np.ones(5)
                    self._memo[key] = float((p / p.sum()) @ np.arange(1, 6))
                self.calls["yes_no" if kind == "watch" else "rating"] += 1
            out.append(self._memo[key])
        return np.asarray(out)

    def log_odds(self, agent: AgentProfile, items: Sequence[int]) -> np.ndarray:
        return self._ask("watch", agent, items)

    def calibrate(self, grounded: GroundedDecider, n_pairs: int = 100) -> None:
        """Platt scaling of the yes/no log-odds on training pairs (a user's last training item against a random
        unseen one, the user's agent built without that item): the raw verbalised probability of a small model
        sits on one side of 0.5, so "would watch" needs a threshold learnt from training data, never from test."""
        agents, pos, neg = calibration_agents(grounded, n_pairs)
        z = np.concatenate([self.log_odds(a, [p, n]) for a, p, n in zip(agents, pos, neg, strict=True)])
        self.calibration_z = z
        self.platt = fit_logistic(z[:, None], np.tile([1.0, 0.0], len(agents)), l2=1e-3)
        self.calibration_pairs = len(agents)

    def watch_probs(self, agent, items):
        z = self.log_odds(agent, items)
        if self.platt is None:
            return _sigmoid(z)
        return _sigmoid(self.platt[0] * z + self.platt[1])

    def ratings(self, agent, items):
        return self._ask("rating", agent, items)

    def reason(self, agent, item, watched):
        line = describe_items(self.train, [item], limit=1)[0]
        verb = "watched" if watched else "skipped"
        schema = {"type": "object", "properties": {"reason": {"type": "string", "maxLength": 120}},
                  "required": ["reason"]}  # fmt: skip
        g = self.llm.chat(
            f"{self._persona(agent)}You {verb} {line}. Say in one short sentence why.",
            max_tokens=self.max_reason_tokens, temperature=0.0, json_schema=schema,
        )  # fmt: skip
        self.calls["reason"] += 1
        self.calls["prompt_tokens"] += g.prompt_tokens
        self.calls["completion_tokens"] += g.completion_tokens
        try:
            return str(g.json().get("reason", "")).strip()[:200] or verb
        except Exception:  # noqa: BLE001 - a malformed generation: logged as such, never dropped
            return f"{verb} (the model's reason was not valid JSON)"


class CombinedDecider(Decider):
    """The LLM and the grounded model combined by a logistic regression over the grounded logit and the LLM's
    yes/no log-odds, fitted on the same training pairs as the LLM's calibration; the grounded model's ratings (the
    small LLM's expected rating barely moves: measured in the fidelity study), the LLM's reasons."""

    name = "llm+grounded"

    def __init__(self, grounded: GroundedDecider, llm: LLMDecider, n_pairs: int = 100) -> None:
        self.grounded, self.llm = grounded, llm
        if llm.platt is None:
            llm.calibrate(grounded, n_pairs)
        n = llm.calibration_pairs
        g = grounded.pair_logits()[: 2 * n]
        self.weights = fit_logistic(np.c_[g, llm.calibration_z], np.tile([1.0, 0.0], n), l2=1e-3)

    def watch_probs(self, agent, items):
        f = self.grounded.features(agent.history, agent.liked, items)
        g = np.c_[f, np.ones(len(f))] @ self.grounded.weights
        z = self.llm.log_odds(agent, items)
        return _sigmoid(np.c_[g, z, np.ones(len(z))] @ self.weights)

    def ratings(self, agent, items):
        return self.grounded.ratings(agent, items)

    def reason(self, agent, item, watched):
        return self.llm.reason(agent, item, watched)


def calibration_agents(grounded: GroundedDecider, n_pairs: int) -> tuple[list[AgentProfile], list[int], list[int]]:
    """Agents of the grounded model's first ``n_pairs`` fitting users, built from the training data without each
    user's last training item, with that item (positive) and the pair's unseen item (negative)."""
    from recgen.data.simulate.agents import build_agents

    train = grounded.train
    order = train.chronological_order()
    indptr, _, _ = train.user_timelines()
    keep = np.ones(train.n_interactions, dtype=bool)
    lengths = np.diff(indptr)
    last_rows = order[indptr[1:][lengths > 0] - 1]
    keep[last_rows] = False
    held = train.subset(keep)
    chosen = grounded.pairs[:n_pairs]
    users = [str(u) for u in train.users.external(np.asarray([u for u, _ in chosen], dtype=np.int64))]
    agents = build_agents(held, users)
    return agents, [p for _, p in chosen], grounded.pair_negatives[: len(chosen)]


def make_decider(name: str, train: Dataset, *, llm: Any = None, seed: int = 0,
                 grounded: GroundedDecider | None = None, calibration_pairs: int = 100) -> Decider:  # fmt: skip
    """A decider by name (``DECIDERS``); the LLM ones need ``llm``: a ``recgen.llm`` backend, or an
    ``LLMDecider`` already made (its answers and calibration are then shared)."""
    if name not in DECIDERS:
        raise ConfigError(f"unknown decider {name!r}; use one of {', '.join(DECIDERS)}")
    if name == "random":
        return RandomDecider(seed)
    if name == "popularity":
        return PopularityDecider(train)
    g = grounded or GroundedDecider(train, seed=seed)
    if name == "grounded":
        return g
    if llm is None:
        raise ConfigError(f"the {name} decider needs an LLM (e.g. --llm llamacpp:smollm2)")
    dec = llm if isinstance(llm, LLMDecider) else LLMDecider(train, llm)
    if dec.platt is None:
        dec.calibrate(g, calibration_pairs)
    return dec if name == "llm" else CombinedDecider(g, dec)
