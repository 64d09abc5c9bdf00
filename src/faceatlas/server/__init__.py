"""The REST service and web UI: a thin layer over the Python API (``faceatlas serve``).

>>> from faceatlas.server import create_app, Settings
>>> app = create_app(Settings(data_dir="/srv/faceatlas"))      # an ASGI app (FastAPI)

Nothing heavy is imported here; see docs/SERVICE.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["Settings", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from faceatlas.server.app import create_app

        return create_app
    if name == "Settings":
        from faceatlas.server.settings import Settings

        return Settings
    raise AttributeError(f"module 'faceatlas.server' has no attribute {name!r}")


if TYPE_CHECKING:
    from faceatlas.server.app import create_app
    from faceatlas.server.settings import Settings
