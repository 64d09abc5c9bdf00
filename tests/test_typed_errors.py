"""Every error a caller can see is a FaceAtlasError (README: "every error faceatlas raises is a
``FaceAtlasError``"), and still a ValueError where it was one, so old ``except`` clauses hold."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import faceatlas
from faceatlas.errors import FaceAtlasError, InvalidArgumentError
from faceatlas.vector_index import unit_rows

SRC = Path(__file__).resolve().parents[1] / "src" / "faceatlas"

# where a bare ValueError is right: pydantic wants it from validators (it becomes the settings'
# error message), and the dlib weight-file parser's own, which its caller turns into a ModelError
BARE_VALUE_ERROR_ALLOWED = {
    "server/settings.py": None,  # any number: field validators
    "models/dlib_shape_predictor.py": 3,
}


def _bare_value_errors(path: Path) -> int:
    count = 0
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(exc, ast.Name) and exc.id == "ValueError":
                count += 1
    return count


def test_no_bare_value_error_is_raised_where_a_user_can_see_it() -> None:
    found = {}
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        count = _bare_value_errors(path)
        if rel in BARE_VALUE_ERROR_ALLOWED:
            allowed = BARE_VALUE_ERROR_ALLOWED[rel]
            assert allowed is None or count <= allowed, f"{rel}: {count} bare ValueErrors, {allowed} allowed"
        elif count:
            found[rel] = count
    assert not found, f"raise a FaceAtlasError subclass (e.g. InvalidArgumentError) instead of ValueError: {found}"


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda: faceatlas.cluster(np.ones((3, 4), np.float32), k=0), id="cluster k=0"),
        pytest.param(lambda: faceatlas.cluster(np.ones((3, 4), np.int64)), id="cluster of integers"),
        pytest.param(lambda: faceatlas.load_image(np.zeros((8, 8, 3), np.uint8), max_pixels=0), id="max_pixels=0"),
        pytest.param(lambda: faceatlas.FaceAnalyzer(min_face_size=-5), id="min_face_size<0"),
        pytest.param(lambda: _verify_embeddings(far=2.0), id="verify far=2"),
        pytest.param(lambda: unit_rows(np.full((1, 3), np.nan, np.float32)), id="NaN embedding"),
    ],
)
def test_bad_arguments_raise_a_faceatlas_error_that_is_a_value_error(call) -> None:
    with pytest.raises(FaceAtlasError) as caught:
        call()
    assert isinstance(caught.value, ValueError), type(caught.value).__mro__
    assert str(caught.value)  # says what was wrong


def _verify_embeddings(far: float) -> object:
    from faceatlas.verification import FARCalibrator

    return FARCalibrator().fit(np.linspace(-1, 1, 50), np.zeros(50, bool)).threshold(far)


def test_invalid_argument_error_is_both() -> None:
    assert issubclass(InvalidArgumentError, FaceAtlasError) and issubclass(InvalidArgumentError, ValueError)
