"""What every `faceatlas` subcommand shares: exit codes, error mapping and progress display."""

from __future__ import annotations

import sys
from collections.abc import Callable

import typer

from faceatlas.errors import FaceAtlasError, InvalidImageError, ModelError, NoFaceError

EXIT_OK, EXIT_NO_MATCH, EXIT_USAGE, EXIT_BAD_INPUT, EXIT_MODEL = 0, 1, 2, 3, 4


def err(message: str) -> None:
    typer.echo(message, err=True)


def progress(total: int):  # rich progress on stderr only when it is a terminal
    from rich.progress import Progress

    return Progress(transient=True, disable=not sys.stderr.isatty() or total < 2)


def guard(fn: Callable[[], int]) -> int:
    """Run a command body, turning the library's errors into a message and an exit code."""
    try:
        return fn()
    except ModelError as exc:
        err(f"model error: {exc}")
        return EXIT_MODEL
    except (InvalidImageError, NoFaceError) as exc:
        err(str(exc))
        return EXIT_BAD_INPUT
    except FaceAtlasError as exc:
        err(str(exc))
        return EXIT_BAD_INPUT
