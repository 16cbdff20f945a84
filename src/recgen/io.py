"""Atomic writes and integrity checks: the one way recgen puts anything on disk and reads it back.

Every file recgen writes (datasets, model folders, checkpoints, results, reports, caches) goes through here: a
temp file or folder next to the target, renamed onto it when complete. A crash, a full disk or an exception
never leaves a half-written file where a reader would find it, and an older version survives until the new one
is complete.

What recgen reads back is checked against what it wrote:

- a **folder** (a converted dataset, a saved model) carries ``manifest.json``: the SHA-256 and size of every
  member, checked on load (``verify_manifest``);
- a **single binary file** (a training checkpoint, a cache entry) is *sealed*: its bytes are followed by a line
  holding their SHA-256 (``atomic_write_sealed`` / ``read_sealed``);
- a **results JSON** holds the SHA-256 of its own canonical content (``seal_json`` / ``check_json_seal``).

A mismatch is an ``IntegrityError`` naming the file, what differs, and the command that rebuilds it. Files
written before these checks existed (no manifest, no seal) are read as they are.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from recgen.errors import IntegrityError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temp_prefix(path: Path) -> str:
    """Temp names carry the writer's PID, so a later writer can tell a dead process's leftovers (kill -9)."""
    return f"{path.name}.tmp-{os.getpid()}-"


def sweep_stale(path: Path) -> None:
    """Remove temp files and folders next to ``path`` left by writers that no longer run (killed mid-write)."""
    for leftover in path.parent.glob(f"{glob.escape(path.name)}.tmp-*"):
        pid = leftover.name[len(path.name) + 5 :].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
        except PermissionError:  # alive, another user's
            continue


def atomic_write_file(path: str | os.PathLike[str], write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` on a temp file next to ``path``, then rename it onto ``path``.

    A crash or an exception never leaves a half-written file at ``path`` (the temp file is removed; one left by a
    killed process is swept by the next write of the same path).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(path)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it owner-only; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_file(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented JSON (non-JSON values through ``str``) with a final newline, atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def replace_dir(src: Path, dst: Path) -> None:
    """Move a finished temp folder onto ``dst`` with renames only (the old folder survives until the end)."""
    os.chmod(src, 0o777 & ~_umask())  # a mkdtemp folder is owner-only
    if dst.exists():
        backup = Path(tempfile.mkdtemp(prefix=dst.name + ".old-", dir=dst.parent))
        backup.rmdir()
        os.replace(dst, backup)
        try:
            os.replace(src, dst)
        except BaseException:
            os.replace(backup, dst)
            raise
        shutil.rmtree(backup, ignore_errors=True)
    else:
        os.replace(src, dst)


@contextmanager
def atomic_dir(path: str | os.PathLike[str], *, manifest: tuple[str, str] | None = None) -> Iterator[Path]:
    """A temp folder next to ``path`` to fill; on a clean exit it replaces ``path`` (renames only), on an
    exception it is removed and ``path`` is left as it was. ``manifest=(kind, rebuild command)`` writes
    ``manifest.json`` over the finished folder before it is renamed into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(path)
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(path), dir=path.parent))
    try:
        yield tmp
        if manifest is not None:
            write_manifest(tmp, *manifest)
        replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


_SHA_CACHE: dict[tuple[str, float, int], str] = {}


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes (remembered per path, modification time and size within this process)."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime, st.st_size)
    if key not in _SHA_CACHE:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _SHA_CACHE[key] = h.hexdigest()
    return _SHA_CACHE[key]


def path_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file, or of a folder's files (their relative names and SHA-256s, in name order)."""
    path = Path(path)
    if path.is_file():
        return file_sha256(path)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(f"{f.relative_to(path).as_posix()}\0{file_sha256(f)}\n".encode())
    return h.hexdigest()


# --------------------------------------------------------------------------------------------- integrity
MANIFEST = "manifest.json"
MANIFEST_FORMAT = "recgen-manifest/1"


def write_manifest(folder: str | os.PathLike[str], kind: str, rebuild: str) -> dict[str, Any]:
    """Write ``folder/manifest.json`` listing every other file's SHA-256 and size (call it last, in a temp
    folder that ``atomic_dir`` then renames). ``rebuild``: the command that remakes the folder, quoted by errors."""
    folder = Path(folder)
    files = {
        p.relative_to(folder).as_posix(): {"sha256": file_sha256(p), "bytes": p.stat().st_size}
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }
    manifest = {"format": MANIFEST_FORMAT, "kind": kind, "rebuild": rebuild, "files": files}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def verify_manifest(folder: str | os.PathLike[str], kind: str, rebuild: str) -> bool:
    """Check every member of ``folder`` against its manifest; False for a folder written before manifests.

    Raises:
        IntegrityError: a member missing, of another size, or with another SHA-256; or an unreadable manifest.
    """
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        return False
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        files = manifest["files"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise IntegrityError(f"{path}: not a readable manifest ({exc}); the {kind} is corrupt: {rebuild}") from None
    for name, entry in files.items():
        member = folder / name
        if not member.is_file():
            problem = "is missing"
        elif member.stat().st_size != entry.get("bytes"):
            problem = f"has {member.stat().st_size} bytes, {entry.get('bytes')} were written"
        elif file_sha256(member) != entry.get("sha256"):
            problem = "does not match the SHA-256 written for it (its bytes changed)"
        else:
            continue
        raise IntegrityError(f"{member} {problem}; the {kind} is corrupt or was modified: {rebuild}")
    return True


_SEAL = b"\nRECGEN-SHA256 "


def atomic_write_sealed(path: str | os.PathLike[str], payload: bytes) -> Path:
    """Write ``payload`` followed by a line with its SHA-256, atomically (read it back with ``read_sealed``)."""
    seal = _SEAL + hashlib.sha256(payload).hexdigest().encode() + b"\n"

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(payload)
            f.write(seal)

    return atomic_write_file(path, write)


def read_sealed(path: str | os.PathLike[str], what: str, rebuild: str) -> bytes:
    """The payload of a file written by ``atomic_write_sealed``, checked against its SHA-256 (a file without a
    seal, written before seals existed, is returned whole).

    Raises:
        IntegrityError: the payload does not match its seal (flipped or lost bytes).
    """
    data = Path(path).read_bytes()
    cut = data.rfind(_SEAL)
    if cut < 0 or not data.endswith(b"\n") or len(data) - cut != len(_SEAL) + 65:
        return data
    payload, digest = data[:cut], data[cut + len(_SEAL) : -1].decode("ascii", "replace")
    if hashlib.sha256(payload).hexdigest() != digest:
        raise IntegrityError(f"{path}: the {what} does not match the SHA-256 written with it (corrupt): {rebuild}")
    return payload


JSON_SEAL = "sha256"  # the results-file field holding the SHA-256 of the rest of its content


def _canonical(obj: dict[str, Any]) -> bytes:
    return json.dumps({k: v for k, v in obj.items() if k != JSON_SEAL}, sort_keys=True, default=str).encode()


def seal_json(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` with ``sha256`` set to the SHA-256 of its other content (canonical JSON)."""
    clean = json.loads(json.dumps({k: v for k, v in obj.items() if k != JSON_SEAL}, default=str))
    return {**clean, JSON_SEAL: hashlib.sha256(_canonical(clean)).hexdigest()}


def check_json_seal(obj: dict[str, Any], path: str | os.PathLike[str], rebuild: str) -> bool:
    """Whether ``obj`` (read from ``path``) carries a seal; raises IntegrityError when the seal does not match."""
    if JSON_SEAL not in obj:
        return False
    if hashlib.sha256(_canonical(obj)).hexdigest() != obj[JSON_SEAL]:
        raise IntegrityError(
            f"{path}: its content does not match the SHA-256 recorded in it (edited or corrupt); {rebuild}"
        )
    return True


def read_parquet(path: Path, hint: str) -> Any:
    """A Parquet file as a pyarrow Table; an unreadable one (truncated, corrupt) is an IntegrityError ending in
    ``hint``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise IntegrityError(f"{path} is missing; {hint}") from None
        raise IntegrityError(f"{path}: not a readable Parquet file ({str(exc).splitlines()[0]}); {hint}") from None


def read_json_file(path: Path, hint: str) -> Any:
    """A JSON file's content; one that does not parse (truncated, corrupt) is an IntegrityError ending in ``hint``."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IntegrityError(f"{path}: not valid JSON ({exc}); {hint}") from None
