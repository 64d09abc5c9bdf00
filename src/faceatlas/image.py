"""Turn whatever a user passes into an ``HxWx3`` uint8 RGB array, or fail clearly.

Only Pillow decodes; every decoder failure becomes an :class:`InvalidImageError`
(chained to the original exception) whose message names what arrived, what was
expected and how to fix it.

Choices, in one place:

* **Transparency** (RGBA, LA, palette or colour-key transparency) is composited
  onto **white**. Dropping alpha would expose whatever colour the encoder left
  under transparent pixels (often black or noise), and face cut-outs are
  normally shown on a light background, so white looks natural to the detector.
* **Animated** GIF/WebP/APNG files: the **first frame** is used. A PIL image
  passed in directly is used at whatever frame it is currently on.
* **16-bit** data is scaled (``round(v * 255 / 65535)``), never clipped.
  Pillow's 32-bit ``I`` mode is treated as 16-bit data (clipped to 0..65535).
  Pillow itself reduces 16-bit RGB(A) PNGs to 8 bits by keeping the high byte.
* **Floats** (arrays and Pillow ``F`` mode) must lie in ``[0, 1]``; anything
  else (0..255 floats, NaN) is rejected rather than guessed at.
* **Size limit**: images over ``max_pixels`` (default :data:`DEFAULT_MAX_PIXELS`)
  raise :class:`ImageTooLargeError` from the header alone, before any pixel is
  decoded. ``max_pixels=None`` disables faceatlas' check; Pillow's own global
  guard (``PIL.Image.MAX_IMAGE_PIXELS``, an error above twice that value) still
  applies, and we never change that process-wide setting on the caller's behalf.
* Truncated files are errors: Pillow's ``ImageFile.LOAD_TRUNCATED_IMAGES`` is left
  at its default (False) and every image is fully decoded inside the ``try``.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from .errors import FaceAtlasError, ImageTooLargeError, InvalidArgumentError, InvalidImageError, UnsupportedImageError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "HEIF_EXTENSIONS",
    "IMAGE_EXTENSIONS",
    "ImageSource",
    "heif_available",
    "image_extensions",
    "iter_image_files",
    "load_image",
]

#: Default pixel limit (100 megapixels, about a 12000x8000 photo).
DEFAULT_MAX_PIXELS = 100_000_000

#: File extensions (lower case, with the dot) that folder jobs treat as images.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
#: read when the optional ``pillow-heif`` package is installed (not a dependency): see heif_available()
HEIF_EXTENSIONS = frozenset({".heic", ".heif"})

ImageSource = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO | Image.Image | np.ndarray

_FORMATS = "JPEG, PNG, BMP, GIF, WebP or TIFF"
_EXPECTED = f"a {_FORMATS} image"
_PIL_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}


def load_image(source: ImageSource, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode ``source`` into a new C-contiguous ``HxWx3`` uint8 RGB array.

    ``source`` may be a path (``str`` / ``os.PathLike``), encoded bytes
    (``bytes`` / ``bytearray`` / ``memoryview``), a binary file object (read
    from its current position), a ``PIL.Image.Image`` or a numpy array:

    * ``HxW`` or ``HxWx1`` grayscale, ``HxWx3`` RGB (not BGR: convert OpenCV
      images with ``img[..., ::-1]``), ``HxWx4`` RGBA;
    * dtype ``uint8``, ``uint16`` (scaled to 8 bits), ``bool`` (True is white)
      or float in ``[0, 1]``.

    EXIF orientation is applied. Transparent pixels are composited onto white;
    animated files give their first frame. Images with more than ``max_pixels``
    pixels raise :class:`ImageTooLargeError` (``None`` disables the check).

    Raises :class:`InvalidImageError` (missing, empty, corrupt, truncated or
    non-image input), :class:`ImageTooLargeError` or
    :class:`UnsupportedImageError` (unknown source type, array layout or dtype).
    """
    if max_pixels is not None and (isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels <= 0):
        raise InvalidArgumentError(f"max_pixels must be a positive int or None, got {max_pixels!r}")
    if isinstance(source, np.ndarray):
        return _from_array(source, "numpy array", max_pixels)
    if isinstance(source, Image.Image):
        return _from_pil(source, f"PIL image (mode {source.mode}, size {source.size})", max_pixels)
    if isinstance(source, (str, os.PathLike)):
        return _from_path(Path(os.fspath(source)), max_pixels)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _from_bytes(bytes(source), f"{len(source)} bytes", max_pixels)
    if hasattr(source, "read"):
        return _from_file(source, max_pixels)
    raise UnsupportedImageError(
        f"Cannot load an image from an object of type {type(source).__name__}. Expected a file path, bytes, a binary "
        "file object, a PIL.Image.Image or a numpy array."
    )


def capture_time(data: bytes) -> str | None:
    """When a photo was taken, from its EXIF (``DateTimeOriginal``, else ``DateTimeDigitized``), as
    "YYYY-MM-DDTHH:MM:SS" on the camera's clock (EXIF has no time zone unless ``OffsetTime*`` says,
    and cameras' clocks are local); None when absent or not a date (cameras write "0000:00:00 ...",
    blanks, garbage). Reads the header only."""
    from datetime import datetime

    try:
        with Image.open(io.BytesIO(data)) as im:
            exif = im.getexif().get_ifd(ExifTags.IFD.Exif)
    except Exception:  # noqa: BLE001 - no readable EXIF is no capture time, never an error
        return None
    for tag in (ExifTags.Base.DateTimeOriginal, ExifTags.Base.DateTimeDigitized):
        value = exif.get(tag)
        if isinstance(value, bytes):
            value = value.decode("ascii", "replace")
        if not isinstance(value, str):
            continue
        try:
            return datetime.strptime(value.strip().strip("\x00")[:19], "%Y:%m:%d %H:%M:%S").isoformat()
        except ValueError:
            continue
    return None


def heif_available() -> bool:
    """Teach Pillow HEIC/HEIF when the optional ``pillow-heif`` package is installed."""
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


def image_extensions() -> frozenset[str]:
    """The file extensions (lower case) read as images here: HEIC/HEIF too when pillow-heif is installed."""
    return IMAGE_EXTENSIONS | (HEIF_EXTENSIONS if heif_available() else frozenset())


def iter_image_files(
    folder: str | os.PathLike,
    recursive: bool = True,
    on_error: Callable[[OSError], None] | None = None,
    extensions: Collection[str] | None = None,
) -> Iterator[Path]:
    """Iterate over the image files in ``folder`` (and its subfolders if ``recursive``), sorted by path.

    A file counts as an image when its extension (any case) is in :func:`image_extensions`
    (:data:`IMAGE_EXTENSIONS`, and HEIC/HEIF with pillow-heif): the one walk that ``detect``,
    ``enroll``, the evaluations and ``index`` all use. Hidden files and folders (names starting with
    ``.``) are skipped: they are mostly thumbnails and macOS ``._*`` metadata
    files that only look like images. Symlinked folders are not followed.
    A folder that cannot be listed is skipped; ``on_error(exc)`` is told of each (``exc.filename``).
    ``extensions``: other endings to list instead (lower case, with the dot; the collection adds videos).
    """
    root = Path(os.fspath(folder))
    if not root.is_dir():
        what = "a file (use load_image for a single image)" if root.exists() else "missing"
        raise InvalidImageError(f"Expected a folder of images, but {str(root)!r} is {what}. Pass an existing folder.")
    extensions = image_extensions() if extensions is None else frozenset(extensions)
    found: list[Path] = []  # collected eagerly so a bad folder fails at the call, not mid-loop
    for dirpath, dirnames, filenames in os.walk(root, onerror=on_error):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")] if recursive else []
        found.extend(
            Path(dirpath, name)
            for name in filenames
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in extensions
        )
    return iter(sorted(found))


# --- sources -----------------------------------------------------------------


def _from_path(path: Path, max_pixels: int | None) -> np.ndarray:
    label = repr(str(path))
    if path.is_dir():
        raise InvalidImageError(
            f"{label} is a folder, not an image file. Pass a single image file, or use "
            "iter_image_files(folder) to list the images inside it."
        )
    if not path.exists():
        raise InvalidImageError(
            f"Image file {label} does not exist (working directory: {os.getcwd()!r}). Check the path and spelling."
        )
    if path.suffix.lower() in HEIF_EXTENSIONS:
        heif_available()  # Pillow reads HEIC/HEIF once pillow-heif registered its opener
    try:
        size = path.stat().st_size
        if size == 0:
            raise InvalidImageError(
                f"{label} is an empty (0-byte) file, expected {_EXPECTED}. Re-copy or re-download it."
            )
        with _open(path) as im:
            return _decode(im, label, max_pixels)
    except FaceAtlasError:
        raise
    except Exception as exc:  # any decoder failure, permission error, ...
        raise _decode_error(label, exc, _head(path)) from exc


def _from_file(fileobj: Any, max_pixels: int | None) -> np.ndarray:
    label = f"file object {getattr(fileobj, 'name', type(fileobj).__name__)!r}"
    try:
        data = fileobj.read()
    except Exception as exc:
        raise InvalidImageError(f"Could not read from {label}: {exc}. Pass a readable binary file.") from exc
    if isinstance(data, str):
        raise InvalidImageError(f"{label} is open in text mode, but images are binary. Open it with mode 'rb'.")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise UnsupportedImageError(f"{label}.read() returned a {type(data).__name__}, expected bytes.")
    return _from_bytes(bytes(data), label, max_pixels)


def _from_bytes(data: bytes, label: str, max_pixels: int | None) -> np.ndarray:
    if not data:
        raise InvalidImageError(
            f"Got 0 bytes ({label}), expected {_EXPECTED}. Check that the data was read completely."
        )
    try:
        with _open(io.BytesIO(data)) as im:
            return _decode(im, label, max_pixels)
    except FaceAtlasError:
        raise
    except Exception as exc:
        raise _decode_error(label, exc, data[:16]) from exc


def _from_pil(im: Image.Image, label: str, max_pixels: int | None) -> np.ndarray:
    try:
        return _decode(im, label, max_pixels)
    except FaceAtlasError:
        raise
    except Exception as exc:  # a lazily opened image may still fail to decode
        raise _decode_error(label, exc, b"") from exc


# --- decoding ----------------------------------------------------------------


def _open(fp: Path | BinaryIO) -> Image.Image:
    """``Image.open`` (reads the header only) without Pillow's size warning.

    We enforce ``max_pixels`` ourselves right after opening; the warning would
    only be noise, or an exception under ``-W error``. Pillow's hard
    ``DecompressionBombError`` still fires and is reported as too large.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(fp)


def _decode(im: Image.Image, label: str, max_pixels: int | None) -> np.ndarray:
    """Check the size from the header, fully decode, orient and convert ``im``."""
    _check_size(im.width, im.height, label, max_pixels)
    im.load()  # force the full decode inside the caller's try, so truncation raises here
    return _from_array(_pil_to_array(_exif_oriented(im)), label, max_pixels)


def _exif_oriented(im: Image.Image) -> Image.Image:
    try:
        if im.getexif().get(ExifTags.Base.Orientation, 1) in (1, None):
            return im
        return ImageOps.exif_transpose(im)
    except Exception:  # noqa: BLE001 - broken EXIF raises many unrelated types
        # Broken EXIF is common in camera files; the pixels are fine, so keep them upright as stored.
        return im


def _pil_to_array(im: Image.Image) -> np.ndarray:
    """Pillow image -> uint8/uint16/float array with 1, 3 or 4 channels."""
    if im.mode.startswith("I;16"):  # checked before transparency: a 16-bit colour key is ignored
        return np.asarray(im).astype(np.uint16)  # also normalises big-endian I;16B
    if im.mode == "I":
        return np.clip(np.asarray(im), 0, 65535).astype(np.uint16)
    if im.mode == "F":
        return np.asarray(im)
    if im.mode in _PIL_ALPHA_MODES or "transparency" in im.info:
        return np.asarray(im.convert("RGBA"))
    if im.mode in ("RGB", "L"):
        return np.asarray(im)
    return np.asarray(im.convert("RGB"))  # 1, P, CMYK (Pillow undoes Adobe inversion), YCbCr, LAB, HSV


def _from_array(arr: np.ndarray, label: str, max_pixels: int | None) -> np.ndarray:
    arr = _as_hwc(arr, label)
    _check_size(arr.shape[1], arr.shape[0], label, max_pixels)
    arr = _to_uint8(arr, label)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.shape[2] == 4:
        arr = _composite_on_white(arr)
    return np.array(arr, dtype=np.uint8, order="C", copy=True)  # never alias the caller's array


def _as_hwc(arr: np.ndarray, label: str) -> np.ndarray:
    """Validate the layout and return an ``HxWxC`` view with C in (1, 3, 4)."""
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        hint = ""
        if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[2] > 4:
            hint = " It looks channels-first: use arr.transpose(1, 2, 0)."
        elif arr.ndim == 4 and arr.shape[0] == 1:
            hint = " It looks like a batch of one: use arr[0]."
        raise UnsupportedImageError(
            f"Got a {label} of shape {arr.shape}; expected HxW (gray), HxWx1, HxWx3 (RGB) or HxWx4 (RGBA).{hint}"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InvalidImageError(f"Got an empty {label} of shape {arr.shape}; an image needs at least 1x1 pixels.")
    return arr


def _to_uint8(arr: np.ndarray, label: str) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * np.uint8(255)
    if arr.dtype == np.uint16:
        return ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)  # round(v * 255 / 65535)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise UnsupportedImageError(
                f"Got a float {label} containing NaN or inf; float images must be finite values in [0, 1]. "
                "Replace them first, e.g. np.nan_to_num(arr)."
            )
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0.0 or hi > 1.0:
            raise UnsupportedImageError(
                f"Got a float {label} with values in [{lo:g}, {hi:g}]; float images must lie in [0, 1]. "
                "Divide 0..255 data by 255, or pass np.clip(arr, 0, 255).astype(np.uint8)."
            )
        return np.rint(arr.astype(np.float32) * 255.0).astype(np.uint8)
    raise UnsupportedImageError(
        f"Got a {label} of dtype {arr.dtype}; expected uint8, uint16, bool or float in [0, 1]. "
        "Convert it, e.g. np.clip(arr, 0, 255).astype(np.uint8)."
    )


def _composite_on_white(rgba: np.ndarray) -> np.ndarray:
    rgb = rgba[..., :3].astype(np.uint32)
    alpha = rgba[..., 3:].astype(np.uint32)
    return ((rgb * alpha + 255 * (255 - alpha) + 127) // 255).astype(np.uint8)


# --- checks and messages -----------------------------------------------------


def _check_size(width: int, height: int, label: str, max_pixels: int | None) -> None:
    if max_pixels is not None and width * height > max_pixels:
        raise ImageTooLargeError(
            f"{label} is {width}x{height} = {width * height / 1e6:.1f} megapixels, more than the limit of "
            f"{max_pixels / 1e6:.1f} megapixels (max_pixels); it may be a decompression bomb. If you trust it, "
            "pass a larger max_pixels (or None), or downscale the image first."
        )


def _decode_error(label: str, exc: Exception, head: bytes) -> InvalidImageError:
    if isinstance(exc, Image.DecompressionBombError):
        return ImageTooLargeError(
            f"{label} is too large for Pillow's own safety limit ({exc}). If you trust it, raise "
            "PIL.Image.MAX_IMAGE_PIXELS (or set it to None) and pass max_pixels=None, or downscale it first."
        )
    if isinstance(exc, UnidentifiedImageError):
        starts = f" (it starts with {head!r})" if head else ""
        return InvalidImageError(
            f"{label} is not a recognised image{starts}; expected {_EXPECTED}. Check that you passed the right file."
        )
    if isinstance(exc, PermissionError):
        return InvalidImageError(f"Cannot read {label}: permission denied. Check the file's permissions.")
    return InvalidImageError(
        f"Could not decode {label}: {type(exc).__name__}: {exc}. Expected a complete {_FORMATS} image; "
        "the file is probably truncated or corrupt, so re-copy, re-download or re-export it."
    )


def _head(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(16)
    except OSError:
        return b""
