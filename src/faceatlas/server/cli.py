"""`faceatlas serve` and `faceatlas openapi`: the service from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from faceatlas._cli_util import EXIT_BAD_INPUT, EXIT_USAGE, DetectorOption, EmbedderOption, err, output_file


def serve_command(
    host: Annotated[str, typer.Option(help="address to listen on; 0.0.0.0 exposes it to the network")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8000,
    load: Annotated[bool, typer.Option(help="load the models before taking requests")] = True,
    detector: DetectorOption = None,
    embedder: EmbedderOption = None,
) -> None:
    """Serve the REST API (/v1, schema at /openapi.json) and the web UI (/). Settings: FACEATLAS_* variables.

    --detector / --embedder override FACEATLAS_DETECTOR / FACEATLAS_EMBEDDER (a name or a path)."""
    import uvicorn
    from pydantic import ValidationError

    from faceatlas.server.app import create_app
    from faceatlas.server.settings import Settings

    try:
        given = {k: v for k, v in (("detector", detector), ("embedder", embedder)) if v is not None}
        settings = Settings(**given)  # type: ignore[arg-type]  # pydantic-settings fills the rest from the env
    except ValidationError as exc:
        for error in exc.errors():
            field = ".".join(str(p) for p in error["loc"]) or "settings"
            err(f"FACEATLAS_{field.upper()}: {error['msg'].removeprefix('Value error, ')}")
        raise typer.Exit(EXIT_USAGE) from None
    app = create_app(settings)
    if load:
        app.state.engine.load()
    typer.echo(f"faceatlas {app.version}: http://{host}:{port}/ (data in {settings.data_dir})", err=True)
    try:
        # an open event stream (SSE) would hold a graceful shutdown forever: 5 s, then it is cut
        uvicorn.run(app, host=host, port=port, log_level="info", server_header=False, timeout_graceful_shutdown=5)
    except SystemExit as exc:  # uvicorn exits 1 when it cannot listen (it said why): 1 means "not the same person"
        if exc.code not in (0, None):
            raise typer.Exit(EXIT_BAD_INPUT) from None
        raise


def openapi_command(
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="write here instead of stdout", readable=False)
    ] = None,
) -> None:
    """Print the service's OpenAPI schema (docs/openapi.json is this, committed)."""
    if out is not None:
        output_file(out, "--out")
    text = openapi_text()
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")


def openapi_text() -> str:
    """The schema as committed: sorted keys, two-space indent, trailing newline."""
    import tempfile

    from faceatlas.server.app import create_app
    from faceatlas.server.settings import Settings

    with tempfile.TemporaryDirectory() as data_dir:
        app = create_app(Settings(data_dir=Path(data_dir)))
        schema = app.openapi()
        app.state.keys.close()
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"
