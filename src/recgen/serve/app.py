"""``recgen serve``: the HTTP API (FastAPI) over a model registry and the store, and the web page.

Routes (under ``/v1`` unless noted; every route but health and the page needs an API key in ``X-API-Key``):

- ``GET /health/live``, ``GET /health/ready`` (a model loaded and the store reachable);
- ``GET /v1/users/{user_id}/recommendations?k=&filter=field:value&exclude_seen=``: a user's top-k; an unknown user
  gets the cold-start answer (popular items), flagged, not an error; feedback stored for the user extends the
  training history it is recommended from;
- ``POST /v1/recommendations/session``: top-k after a list of item ids;
- ``GET /v1/items/{item_id}``, ``GET /v1/items/{item_id}/similar``, ``GET /v1/users/{user_id}``, ``GET /v1/users``;
- ``POST /v1/feedback``: an event (view / click / rate / purchase); ``Idempotency-Key`` makes a retry store once;
- ``GET /v1/models``, ``POST /v1/models/{version}/activate``, ``POST /v1/models/rollback``;
- ``GET /v1/users/{user_id}/explanations/{item_id}``, ``POST /v1/chat`` (``serve/task_routes.py``);
- ``GET /``: the web page; ``GET /docs``: the OpenAPI docs page; ``GET /openapi.json``: the schema.

Every answer names the model version that made it. Bad input is a 4xx whose ``detail`` says what was wrong; an
unexpected failure is a 500 with a request id and no stack trace. Per-key rate limits answer 429 with
``Retry-After``.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from recgen import __version__
from recgen.serve.registry import ModelRegistry
from recgen.serve.store import EVENT_TYPES, Store

PAGE = Path(__file__).resolve().parent / "page"
MAX_BODY = 64 * 1024  # bytes: a request body above this is refused (413) before it is read
ID = r"^[^\x00-\x1f\x7f]{1,256}$"  # an external id: 1-256 characters, no control characters
IdStr = Annotated[str, Field(pattern=ID, description="An external id (1-256 characters, no control characters)")]


# ------------------------------------------------------------------------------------------ schemas
class ErrorBody(BaseModel):
    """Every error answer: what was wrong and how to fix it (a request id for a server error)."""

    detail: str
    request_id: str | None = None


ERRORS = {
    code: {"model": ErrorBody, "description": text}
    for code, text in {
        401: "no valid API key", 404: "unknown item or version", 409: "the request conflicts with the server's state",
        413: "request body too large", 422: "invalid input", 429: "rate limit", 500: "internal error (no details)",
    }.items()
}  # fmt: skip


class Item(BaseModel):
    item_id: str
    score: float | None = None
    title: str | None = None


class Recommendations(BaseModel):
    model_version: str
    query: str
    known: bool = Field(description="whether the model knows the user (or any item of the session)")
    fallback: str = Field("", description="why the list is the popularity ranking, when it is")
    items: list[Item]


class SessionRequest(BaseModel):
    items: list[IdStr] = Field(min_length=1, max_length=500, description="item ids in time order")
    k: int = Field(10, ge=1, le=1000)
    exclude_seen: bool = True


class FeedbackRequest(BaseModel):
    user_id: IdStr
    item_id: IdStr
    event: Literal["view", "click", "rate", "purchase"]
    value: float | None = Field(None, ge=-1e6, le=1e6, description="a rating for event=rate")
    timestamp: float | None = Field(None, ge=0, le=1e11, description="seconds since the epoch (default: now)")


class FeedbackStored(BaseModel):
    event_id: int
    duplicate: bool
    model_version: str


class UserInfo(BaseModel):
    model_version: str
    user_id: str
    known: bool
    history: list[Item]
    feedback_events: int


class ItemInfo(BaseModel):
    model_version: str
    item_id: str
    fields: dict[str, Any]


class ModelVersions(BaseModel):
    active: str
    versions: list[str]
    history: list[dict[str, Any]]


# --------------------------------------------------------------------------------------- rate limit
class RateLimiter:
    """A token bucket per API key: ``rate`` requests per second, bursts of ``burst``."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self._buckets: dict[int, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: int) -> float:
        """0 when the request may go; else the seconds until one may."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                return (1.0 - tokens) / self.rate
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0


def api_key(request: Request, x_api_key: Annotated[str | None, Header()] = None) -> int:
    """The id of the request's API key, checked and rate-limited (401 without a valid key, 429 over the limit)."""
    key_id = request.app.state.store.check_key(x_api_key)
    if key_id is None:
        raise HTTPException(401, "a valid API key is needed in the X-API-Key header (`recgen keys create`)")
    wait = request.app.state.limiter.take(key_id)
    if wait > 0:
        raise HTTPException(429, f"rate limit: try again in {wait:.2f} s", headers={"Retry-After": f"{wait:.2f}"})
    return key_id


Auth = Annotated[int, Depends(api_key)]


# -------------------------------------------------------------------------------------------- app
def create_app(registry: ModelRegistry, store: Store, *, rate: float = 200.0, burst: int = 400) -> FastAPI:
    app = FastAPI(
        title="recgen",
        version=__version__,
        description="Generative recommendation over a model registry: recommendations, similar items, feedback, "
        "explanations, conversation.",
        responses=ERRORS,
    )
    app.state.store, app.state.limiter = store, RateLimiter(rate, burst)

    @app.middleware("http")
    async def guard(request: Request, call_next):
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            return JSONResponse({"detail": f"request body over {MAX_BODY} bytes; send less"}, status_code=413)
        try:
            return await call_next(request)
        except Exception:  # noqa: BLE001 - never a stack trace in a response
            rid = uuid.uuid4().hex[:12]
            app.state.errors = getattr(app.state, "errors", 0) + 1
            import logging

            logging.getLogger("recgen.serve").exception("request %s failed", rid)
            return JSONResponse({"detail": "internal error", "request_id": rid}, status_code=500)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        problems = [
            f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body')}: {e.get('msg')}" for e in exc.errors()
        ]
        return JSONResponse({"detail": "; ".join(problems)}, status_code=422)

    def titles_of(model) -> dict[str, str]:
        cache = getattr(model, "_serve_titles", None)
        if cache is None:
            cache = model._serve_titles = model.item_titles()
        return cache

    def items_of(model, recs) -> list[Item]:
        titles = titles_of(model)
        return [
            Item(item_id=str(i), score=float(s), title=titles.get(str(i)))
            for i, s in zip(recs.item_ids, recs.scores, strict=True)
        ]  # noqa: E501

    def history(model, user_id: str) -> list[str]:
        """The user's training history (external ids, in time order) followed by the feedback stored since."""
        dense = model.users_.index(user_id, default=0)
        base = [str(i) for i in model.items_.external(model.train_history(dense))] if dense else []
        return base + [e.item_id for e in store.events(user_id) if e.item_id in model.items_]

    def candidates(model, filters: list[str]) -> list[str] | None:
        """Item ids whose metadata match every ``field:value`` filter (None when there is none)."""
        if not filters:
            return None
        table = getattr(model, "item_table_", None)
        if table is None:
            raise HTTPException(422, "this model's data has no item metadata to filter on")
        keep = np.ones(table.num_rows, dtype=bool)
        for f in filters:
            field, sep, value = f.partition(":")
            if not sep or field not in table.column_names[1:]:
                raise HTTPException(422, f"filter {f!r} must be FIELD:VALUE with FIELD one of {table.column_names[1:]}")
            col = table.column(field).to_pylist()
            keep &= np.array([_matches(v, value) for v in col], dtype=bool)
        return [str(v) for v in np.asarray(table.column(0).to_pylist(), dtype=object)[keep]]

    # ---------------------------------------------------------------------------------- routes
    @app.get("/health/live", tags=["health"])
    def live() -> dict[str, str]:
        return {"status": "live"}

    @app.get("/health/ready", tags=["health"])
    def ready() -> JSONResponse:
        version, _ = registry.current()
        ok = store.ping()
        body = {"status": "ready" if ok else "store unreachable", "model_version": version}
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/v1/users/{user_id}/recommendations", response_model=Recommendations, tags=["recommend"])
    def recommend_user(
        _: Auth,
        user_id: Annotated[str, PathParam(pattern=ID)],
        k: Annotated[int, Query(ge=1, le=1000)] = 10,
        exclude_seen: bool = True,
        filter: Annotated[list[str] | None, Query(max_length=20, description="FIELD:VALUE on item metadata")] = None,
    ) -> Recommendations:
        version, model = registry.current()
        cands = candidates(model, filter or [])
        events = [e for e in store.events(user_id) if e.item_id in model.items_]
        known = user_id in model.users_
        query: Any = history(model, user_id) if events else user_id
        recs = model.recommend(query, k, exclude_seen=exclude_seen, candidates=cands)
        fallback = "" if known or events else "unknown user: most popular items"
        return Recommendations(model_version=version, query=user_id, known=known, fallback=fallback,
                               items=items_of(model, recs))  # fmt: skip

    @app.post("/v1/recommendations/session", response_model=Recommendations, tags=["recommend"])
    def recommend_session(_: Auth, body: SessionRequest) -> Recommendations:
        version, model = registry.current()
        known = [i for i in body.items if i in model.items_]
        recs = model.recommend(list(body.items), body.k, exclude_seen=body.exclude_seen)
        fallback = "" if known else "no item of the session is in the catalogue: most popular items"
        return Recommendations(model_version=version, query=",".join(body.items), known=bool(known),
                               fallback=fallback, items=items_of(model, recs))  # fmt: skip

    @app.get("/v1/items/{item_id}/similar", response_model=Recommendations, tags=["recommend"])
    def similar(
        _: Auth, item_id: Annotated[str, PathParam(pattern=ID)], k: Annotated[int, Query(ge=1, le=1000)] = 10
    ) -> Recommendations:
        version, model = registry.current()
        if item_id not in model.items_:
            raise HTTPException(404, f"item {item_id!r} is not in the catalogue of model {version}")
        recs = model.recommend([item_id], k)
        return Recommendations(model_version=version, query=item_id, known=True, items=items_of(model, recs))

    @app.get("/v1/items/{item_id}", response_model=ItemInfo, tags=["catalogue"])
    def item(_: Auth, item_id: Annotated[str, PathParam(pattern=ID)]) -> ItemInfo:
        version, model = registry.current()
        if item_id not in model.items_:
            raise HTTPException(404, f"item {item_id!r} is not in the catalogue of model {version}")
        fields: dict[str, Any] = {}
        table = getattr(model, "item_table_", None)
        if table is not None:
            ids = [str(v) for v in table.column(0).to_pylist()]
            if item_id in ids:
                row = ids.index(item_id)
                fields = {c: _plain(table.column(c)[row].as_py()) for c in table.column_names[1:]}
        return ItemInfo(model_version=version, item_id=item_id, fields=fields)

    @app.get("/v1/users/{user_id}", response_model=UserInfo, tags=["catalogue"])
    def user(_: Auth, user_id: Annotated[str, PathParam(pattern=ID)]) -> UserInfo:
        version, model = registry.current()
        titles = titles_of(model)
        hist = history(model, user_id)
        return UserInfo(
            model_version=version, user_id=user_id, known=user_id in model.users_,
            history=[Item(item_id=i, title=titles.get(i)) for i in hist],
            feedback_events=len(store.events(user_id)),
        )  # fmt: skip

    @app.get("/v1/users", tags=["catalogue"])
    def users(_: Auth, limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> dict[str, Any]:
        version, model = registry.current()
        return {"model_version": version, "users": [str(u) for u in model.users_.ids[:limit]]}

    @app.post(
        "/v1/feedback",
        response_model=FeedbackStored,
        status_code=201,
        tags=["feedback"],
        responses={200: {"model": FeedbackStored, "description": "already stored (same Idempotency-Key)"}},
    )
    def feedback(
        key_id: Auth,
        body: FeedbackRequest,
        response: Response,
        idempotency_key: Annotated[str | None, Header(max_length=128)] = None,
    ) -> FeedbackStored:
        """Store one event (201); a retry with the same Idempotency-Key returns the stored one (200)."""
        version, _ = registry.current()
        stored = store.add_event(
            body.user_id, body.item_id, body.event, value=body.value, timestamp=body.timestamp,
            idempotency_key=idempotency_key, api_key_id=key_id,
        )  # fmt: skip
        if stored.duplicate:
            response.status_code = 200
        return FeedbackStored(event_id=stored.id, duplicate=stored.duplicate, model_version=version)

    @app.get("/v1/models", response_model=ModelVersions, tags=["models"])
    def models(_: Auth) -> ModelVersions:
        state = registry.state()
        return ModelVersions(active=registry.current()[0], versions=registry.versions(),
                             history=state.get("history", []))  # fmt: skip

    @app.post("/v1/models/{version}/activate", response_model=ModelVersions, tags=["models"])
    def activate(_: Auth, version: Annotated[str, PathParam(pattern=ID)]) -> ModelVersions:
        try:
            registry.activate(version)
        except KeyError:
            raise HTTPException(404, f"no model version {version!r}; GET /v1/models lists them") from None
        except Exception as exc:  # noqa: BLE001 - a ConfigError (single folder) or a corrupt version
            raise HTTPException(409, str(exc)) from None
        return models(_)

    @app.post("/v1/models/rollback", response_model=ModelVersions, tags=["models"])
    def rollback(_: Auth) -> ModelVersions:
        try:
            registry.rollback()
        except Exception as exc:  # noqa: BLE001
            raise HTTPException(409, str(exc)) from None
        return models(_)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(PAGE / "index.html", media_type="text/html")

    @app.get("/page/{name}", include_in_schema=False)
    def page_file(name: Annotated[str, PathParam(pattern=r"^[a-z]+\.(js|css)$")]) -> FileResponse:
        file = PAGE / name
        if not file.is_file():
            raise HTTPException(404, "no such file")
        return FileResponse(file)

    from recgen.serve.task_routes import add_task_routes

    add_task_routes(app, registry, store, Auth, history, ID)
    app.state.event_types = EVENT_TYPES
    return app


def _matches(value: Any, wanted: str) -> bool:
    """A metadata value matches ``wanted`` case-insensitively; lists match when one element does."""
    if isinstance(value, list | tuple):
        return any(_matches(v, wanted) for v in value)
    return value is not None and str(value).strip().lower() == wanted.strip().lower()


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
