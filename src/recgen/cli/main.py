"""The ``recgen`` command line (click): thin wrappers over the library, one module per command group.

Every expected failure (bad path, bad format, bad option) ends with one line ``error: ...`` on stderr that says
what was wrong and how to fix it, and exit code 2 (1 for an unexpected I/O failure); never a traceback.
"""

from __future__ import annotations

import logging
import os
import sys

import click

from recgen.cli import app, bench, data, llm, models  # noqa: F401 - each module adds its commands to app.cli
from recgen.cli.app import cli
from recgen.errors import RecgenError


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI and turn expected failures into one-line errors."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from recgen.ops.allocator import keep_freed_memory

    keep_freed_memory()  # freed tensor memory stays in the process: no page faults every step (RECGEN_MALLOC)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    app._ARGV = list(argv) if argv is not None else sys.argv[1:]
    try:
        cli.main(args=app._ARGV, prog_name="recgen", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        return 130
    except click.ClickException as exc:
        ctx = getattr(exc, "ctx", None)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        click.echo(f"error: {exc.format_message()}{hint}".replace("\n", " "), err=True)
        return 2
    except RecgenError as exc:
        click.echo(f"error: {exc}".replace("\n", " "), err=True)
        return 2
    except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as exc:
        click.echo(f"error: {exc.strerror or exc}: {exc.filename}; check the path", err=True)
        return 2
    except MemoryError:
        click.echo("error: out of memory; try a smaller dataset or batch size", err=True)
        return 1
    except KeyboardInterrupt:
        click.echo("error: interrupted", err=True)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
