"""The task level over HTTP: explanations and the conversational recommender.

- ``GET /v1/users/{user_id}/explanations/{item_id}``: why the item for the user (``recgen.tasks.explain``), from
  the user's training history plus the feedback stored since;
- ``POST /v1/chat``: one message of a conversation (``recgen.tasks.chat``); without ``session_id`` a new session is
  stored and its id returned. The server keeps no state in memory: a session's earlier messages are stored and
  replayed to rebuild it, so any worker (or a restarted server) continues it, and a model swap applies from the
  next message. The rule-based manager serves by default (the LLM manager is too slow per request on a CPU).
"""

from typing import Annotated, Any

from fastapi import FastAPI, HTTPException
from fastapi import Path as PathParam
from pydantic import BaseModel, Field


class CitedItem(BaseModel):
    item_id: str
    title: str | None = None
    contribution: float = Field(description="how much removing it from the history lowers the item's score")


class ExplanationOut(BaseModel):
    model_version: str
    user_id: str
    item_id: str
    text: str
    cited: list[CitedItem]
    shared: dict[str, list[str]] = Field(description="attribute values the item shares with the cited items")


class ChatRequest(BaseModel):
    message: str = Field(min_length=1, max_length=2000)
    session_id: int | None = Field(None, ge=1, le=2**62)
    user_id: str | None = Field(None, pattern=r"^[^\x00-\x1f\x7f]{1,256}$", description="start from this history")


class ChatItem(BaseModel):
    item_id: str
    title: str | None = None
    facts: dict[str, Any] = Field(default_factory=dict)


class ChatOut(BaseModel):
    model_version: str
    session_id: int
    action: str = Field(description="ask, recommend or answer")
    text: str
    items: list[ChatItem]
    relaxed: bool = Field(description="fewer than k items met every wish: the closest are shown")


def add_task_routes(app: FastAPI, registry: Any, store: Any, auth: Any, history: Any, id_pattern: str) -> None:
    def tools(model: Any) -> tuple[Any, Any]:
        from recgen.tasks.catalog import Catalog
        from recgen.tasks.explain import Explainer

        held = getattr(model, "_serve_tasks", None)
        if held is None:
            catalog = Catalog.from_model(model)
            held = model._serve_tasks = (catalog, Explainer(model, catalog=catalog))
        return held

    @app.get("/v1/users/{user_id}/explanations/{item_id}", response_model=ExplanationOut, tags=["tasks"])
    def explanation(
        _: auth,
        user_id: Annotated[str, PathParam(pattern=id_pattern)],
        item_id: Annotated[str, PathParam(pattern=id_pattern)],
    ) -> ExplanationOut:
        version, model = registry.current()
        if item_id not in model.items_:
            raise HTTPException(404, f"item {item_id!r} is not in the catalogue of model {version}")
        _, explainer = tools(model)
        e = explainer.explain(user_id, item_id, history=history(model, user_id))
        return ExplanationOut(model_version=version, user_id=user_id, item_id=item_id, text=e.text,
                              cited=[CitedItem(**c) for c in e.cited], shared=e.shared)  # fmt: skip

    @app.post("/v1/chat", response_model=ChatOut, tags=["tasks"])
    def chat(_: auth, body: ChatRequest) -> ChatOut:
        from recgen.tasks.chat import ChatSession

        version, model = registry.current()
        catalog, _ = tools(model)
        if body.session_id is None:
            user_id, past = body.user_id, []
            session_id = store.create_chat(user_id)
        else:
            found = store.chat_messages(body.session_id)
            if found is None:
                raise HTTPException(404, f"no chat session {body.session_id}; leave session_id out to start one")
            (user_id, past), session_id = found, body.session_id
            if body.user_id is not None and body.user_id != user_id:
                raise HTTPException(409, f"chat session {session_id} belongs to another user")
        known = user_id is not None and user_id in model.users_
        session = ChatSession(model, user=user_id if known else None,
                              history=history(model, user_id) if user_id else None, catalog=catalog)  # fmt: skip
        for m in past:  # rebuild the state: the rule-based manager is deterministic
            session.respond(m["user"])
        reply = session.respond(body.message)
        shown = [i["item_id"] for i in reply.items]
        store.append_chat(session_id, {"user": body.message, "assistant": reply.text, "action": reply.action,
                                       "items": shown, "model_version": version})  # fmt: skip
        items = [ChatItem(item_id=i["item_id"], title=i.get("title"), facts=i) for i in reply.items]
        return ChatOut(model_version=version, session_id=session_id, action=reply.action, text=reply.text,
                       items=items, relaxed=reply.relaxed)  # fmt: skip
