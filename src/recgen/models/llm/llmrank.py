"""Zero-shot LLM re-ranking of a retriever's top candidates (LlamaRec verbalizer scoring; LLMRank / Chat-Rec
listwise generation).

A fitted retriever from the harness (EASE, SASRec, ...) proposes its top ``n_candidates`` items for a user
(history excluded); the LLM sees the titles of the user's last ``history_len`` items and the candidates, each
behind a letter label (A, B, C, ...), and re-orders them:

- ``method="verbalizer"`` (LlamaRec, Yue et al. 2023): one forward pass; the candidates are ordered by the
  LLM's next-token log-probability of their label after "Answer:". Only labels are scored, so no item can be
  invented.
- ``method="listwise"`` (LLMRank, Hou et al. 2024; Chat-Rec): the LLM writes a ranked list of labels and titles;
  each line is mapped back onto the candidates (label first, else exact then fuzzy title match); candidates it
  did not name keep the retriever's order after the named ones. Lines that match no candidate are counted as
  out-of-catalogue (``stats_['out_of_catalogue']`` / ``stats_['lines']``).

With ``user_profiles=FOLDER`` the prompt opens with the user's taste profile from ``recgen augment profiles
DATASET --kind users --out FOLDER`` (written by an LLM from the training part of the split only); users without a
usable profile get the plain prompt, and the results file counts both (``stats_['users_with_profile']``).

Items below the candidate list keep the retriever's order and scores (the re-ranked block is lifted above
them), so the harness's full-ranking metrics apply unchanged. ``shuffle_candidates`` presents the candidates
in a seeded random order instead of the retriever's (the position-bias probe).

Where recgen differs: LlamaRec fine-tunes Llama-2-7B on the verbalizer task and LLMRank prompts ChatGPT; here the
LLM is whatever backend is given, by default the embedded 135M model, zero-shot.
"""

from __future__ import annotations

import difflib
import re
import string
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from recgen.config import check
from recgen.data.dataset import Dataset
from recgen.errors import ConfigError, DataError
from recgen.models.base import Recommender, mask_scores
from recgen.ops.topk import stable_topk

PROMPT_VERSION = "rerank-v1"
LABELS = string.ascii_uppercase


@dataclass(frozen=True, kw_only=True)
class LLMRankConfig:
    retriever: str = "ease"  # registered model that proposes candidates
    retriever_config: str = ""  # its overrides, "key=value,key=value"
    llm: str = ""  # LLM spec (default: RECGEN_LLM or the embedded SmolLM2)
    method: str = "verbalizer"  # "verbalizer" or "listwise"
    n_candidates: int = 20  # candidates re-ranked (<= 26: one letter each)
    history_len: int = 10  # most recent history items shown
    shuffle_candidates: bool = False  # present candidates in a seeded random order (position-bias probe)
    max_tokens: int = 200  # listwise: generation budget
    llm_cache: str = ""  # SQLite response cache path ("" = none)
    neutralize_text: bool = True  # remove instruction-like text from titles before prompting (recgen.llm.safety)
    user_profiles: str = ""  # folder of `recgen augment profiles --kind users` (<folder>/<dataset>/...); "" = none
    seed: int = 0

    def validate(self) -> None:
        check(self.method in ("verbalizer", "listwise"), f"method must be verbalizer or listwise, got {self.method!r}")
        check(1 <= self.n_candidates <= len(LABELS), f"n_candidates must be in [1, 26], got {self.n_candidates}")
        check(self.history_len >= 1, f"history_len must be >= 1, got {self.history_len}")
        check(self.max_tokens >= 1, f"max_tokens must be >= 1, got {self.max_tokens}")


def _title_key(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", title.lower()).strip()


def build_prompt(history: Sequence[str], candidates: Sequence[str], method: str, taste: str = "") -> str:
    hist = "\n".join(f"- {t}" for t in history)
    cands = "\n".join(f"{LABELS[i]}. {t}" for i, t in enumerate(candidates))
    intro = f"The user's taste, summarised from their history: {taste}\n\n" if taste else ""
    if method == "verbalizer":
        return (
            f"{intro}A user recently liked these items, oldest first:\n{hist}\n\n"
            f"Candidates:\n{cands}\n\n"
            f"Which candidate will the user like next? Answer with the letter of one candidate.\nAnswer:"
        )
    return (
        f"{intro}A user recently liked these items, oldest first:\n{hist}\n\n"
        f"Candidates:\n{cands}\n\n"
        f"Rank all {len(candidates)} candidates from most to least likely to be liked next. "
        f"Write one per line as 'letter. title'."
    )


def parse_listwise(text: str, titles: Sequence[str]) -> tuple[list[int], int, int]:
    """Candidate indices in the order the text names them, number of non-empty lines, and how many of those
    matched no candidate (out of catalogue)."""
    keys = [_title_key(t) for t in titles]
    order: list[int] = []
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    unmatched = 0
    for line in lines:
        idx = None
        m = re.match(r"^\W*([A-Z])[\.\):\s]", line + " ")
        if m and LABELS.index(m.group(1)) < len(titles):
            idx = LABELS.index(m.group(1))
        else:
            body = _title_key(re.sub(r"^\W*\d+[\.\)]\s*", "", line))
            if body in keys:
                idx = keys.index(body)
            else:
                close = difflib.get_close_matches(body, keys, n=1, cutoff=0.85)
                idx = keys.index(close[0]) if close else None
        if idx is None:
            unmatched += 1
        elif idx not in order:
            order.append(idx)
    return order, len(lines), unmatched


class LLMRank(Recommender):
    name = "llmrank"
    Config = LLMRankConfig
    selects_on_valid = False  # zero-shot: bench skips the validation pass

    def _fit(self, dataset: Dataset, valid: Any) -> None:
        from recgen.config import parse_sets
        from recgen.models.registry import create_model

        cfg = self.config
        if cfg.retriever == self.name:
            raise ConfigError("the retriever of llmrank must be another model (e.g. ease or sasrec)")
        overrides = parse_sets([kv for kv in cfg.retriever_config.split(",") if kv.strip()])
        self.retriever_ = create_model(cfg.retriever, **overrides).fit(dataset, valid=valid)
        self.user_profiles_: dict[int, str] = {}
        if cfg.user_profiles:
            from pathlib import Path

            from recgen.data.augment.profiles import read_user_profiles

            table = read_user_profiles(Path(cfg.user_profiles).expanduser() / dataset.name / "users_profiles.parquet")
            dense = {u: self.users_.index(u, default=0) for u in table}
            self.user_profiles_ = {d: self._safe(table[u]) for u, d in dense.items() if d > 0}
            if not self.user_profiles_:
                raise DataError(f"{cfg.user_profiles}/{dataset.name}/users_profiles.parquet profiles no user of "
                                f"{dataset.name}; run recgen augment profiles {dataset.name} --kind users")  # fmt: skip
        self._setup()

    def _setup(self) -> None:
        self.titles_ = self.dense_titles(neutralized=self.config.neutralize_text)
        self._llm = None
        self.reset_stats()

    def _safe(self, text: str) -> str:
        """A profile is LLM-written text: neutralised like the titles when ``neutralize_text`` is on."""
        if not self.config.neutralize_text:
            return text
        from recgen.llm.safety import neutralize

        return neutralize(text, max_chars=400)[0]

    def reset_stats(self) -> None:
        self.stats_ = {"users": 0, "lines": 0, "out_of_catalogue": 0, "unparsed_users": 0, "llm_seconds": 0.0,
                       "users_with_profile": 0}  # fmt: skip

    def run_info(self) -> dict[str, Any]:
        """What the results file records: the LLM (backend, model file, SHA-256), prompt version, decoding, and
        the counters of the last evaluation (out-of-catalogue lines for listwise generation)."""
        st = dict(self.stats_)
        if st["lines"]:
            st["out_of_catalogue_rate"] = st["out_of_catalogue"] / st["lines"]
        return {
            "llm": self.llm().identity(),
            "prompt_template": f"{PROMPT_VERSION}-{self.config.method}" + ("-profile" if self.user_profiles_ else ""),
            "temperature": 0.0,
            "seed": self.config.seed,
            "retriever": self.retriever_.name,
            "stats": st,
        }

    def llm(self):
        """The LLM backend, opened on first use; a loaded model checks it is the LLM it was saved with."""
        if self._llm is None:
            from recgen.llm import load_llm

            llm = load_llm(self.config.llm or None, cache=self.config.llm_cache or None)
            saved = (getattr(self, "_saved_llm", None) or {}).get("model_sha256")
            got = llm.identity().get("model_sha256")
            if saved and got != saved:
                llm.close()
                raise DataError(
                    f"this llmrank model was saved with an LLM of SHA-256 {saved[:12]}..., but {self.config.llm!r} "
                    f"opens {llm.identity().get('model_file')} ({(got or 'no file')[:12]}); point llm= at that model"
                )
            self._llm = llm
        return self._llm

    def _title(self, dense: int) -> str:
        return self.titles_[dense] if dense < len(self.titles_) else str(dense)

    def _rerank_one(self, hist: np.ndarray, cands: np.ndarray, taste: str = "") -> list[int]:
        """Candidate positions (into ``cands``) best first."""
        cfg = self.config
        order = np.arange(len(cands))
        if cfg.shuffle_candidates:
            key = zlib.crc32(np.asarray(hist, dtype=np.int64).tobytes()) ^ cfg.seed
            order = np.random.default_rng(key).permutation(len(cands))
        shown = [int(cands[i]) for i in order]
        titles = [self._title(i) for i in shown]
        history = [self._title(int(i)) for i in hist[-cfg.history_len :]]
        prompt = build_prompt(history, titles, cfg.method, taste)
        self.stats_["users_with_profile"] += bool(taste)
        llm = self.llm()
        t0 = time.perf_counter()
        if cfg.method == "verbalizer":
            lp = np.asarray(llm.next_token_logprobs(prompt, list(LABELS[: len(shown)])))
            ranked = np.argsort(-lp, kind="stable")  # ties keep presentation order
        else:
            g = llm.chat(prompt, max_tokens=cfg.max_tokens, temperature=0.0, seed=cfg.seed)
            named, n_lines, unmatched = parse_listwise(g.text, titles)
            self.stats_["lines"] += n_lines
            self.stats_["out_of_catalogue"] += unmatched
            if not named:
                self.stats_["unparsed_users"] += 1
            ranked = named + [i for i in range(len(shown)) if i not in named]
        self.stats_["users"] += 1
        self.stats_["llm_seconds"] += time.perf_counter() - t0
        return [int(order[i]) for i in ranked]

    @torch.no_grad()
    def _score(self, user_ids: np.ndarray, histories: Sequence[np.ndarray]) -> torch.Tensor:
        cfg = self.config
        out = self.retriever_.score(user_ids, histories).double()  # scored once; masked copy picks candidates
        base = mask_scores(out.clone(), histories, exclude_seen=True)
        _, top = stable_topk(base, cfg.n_candidates)
        lift = float(out[torch.isfinite(out)].abs().max()) + 1.0 if torch.isfinite(out).any() else 1.0
        for b, h in enumerate(histories):
            cands = top[b].numpy()
            cands = cands[np.isfinite(base[b, cands].numpy())]
            if len(cands) == 0 or len(h) == 0:
                continue
            ranked = self._rerank_one(np.asarray(h), cands, self.user_profiles_.get(int(user_ids[b]), ""))
            for pos, ci in enumerate(ranked):
                out[b, int(cands[ci])] = 2 * lift + (len(ranked) - pos)  # above every retriever score
        return out

    def _state(self) -> dict[str, np.ndarray]:
        return {f"retriever.{k}": v for k, v in self.retriever_._state().items()}

    def _extra_meta(self) -> dict[str, Any]:
        r = self.retriever_
        return {
            "retriever": {"name": r.name, "config": {k: getattr(r.config, k) for k in r.config.__dataclass_fields__}},
            "llm": self.llm().identity(),  # the LLM is referenced, not stored: its file's SHA-256 is checked on use
            "user_profiles": {str(d): t for d, t in self.user_profiles_.items()},
        }

    def _load_extra_meta(self, extra: dict[str, Any]) -> None:
        self._retriever_meta = extra.get("retriever")
        self._saved_llm = extra.get("llm")
        self.user_profiles_ = {int(d): str(t) for d, t in (extra.get("user_profiles") or {}).items()}

    def _load_state(self, tensors: dict[str, np.ndarray]) -> None:
        from recgen.models.registry import get_model_class

        meta = self._retriever_meta
        klass = get_model_class(meta["name"])
        r = klass(klass.Config(**meta["config"]))
        for attr in ("users_", "items_", "n_users_", "n_items_", "item_counts_", "hist_indptr_", "hist_items_"):
            setattr(r, attr, getattr(self, attr))
        r.hist_ts_, r.dataset_fingerprint_, r.item_table_ = self.hist_ts_, self.dataset_fingerprint_, self.item_table_
        r._load_state({k.removeprefix("retriever."): v for k, v in tensors.items() if k.startswith("retriever.")})
        r.fitted_ = True
        self.retriever_ = r
        self._setup()
