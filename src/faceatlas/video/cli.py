"""`faceatlas video CLIP|URL`: every face track of a video or stream, one JSON line per track as it closes."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from faceatlas._cli_util import EXIT_OK, DetectorOption, EmbedderOption, check_rate, guard, output_file


def video_command(
    source: Annotated[str, typer.Argument(help="A video file, a stream URL (rtsp://, http://…) or a webcam number.")],
    db: Annotated[
        str | None,
        typer.Option(
            help="Gallery to identify against: a file (SQLite) or postgresql:// URL. Without it, tracks only."
        ),
    ] = None,
    fps: Annotated[
        float | None,
        typer.Option(min=0.01, help="Sample the video at this many frames per second (default: every frame)."),
    ] = None,
    detect_every: Annotated[
        int, typer.Option(min=1, help="Find faces in one sampled frame in N; track by motion in between.")
    ] = 1,
    fpir: Annotated[
        float | None,
        typer.Option(
            callback=check_rate,
            help="Open-set operating point: false-positive identification rate (default: the gallery's).",
        ),
    ] = None,
    draw: Annotated[
        Path | None,
        typer.Option(help="Also write an annotated video (.mp4, .avi…); its folder must exist.", readable=False),
    ] = None,
    reconnect: Annotated[bool, typer.Option(help="Streams: reconnect with back-off when the stream drops.")] = True,
    detector: DetectorOption = None,
    embedder: EmbedderOption = None,
) -> None:
    """Follow every face through a video and decide once per track who it is.

    Prints one JSON line per track as it closes: track, start and end (seconds), frames, person
    (null = unknown), score, and the box of its best frame. A stream runs until interrupted (Ctrl-C);
    the tracks still open are then closed and printed."""

    def run() -> int:
        from faceatlas.video.tracking import track

        if draw is not None:
            output_file(draw, "--draw")
        target: str | int = int(source) if source.isdigit() and not Path(source).exists() else source
        gallery = _open_gallery(db, detector, embedder) if db else None
        analyzer = None
        if gallery is None and (detector or embedder):
            from faceatlas._cli_util import build_analyzer

            analyzer = build_analyzer(detector, embedder)
        options: dict[str, Any] = {} if not _is_stream(target) else {"reconnect": reconnect}
        try:
            for found in track(
                target,
                gallery,
                analyzer=analyzer,
                fps=fps,
                detect_every=detect_every,
                fpir=fpir,
                draw=draw,
                **options,
            ):
                typer.echo(json.dumps(found.to_json()))
                sys.stdout.flush()  # a pipe reader sees each track as it closes
        finally:
            if gallery is not None:
                gallery.close()
        return EXIT_OK

    raise typer.Exit(guard(run))


def _is_stream(target: str | int) -> bool:
    return isinstance(target, int) or "://" in target


def _open_gallery(db: str, detector: str | None, embedder: str | None):
    from faceatlas.gallery.cli import _open

    return _open(db, create=False, detector=detector, embedder=embedder)
