"""A temporary PostgreSQL server for tests and benchmarks: initdb + pg_ctl in a temp folder on a free port
(Debian's postgresql package; as root, the server runs as the package's ``postgres`` user, since PostgreSQL refuses
to run as root)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from recgen.errors import BackendUnavailableError


def binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return str(candidates[-1]) if candidates else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def temporary_postgres() -> Iterator[str]:
    """Start a server, yield its SQLAlchemy URL (``postgresql+psycopg://recgen@127.0.0.1:PORT/postgres``), stop it
    and remove its folder."""
    initdb, pg_ctl = binary("initdb"), binary("pg_ctl")
    if not initdb or not pg_ctl:
        raise BackendUnavailableError("PostgreSQL binaries (initdb, pg_ctl) not found; install Debian's postgresql")
    folder = Path(tempfile.mkdtemp(prefix="recgen-pg-", dir="/tmp"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(folder, "postgres")
    port = free_port()
    data, log = folder / "data", folder / "log"
    try:
        subprocess.run([*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "recgen"], check=True,
                       capture_output=True)  # fmt: skip
        subprocess.run(
            [*as_user, pg_ctl, "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o",
             f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=on", "start"],
            check=True, capture_output=True,
        )  # fmt: skip
        yield f"postgresql+psycopg://recgen@127.0.0.1:{port}/postgres"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)
