"""The ``recgen`` command line (click): thin wrappers over the library, one module per command group.

Every expected failure (bad path, bad format, bad option) ends with one line ``error: ...`` on stderr that says
what was wrong and how to fix it, and exit code 2 (1 for an unexpected I/O failure); never a traceback.
"""

from __future__ import annotations

import errno
import logging
import os
import sys

import click

from recgen.cli import app, augment, bench, ctr, data, llm, models, serve, simulate, tasks  # noqa: F401 - each module adds its commands to app.cli
from recgen.cli.app import cli
from recgen.errors import RecgenError


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI and turn every expected failure into one line ``error: ...`` with exit code 2.

    Expected failures: recgen's own errors (bad input, corrupt or mismatched files, diverged training), file-system
    errors (a path that is not there, a full disk, no permission) and running out of memory. Anything else is a
    bug and keeps its traceback. ``RECGEN_DEBUG=1`` shows the traceback of expected failures too.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from recgen.ops.allocator import keep_freed_memory

    keep_freed_memory()  # freed tensor memory stays in the process: no page faults every step (RECGEN_MALLOC)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    app._ARGV = list(argv) if argv is not None else sys.argv[1:]
    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:  # under torchrun: join the process group (torch loads)
        from recgen.models.training.distributed import init_from_env

        init_from_env()
    debug = os.environ.get("RECGEN_DEBUG") == "1"
    try:
        cli.main(args=app._ARGV, prog_name="recgen", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("error: interrupted", err=True)
        return 130
    except click.ClickException as exc:
        ctx = getattr(exc, "ctx", None)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        return _fail(f"{exc.format_message()}{hint}")
    except (RecgenError, OSError, MemoryError) as exc:
        if debug:
            raise
        return _fail(_describe(exc))
    return 0


def _describe(exc: BaseException) -> str:
    """One line for an expected failure: what went wrong, with the file and the fix where there is one."""
    if isinstance(exc, RecgenError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "out of memory; try a smaller dataset, batch size or model (see the model's memory estimate)"
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        if exc.errno == errno.ENOSPC:
            return f"no space left on the device{where}; free some space and run again (nothing was overwritten)"
        if isinstance(exc, FileNotFoundError | IsADirectoryError | NotADirectoryError):
            return f"{exc.strerror or exc}{where}; check the path"
        if isinstance(exc, PermissionError):
            return f"permission denied{where}; check the path's permissions"
        return f"{exc.strerror or exc}{where} (an input/output error); check the disk and the path"
    return str(exc)


def _fail(message: str) -> int:
    click.echo(f"error: {' '.join(message.split())}", err=True)
    return 2


if __name__ == "__main__":
    sys.exit(main())
