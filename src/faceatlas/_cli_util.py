"""What every `faceatlas` subcommand shares: exit codes, error mapping and progress display.

Every command runs under :class:`FaceAtlasGroup` (the `faceatlas` app's click group), which maps
whatever a command raises to one line on stderr and a documented exit code (:func:`describe` is
the one table), so no traceback reaches the user:

  0    success (verify: the same person)
  1    verify: not the same person (only ever that)
  2    usage error: the command line itself is wrong (click checks options before any work)
  3    bad input: a file or folder that cannot be read, written or used (the other files are still done)
  4    a model could not be loaded or run
  70   internal error, a bug in faceatlas (sysexits' EX_SOFTWARE); FACEATLAS_DEBUG=1 prints the traceback
  130  interrupted (Ctrl-C), as a shell reports it
  141  the output pipe closed early (e.g. `| head`), as a shell reports a process ended by SIGPIPE
"""

from __future__ import annotations

import errno
import os
import sqlite3
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from faceatlas.errors import FaceAtlasError, ModelError

EXIT_OK, EXIT_NO_MATCH, EXIT_USAGE, EXIT_BAD_INPUT, EXIT_MODEL = 0, 1, 2, 3, 4
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141
DEBUG_VARIABLE = "FACEATLAS_DEBUG"


class CommandError(FaceAtlasError):
    """A command refuses what it was given (an output path it cannot write, say) before doing any
    work; ``code`` is the exit code, bad input unless said otherwise."""

    def __init__(self, message: str, code: int = EXIT_BAD_INPUT) -> None:
        super().__init__(message)
        self.code = code


def err(message: str) -> None:
    typer.echo(message, err=True)


def progress(total: int):  # rich progress on stderr only when it is a terminal
    from rich.progress import Progress

    return Progress(transient=True, disable=not sys.stderr.isatty() or total < 2)


# -- the one table: exception -> (exit code, message) ---------------------------------------------


def describe(exc: BaseException) -> tuple[int, str] | None:
    """The exit code and the message for ``exc``; None for what click reports itself (usage errors,
    explicit exits)."""
    if isinstance(exc, SystemExit) or _from_click(exc):
        return None
    if isinstance(exc, CommandError):
        return exc.code, str(exc)
    if isinstance(exc, ModelError):
        return EXIT_MODEL, f"model error: {exc}"
    if isinstance(exc, FaceAtlasError):
        return EXIT_BAD_INPUT, str(exc)
    if isinstance(exc, OSError) and exc.errno == errno.EPIPE:
        return EXIT_BROKEN_PIPE, ""
    if isinstance(exc, OSError):
        return EXIT_BAD_INPUT, os_error_message(exc)
    if isinstance(exc, sqlite3.OperationalError) or type(exc) is sqlite3.DatabaseError:  # locked, full, corrupt
        return EXIT_BAD_INPUT, f"database error: {exc}"
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED, "interrupted"
    first_line = (str(exc).strip().splitlines() or [""])[0]
    message = (
        f"internal error: {type(exc).__name__}: {first_line} — a bug in faceatlas, please report it "
        f"(run with {DEBUG_VARIABLE}=1 to see where it happened)"
    )
    return EXIT_INTERNAL, message


def os_error_message(exc: OSError) -> str:
    """``path: reason`` in words, without the errno number or Python's quoting."""
    if exc.filename is None:
        return exc.strerror or str(exc)
    where = str(exc.filename) if exc.filename2 is None else f"{exc.filename} -> {exc.filename2}"
    if exc.errno == errno.EEXIST and Path(str(exc.filename)).is_file():  # mkdir met a file on the way
        return f"{where} is a file, where a folder is needed"
    if exc.errno == errno.ENOTDIR:
        return f"{where}: part of this path is a file, not a folder"
    return f"{where}: {exc.strerror or exc}"


def report(exc: BaseException) -> int | None:
    """Say what went wrong on stderr and return the exit code; None: re-raise, click reports it."""
    described = describe(exc)
    if described is None:
        return None
    code, message = described
    if code == EXIT_BROKEN_PIPE:  # nobody reads on: say nothing, and keep the interpreter's last flush quiet
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):  # no real descriptor (a test runner's stdout): nothing to keep quiet
            pass
        return code
    if code == EXIT_INTERNAL and os.environ.get(DEBUG_VARIABLE, "") not in ("", "0"):
        traceback.print_exception(exc)
    err(message)
    return code


def guard(fn: Callable[[], int]) -> int:
    """Run a command body, turning whatever it raises into a message and an exit code (the same
    table as :class:`FaceAtlasGroup`, which covers the commands that do not call this)."""
    try:
        return fn()
    except BaseException as exc:
        code = report(exc)
        if code is None:
            raise
        return code


def _from_click(exc: BaseException) -> bool:
    """A usage error, an explicit exit or an abort: click (vendored by newer typers) reports those."""
    return any(cls.__module__.partition(".")[0] in ("click", "typer") for cls in type(exc).__mro__)


class FaceAtlasGroup(TyperGroup):
    """The `faceatlas` group: every subcommand, nested ones included, runs inside :meth:`invoke`,
    so one ``except`` covers them all (``typer.Typer(cls=FaceAtlasGroup)``).

    Input paths are declared with ``readable=False``: an unreadable file named on the command line
    is then bad input (exit 3, the other files still done), reported when it is read, rather than
    a usage error (exit 2) from the argument parser that stops everything.
    """

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except BaseException as exc:
            code = report(exc)
            if code is None:
                raise
            raise typer.Exit(code) from None


def check_rate(value: float | None) -> float | None:
    """An option callback: a rate (FAR, FPIR, FMR) lies strictly between 0 and 1, else a usage error."""
    if value is not None and not 0.0 < value < 1.0:  # also refuses NaN
        raise typer.BadParameter(f"a rate is between 0 and 1 (such as 1e-3), got {value:g}")
    return value


# -- the models a command runs: --detector / --embedder, a name or a path ---------------------------

WorkersOption = Annotated[
    int | None,
    typer.Option(
        "--workers",
        min=1,
        help="Processes analysing images at once. Default: one per core, within a memory budget "
        "($FACEATLAS_MEMORY_BUDGET, e.g. 4G; else half the memory free at the start), and one for small jobs.",
    ),
]
DetectorOption = Annotated[
    str | None,
    typer.Option(
        "--detector",
        help="Face detector: a name (see `faceatlas models list`) or the path of an .onnx file or model pack. "
        "Default: retinaface.",
    ),
]
EmbedderOption = Annotated[
    str | None,
    typer.Option(
        "--embedder",
        help="Face embedder: a name (see `faceatlas models list`) or the path of an .onnx file or model pack. "
        "Default: dlib_resnet, or the model the gallery/collection was built with.",
    ),
]


def build_analyzer(detector: str | None = None, embedder: str | None = None, **options: Any) -> Any:
    """A ``FaceAnalyzer`` with the models named (None: the defaults); nothing loads yet."""
    from faceatlas.pipeline import FaceAnalyzer

    return FaceAnalyzer(**analyzer_kwargs(detector, embedder), **options)


def analyzer_kwargs(detector: str | None, embedder: str | None) -> dict[str, Any]:
    """The ``FaceAnalyzer`` arguments for the models given (those not given keep its defaults)."""
    return {k: v for k, v in (("detector", detector), ("embedder", embedder)) if v is not None}


# -- output paths, checked before any work (so before the models load) ---------------------------


def output_file(path: Path, option: str) -> Path:
    """A file the command will write: its folder must exist already (it is not created)."""
    if path.is_dir():
        raise CommandError(f"{option} {path} is a folder; name the file to write")
    parent = path.absolute().parent
    if not parent.is_dir():
        blocker = _first_existing(parent)
        why = f"the folder {parent} does not exist (create it first)" if blocker.is_dir() else f"{blocker} is a file"
        raise CommandError(f"cannot write {option} {path}: {why}")
    if not os.access(parent, os.W_OK):
        raise CommandError(f"cannot write {option} {path}: the folder {parent} is not writable")
    return path


def output_folder(path: Path, what: str, announce: bool = True) -> Path:
    """A folder the command will write into (``what`` names it in messages: "--out folder x"),
    created with its parents if missing; says so on stderr when ``announce``."""
    if path.is_dir():
        if not os.access(path, os.W_OK):
            raise CommandError(f"cannot write into {what}: the folder is not writable")
        return path
    blocker = _first_existing(path)
    if not blocker.is_dir():
        raise CommandError(f"cannot create {what}: {blocker} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CommandError(f"cannot create {what}: {exc.strerror or exc}") from exc
    if announce:
        err(f"created folder {path}")
    return path


def _first_existing(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists (as anything)."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
