"""The service's store: feedback events, API keys and chat sessions in SQLAlchemy 2.

SQLite by default (a file, WAL journal, so readers never wait for a writer), any SQLAlchemy URL otherwise
(``postgresql+psycopg://...``). The schema is created and upgraded by Alembic migrations (``migrations/``) when
the store opens, so an older database is brought forward rather than rebuilt. An event is acknowledged only after
its transaction commits; a retried POST with the same idempotency key finds the stored event instead of adding
another (a unique index decides, so two racing retries still store one).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    Integer,
    String,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.exc import IntegrityError as SQLIntegrityError
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from recgen.errors import ConfigError

EVENT_TYPES = ("view", "click", "rate", "purchase")


class Base(DeclarativeBase):
    pass


class Event(Base):
    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(256), index=True)
    item_id: Mapped[str] = mapped_column(String(256), index=True)
    event: Mapped[str] = mapped_column(String(16))
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    timestamp: Mapped[float] = mapped_column(Float)  # seconds since the epoch (the client's or the server's)
    idempotency_key: Mapped[str | None] = mapped_column(String(128), unique=True, nullable=True)
    api_key_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)  # SHA-256 of the key: the key is never stored
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ChatSession(Base):
    __tablename__ = "chat_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str | None] = mapped_column(String(256), nullable=True, index=True)
    messages: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


def sqlite_url(path: str | Path) -> str:
    return f"sqlite:///{Path(path).resolve()}"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class StoredEvent:
    id: int
    user_id: str
    item_id: str
    event: str
    value: float | None
    timestamp: float
    duplicate: bool = False  # an earlier POST with the same idempotency key stored it


class Store:
    """Events, API keys and chat sessions behind one SQLAlchemy engine (see the module docstring)."""

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        try:
            kwargs: dict[str, Any] = {"pool_pre_ping": True}
            if url.startswith("sqlite"):
                kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            self.engine = create_engine(url, **kwargs)
        except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises many kinds for a bad URL
            raise ConfigError(f"cannot use the database URL {url!r} ({exc}); e.g. sqlite:///feedback.db") from None
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        if migrate:
            from recgen.serve.migrations import upgrade

            upgrade(self.engine)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            return True
        except OperationalError:
            return False

    # ------------------------------------------------------------------------------------ events
    def add_event(
        self,
        user_id: str,
        item_id: str,
        kind: str,
        *,
        value: float | None = None,
        timestamp: float | None = None,
        idempotency_key: str | None = None,
        api_key_id: int | None = None,
    ) -> StoredEvent:
        """Store one event (committed before it returns); with an idempotency key already used, the stored one."""
        ts = float(timestamp) if timestamp is not None else dt.datetime.now(dt.UTC).timestamp()
        row = Event(
            user_id=user_id, item_id=item_id, event=kind, value=value, timestamp=ts,
            idempotency_key=idempotency_key, api_key_id=api_key_id,
        )  # fmt: skip
        with self.sessions() as session:
            try:
                session.add(row)
                session.commit()
                return _stored(row)
            except SQLIntegrityError:
                session.rollback()
                if idempotency_key is None:
                    raise
                old = session.scalars(select(Event).where(Event.idempotency_key == idempotency_key)).one()
                return _stored(old, duplicate=True)

    def events(self, user_id: str | None = None, *, kinds: tuple[str, ...] = EVENT_TYPES) -> list[StoredEvent]:
        """Events in time order (then arrival order), of one user or of everyone."""
        query = select(Event).where(Event.event.in_(kinds)).order_by(Event.timestamp, Event.id)
        if user_id is not None:
            query = query.where(Event.user_id == user_id)
        with self.sessions() as session:
            return [_stored(e) for e in session.scalars(query)]

    def count_events(self) -> int:
        with self.sessions() as session:
            return int(session.scalar(select(func.count()).select_from(Event)) or 0)

    # ---------------------------------------------------------------------------------- API keys
    def create_key(self, name: str) -> str:
        """A new random API key (returned once; only its SHA-256 is stored)."""
        key = "rk_" + secrets.token_urlsafe(24)
        with self.sessions() as session:
            session.add(ApiKey(name=name, key_hash=hash_key(key)))
            session.commit()
        return key

    def check_key(self, key: str | None) -> int | None:
        """The id of a valid, unrevoked key, or None."""
        if not key:
            return None
        with self.sessions() as session:
            row = session.scalars(select(ApiKey).where(ApiKey.key_hash == hash_key(key))).first()
            return row.id if row is not None and not row.revoked else None

    def revoke_key(self, name: str) -> int:
        with self.sessions() as session:
            rows = session.scalars(select(ApiKey).where(ApiKey.name == name)).all()
            for row in rows:
                row.revoked = True
            session.commit()
            return len(rows)

    # ------------------------------------------------------------------------------ chat sessions
    def create_chat(self, user_id: str | None) -> int:
        with self.sessions() as session:
            row = ChatSession(user_id=user_id, messages=[])
            session.add(row)
            session.commit()
            return int(row.id)

    def chat_messages(self, chat_id: int) -> tuple[str | None, list[Any]] | None:
        """(user id, messages) of a chat session, or None if there is no such session."""
        with self.sessions() as session:
            row = session.get(ChatSession, chat_id)
            return None if row is None else (row.user_id, list(row.messages or []))

    def append_chat(self, chat_id: int, message: dict[str, Any]) -> None:
        """Add one exchange to a session (under a row lock where the database has them)."""
        with self.sessions() as session:
            row = session.get(ChatSession, chat_id, with_for_update=not self.url.startswith("sqlite"))
            if row is None:
                raise KeyError(chat_id)
            row.messages = [*(row.messages or []), message]  # a new list: the JSON column sees the change
            session.commit()

    def close(self) -> None:
        self.engine.dispose()


def _stored(e: Event, duplicate: bool = False) -> StoredEvent:
    return StoredEvent(e.id, e.user_id, e.item_id, e.event, e.value, e.timestamp, duplicate)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers never block on the writer
    cursor.execute("PRAGMA synchronous=FULL")  # an acknowledged event survives a crash of the process or the OS
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
