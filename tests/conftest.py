"""Shared fixtures: real faces from installed packages, and ../shared/data when present."""

from __future__ import annotations

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
