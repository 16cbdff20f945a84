"""The Recommender contract every model obeys, ``Recs``, and atomic checkpoint folders.

A model implements ``_fit(dataset, valid)``, ``_score(user_ids, histories)`` and its state
(``_state``/``_load_state``). The base class does the rest once: vocabulary mapping (the public API speaks
external ids), seen-item exclusion, candidate restriction, deterministic top-k, cold start (an unknown user
with no history gets the training popularity ranking), save/load. Offline evaluation and serving call the same
``score_masked`` path, so what is evaluated is what is served.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from recgen.config import make_config
from recgen.data.dataset import Dataset, title_map
from recgen.errors import ConfigError, DataError, NotFittedError
from recgen.ops.topk import stable_topk


@dataclass(frozen=True)
class Recs:
    """Recommendations for one query: external item ids and scores, best first, at most k."""

    item_ids: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.item_ids)

    def to_list(self) -> list[dict[str, Any]]:
        return [{"item_id": str(i), "score": float(s)} for i, s in zip(self.item_ids, self.scores, strict=True)]


Query = str | int | Sequence[Any] | np.ndarray


def check_device_spec(spec: str) -> None:
    """A ``device`` config must read ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (whether the GPU is there is checked
    when fitting, by ``resolve_device``)."""
    if not isinstance(spec, str) or re.fullmatch(r"cpu|auto|cuda(:\d+)?", spec) is None:
        raise ConfigError(f"device must be cpu, cuda, cuda:N or auto, got {spec!r}")


def resolve_device(spec: str, *, strict: bool = True) -> torch.device:
    """The torch device a ``device`` config names: ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (a GPU when torch sees
    one). ``strict`` (fitting): asking for a GPU torch cannot see is an error; not strict (loading a saved model on
    another machine): falls back to the CPU."""
    check_device_spec(spec)
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(spec)
    if dev.type == "cuda" and not torch.cuda.is_available():
        if strict:
            raise ConfigError(
                f"device={spec!r} but torch {torch.__version__} sees no CUDA GPU; "
                "use device=cpu (or auto), or install a CUDA build of torch on a machine with a GPU"
            )
        return torch.device("cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ConfigError(f"device={spec!r} but torch sees {torch.cuda.device_count()} GPU(s)")
    return dev


def check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ConfigError(f"k must be an integer >= 1, got {k!r}")
    return int(k)


def mask_scores(scores: torch.Tensor, histories: Sequence[np.ndarray], exclude_seen: bool) -> torch.Tensor:
    """Set the padding column and (optionally) every history item to -inf, in place."""
    scores[:, 0] = -torch.inf
    if exclude_seen:
        lengths = [len(h) for h in histories]
        if sum(lengths):
            rows = torch.from_numpy(np.repeat(np.arange(len(histories)), lengths))
            cols = torch.from_numpy(np.concatenate([np.asarray(h, dtype=np.int64) for h in histories]))
            scores[rows, cols] = -torch.inf
    return scores


@dataclass
class ScoreStream:
    """A batch of users' scores made a block of items at a time, for catalogues whose (users x items) score
    matrix should never exist whole (``Recommender.score_stream``).

    ``block(lo, hi)`` -> raw scores (B, hi - lo) of items ``lo .. hi - 1`` (a new tensor, column 0 = padding);
    ``at(items)`` -> raw scores (B, T) of the given item ids (B, T), made the same way, for each row's targets."""

    block: Callable[[int, int], torch.Tensor]
    at: Callable[[torch.Tensor], torch.Tensor]
    n_cols: int


class Recommender:
    """Base class of every recommender.

    Subclasses set ``name`` and ``Config`` (a frozen, kw-only dataclass whose fields all have defaults) and
    implement ``_fit``, ``_score``, ``_state`` and ``_load_state``. Everything the bench runner, the evaluator
    and the service read from a model is declared here, with its default.
    """

    name: ClassVar[str] = ""
    Config: ClassVar[type] = object
    batch_size_recommend: ClassVar[int] = 256
    uses_timestamps: ClassVar[bool] = False  # time-aware models receive history timestamps in _score
    # _score returns a tensor made by that call (no view of model state), so score may mask it in place without
    # the defensive copy (a (B, N) pass per batch)
    score_is_fresh: ClassVar[bool] = False
    # fitting chooses something on validation (an epoch, a step count): bench evaluates validation; zero-shot
    # models (nothing to choose) skip that costly pass
    selects_on_valid: ClassVar[bool] = True
    # config fields read only when scoring (e.g. TIGER's beam): ``score(..., decode={field: value})`` changes them
    # for one call on the same fitted weights; _score then receives ``decode=`` the config to read
    decode_fields: ClassVar[tuple[str, ...]] = ()
    # trained by recgen's trainer: ``configure_run`` keeps last.pt/best.pt in a run folder and can resume
    resumable: ClassVar[bool] = False
    # scores an item from its content, so an item with no training interaction can rank above chance (the
    # item cold-start protocol records it beside the cold users' metrics); a model whose config decides it
    # (SASRec / HSTU with text-only items) overrides it with a property
    scores_unseen_items: ClassVar[bool] = False
    # what fitting recorded, for results files (models that train set them in fit)
    best_epoch_: int | None = None  # the epoch validation chose
    stop_reason_: str = ""  # why training stopped (patience, epochs, time budget)
    train_log_: list[dict[str, Any]] | None = None  # one entry per epoch (loss, samples/s, validation)
    train_speed_: dict[str, float] | None = None  # training samples/s, FLOPs, achieved GFLOP/s
    resumed_from_epoch_: int = 0  # epochs an interrupted run had done before this fit took over
    resumed_wall_seconds_: float = 0.0  # its fit time

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        if config is not None and not isinstance(config, self.Config):
            raise ConfigError(f"config must be a {self.Config.__name__}, got {type(config).__name__}")
        self.config = make_config(self.Config, overrides, base=config)
        self.fitted_ = False

    # ------------------------------------------------------------------------------------- fitting
    def fit(self, dataset: Dataset, *, valid: Any = None) -> Recommender:
        """Fit on a Dataset's interactions; ``valid`` (an EvalSet) enables model selection where the model has it."""
        if not isinstance(dataset, Dataset):
            raise DataError(f"fit expects a recgen Dataset, got {type(dataset).__name__}")
        if dataset.n_interactions == 0:
            raise DataError("cannot fit on an empty dataset (0 interactions)")
        self.users_ = dataset.users
        self.items_ = dataset.items
        self.n_users_ = dataset.n_users
        self.n_items_ = dataset.n_items
        self.item_counts_ = dataset.item_counts()
        self.hist_indptr_, self.hist_items_, self.hist_ts_ = dataset.user_timelines()
        self.dataset_fingerprint_ = dataset.fingerprint()
        self.item_table_ = dataset.item_table
        self._fit(dataset, valid)
        self.fitted_ = True
        return self

    def _fit(self, dataset: Dataset, valid: Any) -> None:
        raise NotImplementedError

    def _score(self, user_ids: np.ndarray, histories: Sequence[np.ndarray]) -> torch.Tensor:
        """Scores (B, n_items + 1) for dense users (0 = unknown) with chronological dense histories.

        Models with ``uses_timestamps`` also get ``timestamps`` (a list aligned with ``histories``); models with
        ``decode_fields`` get ``decode=``, the config to read them from (``decode_config``).
        """
        raise NotImplementedError

    def _state(self) -> dict[str, np.ndarray]:
        return {}

    def _load_state(self, tensors: dict[str, np.ndarray]) -> None:
        pass

    def _check_fitted(self) -> None:
        if not getattr(self, "fitted_", False):
            raise NotFittedError(f"{type(self).__name__} is not fitted yet; call fit(dataset) or load(path) first")

    # ---------------------------------------------------------------------------- declared hooks
    def configure_run(
        self, run_dir: str | Path | None = None, *, resume: bool = False, on_epoch_end: Any = None
    ) -> Recommender:
        """Where training keeps its checkpoints, so that a killed run can resume (``resumable`` models only)."""
        raise ConfigError(f"{self.name} is not trained by recgen's trainer: it has no run folder to keep or resume")

    def run_info(self) -> dict[str, Any]:
        """What a results file records about this model's run beyond metrics (LLM file and SHA-256, decoding
        counters such as invalid beams or out-of-catalogue lines, choices made on validation)."""
        return {}

    def reset_stats(self) -> None:
        """Zero the counters ``run_info`` reports, so they cover one evaluation (bench calls it before test)."""

    def decoded_with(self) -> dict[str, Any]:
        """The decode-time fields of the last scoring call (the fitted config's before any), for ``run_info``."""
        return getattr(self, "last_decode_", None) or {f: getattr(self.config, f) for f in self.decode_fields}

    def non_embedding_parameters(self) -> int | None:
        """Parameters outside embedding tables (the scaling study's x axis); None for models without a network."""
        return None

    def decode_config(self, decode: Mapping[str, Any] | None = None) -> Any:
        """The config scoring reads: the fitted config with ``decode`` changes (only ``decode_fields``) applied."""
        if not decode:
            return self.config
        bad = sorted(set(decode) - set(self.decode_fields))
        if bad:
            allowed = ", ".join(self.decode_fields) or "it has none"
            raise ConfigError(
                f"decode options can only change fields {type(self).__name__} reads when recommending ({allowed}), "
                f"not {', '.join(bad)}; fit another model to change them"
            )
        return make_config(self.Config, dict(decode), base=self.config)

    # ------------------------------------------------------------------------------------- scoring
    def train_history(self, user: int) -> np.ndarray:
        """The chronological training items of a dense user (empty for 0 / unknown)."""
        if user <= 0 or user > self.n_users_:
            return np.zeros(0, dtype=np.int64)
        return self.hist_items_[self.hist_indptr_[user] : self.hist_indptr_[user + 1]]

    def train_times(self, user: int) -> np.ndarray:
        """Timestamps aligned with ``train_history(user)``."""
        if user <= 0 or user > self.n_users_:
            return np.zeros(0, dtype=np.float64)
        return self.hist_ts_[self.hist_indptr_[user] : self.hist_indptr_[user + 1]]

    def score(
        self,
        user_ids: np.ndarray,
        histories: Sequence[np.ndarray],
        timestamps: Sequence[np.ndarray] | None = None,
        *,
        decode: Mapping[str, Any] | None = None,
    ) -> torch.Tensor:
        """Raw scores (B, n_items + 1) as float tensors; cold rows (no user, no history) get popularity.

        ``timestamps`` (aligned with ``histories``) reach time-aware models; without them, positions are used.
        ``decode`` changes decode-time fields for this call only (see ``decode_fields``).
        """
        self._check_fitted()
        user_ids = np.asarray(user_ids, dtype=np.int64)
        if len(user_ids) != len(histories):
            raise DataError(f"{len(user_ids)} users but {len(histories)} histories; they must align")
        kwargs: dict[str, Any] = {}
        if self.decode_fields:
            kwargs["decode"] = cfg = self.decode_config(decode)
            self.last_decode_ = {f: getattr(cfg, f) for f in self.decode_fields}
        elif decode:
            self.decode_config(decode)  # raises: this model has no decode-time fields
        if self.uses_timestamps:
            if timestamps is None:
                timestamps = [np.arange(len(h), dtype=np.float64) for h in histories]
            raw = self._score(user_ids, histories, timestamps, **kwargs)
        else:
            raw = self._score(user_ids, histories, **kwargs)
        scores = torch.as_tensor(raw)
        if not self.score_is_fresh:
            scores = scores.clone()
        if scores.shape != (len(user_ids), self.n_items_ + 1):
            raise RuntimeError(
                f"{self.name} returned scores of shape {tuple(scores.shape)}, "
                f"expected {(len(user_ids), self.n_items_ + 1)}"
            )
        if torch.isnan(scores).any():
            raise RuntimeError(f"{self.name} produced NaN scores; the model diverged (lower lr or check the data)")
        cold = [i for i, (u, h) in enumerate(zip(user_ids, histories, strict=True)) if u == 0 and len(h) == 0]
        if cold:
            pop = torch.as_tensor(self.item_counts_, dtype=scores.dtype)
            scores[cold] = pop
        return scores

    def _score_stream(
        self, user_ids: np.ndarray, histories: Sequence[np.ndarray], timestamps: Sequence[np.ndarray] | None
    ) -> tuple[Callable[[int, int], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]] | None:
        """(block(lo, hi), at(items)) for models whose scores can be made a block of items at a time (see
        ``ScoreStream``; ``timestamps`` only for ``uses_timestamps`` models); None (the default): whole rows only."""
        return None

    @property
    def streams_scores(self) -> bool:
        """Whether ``score_stream`` makes scores a block of items at a time (memory independent of the catalogue
        for a batch of users), instead of ranking whole rows."""
        return type(self)._score_stream is not Recommender._score_stream

    def score_stream(
        self, user_ids: np.ndarray, histories: Sequence[np.ndarray], timestamps: Sequence[np.ndarray] | None = None
    ) -> ScoreStream | None:
        """The raw scores of ``score`` as a ``ScoreStream`` (cold rows get popularity, as there), or None where
        the model makes whole rows only (``streams_scores``)."""
        self._check_fitted()
        user_ids = np.asarray(user_ids, dtype=np.int64)
        if len(user_ids) != len(histories):
            raise DataError(f"{len(user_ids)} users but {len(histories)} histories; they must align")
        if self.uses_timestamps and timestamps is None:
            timestamps = [np.arange(len(h), dtype=np.float64) for h in histories]
        fns = self._score_stream(user_ids, histories, timestamps if self.uses_timestamps else None)
        if fns is None:
            return None
        block_fn, at_fn = fns
        cold = [i for i, (u, h) in enumerate(zip(user_ids, histories, strict=True)) if u == 0 and len(h) == 0]
        pop = torch.as_tensor(self.item_counts_)

        def block(lo: int, hi: int) -> torch.Tensor:
            out = block_fn(lo, hi)
            if torch.isnan(out).any():
                raise RuntimeError(f"{self.name} produced NaN scores; the model diverged (lower lr or check the data)")
            if cold:
                out[cold] = pop[lo:hi].to(out.dtype)
            return out

        def at(items: torch.Tensor) -> torch.Tensor:
            out = at_fn(items)
            if cold:
                out[cold] = pop[items[cold]].to(out.dtype)
            return out

        return ScoreStream(block=block, at=at, n_cols=self.n_items_ + 1)

    def score_masked(
        self,
        user_ids: np.ndarray,
        histories: Sequence[np.ndarray],
        *,
        exclude_seen: bool = True,
        timestamps: Sequence[np.ndarray] | None = None,
        decode: Mapping[str, Any] | None = None,
    ) -> torch.Tensor:
        """Scores with padding and (by default) the history items at -inf: what ranking and serving use."""
        return mask_scores(self.score(user_ids, histories, timestamps, decode=decode), histories, exclude_seen)

    # ----------------------------------------------------------------------------------- recommend
    def _resolve_query(self, query: Query) -> tuple[int, np.ndarray, np.ndarray]:
        if isinstance(query, str | int | np.integer):
            user = self.users_.index(query, default=0)
            return user, self.train_history(user), self.train_times(user)
        if isinstance(query, Sequence | np.ndarray):
            dense = self.items_.lookup(query, default=0)
            dense = dense[dense > 0]
            return 0, dense, np.arange(len(dense), dtype=np.float64)
        raise DataError(f"query must be a user id or a list of item ids, got {type(query).__name__}")

    def recommend(
        self,
        query: Query,
        k: int = 10,
        *,
        exclude_seen: bool = True,
        candidates: Sequence[Any] | None = None,
        decode: Mapping[str, Any] | None = None,
    ) -> Recs:
        """Top-k items for a user id (its training history is used) or for a list of item ids (a session).

        Args:
            query: an external user id, or a sequence of external item ids in time order.
            k: how many items (>= 1).
            exclude_seen: leave out the items of the history.
            candidates: if given, rank only these external item ids (unknown ones are ignored).
            decode: decode-time field changes for this call (``decode_fields``, e.g. TIGER's ``beam``).

        Returns:
            Recs with at most k items, best first. Unknown users with no history get the most popular items.
        """
        return self.recommend_batch([query], k, exclude_seen=exclude_seen, candidates=candidates, decode=decode)[0]

    def recommend_batch(
        self,
        queries: Sequence[Query],
        k: int = 10,
        *,
        exclude_seen: bool = True,
        candidates: Sequence[Any] | None = None,
        decode: Mapping[str, Any] | None = None,
    ) -> list[Recs]:
        """``recommend`` for many queries, scored in batches (``decode``: decode-time field changes)."""
        self._check_fitted()
        k = check_k(k)
        resolved = [self._resolve_query(q) for q in queries]
        cand_mask = None
        if candidates is not None:
            dense = self.items_.lookup(candidates, default=0)
            cand_mask = torch.ones(self.n_items_ + 1, dtype=torch.bool)
            cand_mask[torch.from_numpy(dense[dense > 0])] = False  # True = not a candidate
        out: list[Recs] = []
        bs = self.batch_size_recommend
        for start in range(0, len(resolved), bs):
            chunk = resolved[start : start + bs]
            users = np.array([u for u, _, _ in chunk], dtype=np.int64)
            hists = [h for _, h, _ in chunk]
            times = [t for _, _, t in chunk]
            scores = self.score_masked(users, hists, exclude_seen=exclude_seen, timestamps=times, decode=decode)
            if cand_mask is not None:
                scores[:, cand_mask] = -torch.inf
            vals, idx = stable_topk(scores, k)
            for v, i in zip(vals.numpy(), idx.numpy(), strict=True):
                keep = np.isfinite(v)
                out.append(Recs(item_ids=self.items_.external(i[keep]), scores=v[keep].astype(np.float64)))
        return out

    # ------------------------------------------------------------------------------------ save/load
    def save(self, path: str | Path) -> Path:
        """Write a checkpoint folder (config.json, weights.safetensors, vocabularies, manifest) atomically."""
        from recgen.models.checkpoint import save_model

        self._check_fitted()
        return save_model(self, path)

    def item_titles(self) -> dict[str, str]:
        """External item id -> title, where the training data had an item table with titles."""
        return title_map(getattr(self, "item_table_", None))

    def dense_titles(self, *, neutralized: bool = True) -> list[str]:
        """Titles indexed by dense item id (index 0 = padding, ""); an item without a title shows its external id.
        For models that prompt with them: ``neutralized`` titles have instruction-like text removed
        (``recgen.llm.safety``; ordinary titles are unchanged). Raises DataError when the data had no titles."""
        from recgen.llm.safety import neutralize

        titles = self.item_titles()
        if not titles:
            raise DataError(f"{self.name} needs item titles; the dataset has no item table with a 'title' column")
        ext = self.items_.external(np.arange(1, self.n_items_ + 1))
        raw = [titles.get(str(e), str(e)) for e in ext]
        return [""] + ([neutralize(t)[0] for t in raw] if neutralized else raw)

    def _extra_meta(self) -> dict[str, Any]:
        return {}

    def _load_extra_meta(self, extra: dict[str, Any]) -> None:
        pass

    @classmethod
    def load(cls, path: str | Path) -> Recommender:
        """Read a checkpoint folder written by ``save``, checked against its manifest, sizes and weights (the model
        class is taken from its config.json; see ``recgen.models.checkpoint``)."""
        from recgen.models.checkpoint import load_model_folder

        return load_model_folder(cls, path)

    def __repr__(self) -> str:
        fields = ", ".join(f"{f.name}={getattr(self.config, f.name)!r}" for f in dataclasses.fields(self.config))
        return f"{type(self).__name__}({fields})"
