"""`faceatlas keys …`: create, list and revoke the REST service's API keys.

The keys live in ``keys.db`` in the data folder: ``--data-dir``, else ``$FACEATLAS_DATA_DIR``, else
the user data folder. ``create`` prints the token alone on stdout (so ``TOKEN=$(faceatlas keys create
ci)`` works) and everything else on stderr; the token is not stored and cannot be shown again.
"""

from __future__ import annotations

import json
import os
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from faceatlas._cli_util import EXIT_BAD_INPUT, EXIT_OK, EXIT_USAGE, err, guard, output_folder

KEYS_FILE = "keys.db"

app = typer.Typer(no_args_is_help=True, help="Create, list and revoke API keys of the REST service.")


class Scope(str, Enum):
    read = "read"
    write = "write"
    admin = "admin"


DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Folder of keys.db. Default $FACEATLAS_DATA_DIR, else the user data folder."),
]


def resolve_data_dir(given: str | os.PathLike[str] | None = None) -> Path:
    """The data folder: ``given``, else ``$FACEATLAS_DATA_DIR``, else the user data folder."""
    if given:
        return Path(given).expanduser()
    if os.environ.get("FACEATLAS_DATA_DIR"):
        return Path(os.environ["FACEATLAS_DATA_DIR"]).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("faceatlas"))


def keys_path(given: str | os.PathLike[str] | None = None) -> Path:
    """Where the key file is: ``keys.db`` in ``resolve_data_dir(given)``."""
    return resolve_data_dir(given) / KEYS_FILE


def _open(given: Path | None, create: bool):
    from faceatlas.server.keys import KeyStore

    path = keys_path(given)
    if create:
        output_folder(path.parent, f"--data-dir {path.parent}", announce=False)
    return KeyStore.open(path, create=create)


@app.command("create")
def create_command(
    name: Annotated[str, typer.Argument(help="What the key is for (1-100 printable characters), e.g. 'ci'.")],
    scope: Annotated[
        Scope, typer.Option(help="read < write < admin: a key may do what its scope and the lower ones allow.")
    ] = Scope.read,
    private: Annotated[
        bool, typer.Option("--private", help="The key may see private people (an admin key may anyway).")
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """Create a key and print its token, once: it is not stored and cannot be shown again."""

    def run() -> int:
        try:
            with _open(data_dir, create=True) as store:
                record, token = store.create(name, scope.value, private=private)
        except ValueError as exc:
            err(str(exc))
            return EXIT_USAGE
        sees = ", sees private people" if record.sees_private else ""
        err(f"created API key {record.key_id} ({record.name!r}, scope {record.scope}{sees}) in {keys_path(data_dir)}")
        err("Copy the token now: it is not stored and cannot be shown again.")
        typer.echo(token)
        return EXIT_OK

    raise typer.Exit(guard(run))


@app.command("list")
def list_command(
    data_dir: DataDir = None,
    include_revoked: Annotated[bool, typer.Option("--all/--active", help="--active: leave revoked keys out.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Every key: id, scope, created, last used, state, name (never the token)."""

    def run() -> int:
        path = keys_path(data_dir)
        if not path.exists():
            err(f"no API keys yet (no {path}); create one with: faceatlas keys create NAME")
            return EXIT_OK
        with _open(data_dir, create=False) as store:
            keys = store.list(include_revoked=include_revoked)
        if not keys:
            err(f"no API keys in {path}")
        for key in keys:
            if as_json:
                typer.echo(
                    json.dumps(
                        {
                            "key_id": key.key_id,
                            "name": key.name,
                            "scope": key.scope,
                            "created_at": key.created_at,
                            "last_used_at": key.last_used_at,
                            "revoked_at": key.revoked_at,
                            "private": key.sees_private,
                        }
                    )
                )
            else:
                state = "active" if key.active else f"revoked {key.revoked_at}"
                used = key.last_used_at or "never used"
                scope = f"{key.scope}+private" if key.private and key.scope != "admin" else key.scope
                typer.echo(f"{key.key_id}\t{scope}\t{key.created_at}\t{used}\t{state}\t{key.name}")
        return EXIT_OK

    raise typer.Exit(guard(run))


@app.command("revoke")
def revoke_command(
    key_id: Annotated[str, typer.Argument(help="The key's id: the 8 hex characters after 'fa_' in its token.")],
    data_dir: DataDir = None,
) -> None:
    """Revoke a key for good; a server sharing the file refuses it within seconds."""

    def run() -> int:
        with _open(data_dir, create=False) as store:
            key = store.get(key_id.strip().lower())
            if key is None:
                err(f"no API key {key_id!r} in {store.path}; see: faceatlas keys list")
                return EXIT_BAD_INPUT
            if not key.active:
                typer.echo(f"API key {key.key_id} ({key.name!r}) was already revoked at {key.revoked_at}")
                return EXIT_OK
            store.revoke(key.key_id)
        typer.echo(f"revoked API key {key.key_id} ({key.name!r})")
        return EXIT_OK

    raise typer.Exit(guard(run))
