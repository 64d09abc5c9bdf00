"""Tests for faceatlas.image: every input is built in tmp_path / memory with Pillow."""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from faceatlas.errors import ImageTooLargeError, InvalidImageError, UnsupportedImageError
from faceatlas.image import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, iter_image_files, load_image

# --- helpers -----------------------------------------------------------------


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A real photograph (skimage's astronaut), or a textured stand-in."""
    try:
        from skimage.data import astronaut

        return astronaut()
    except Exception:  # pragma: no cover - skimage is a test extra
        y, x = np.mgrid[0:256, 0:256]
        return np.dstack([x, y, (x * y) % 256]).astype(np.uint8)


def encode(img: Image.Image | np.ndarray, fmt: str, **kwargs) -> bytes:
    if isinstance(img, np.ndarray):
        img = Image.fromarray(img)
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares ``width x height`` followed by a tiny (bogus) IDAT."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def assert_rgb(out: np.ndarray, shape_hw: tuple[int, int]) -> None:
    assert out.dtype == np.uint8
    assert out.shape == (*shape_hw, 3)
    assert out.flags.c_contiguous


# --- round trips -------------------------------------------------------------


def test_png_round_trip_is_exact(tmp_path, photo):
    path = write(tmp_path, "a.png", encode(photo, "PNG"))
    out = load_image(path)
    assert_rgb(out, photo.shape[:2])
    np.testing.assert_array_equal(out, photo)
    np.testing.assert_array_equal(load_image(str(path)), photo)


def test_jpeg_round_trip_is_close(tmp_path, photo):
    data = encode(photo, "JPEG", quality=95)
    out = load_image(write(tmp_path, "a.jpg", data))
    assert_rgb(out, photo.shape[:2])
    assert np.abs(out.astype(int) - photo).mean() < 3
    np.testing.assert_array_equal(out, np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))


def test_bytes_bytearray_memoryview_and_file_objects(tmp_path, photo):
    data = encode(photo, "PNG")
    for source in (data, bytearray(data), memoryview(data), io.BytesIO(data)):
        np.testing.assert_array_equal(load_image(source), photo)
    path = write(tmp_path, "a.png", data)
    with open(path, "rb") as f:
        np.testing.assert_array_equal(load_image(f), photo)


def test_pil_image_inputs(tmp_path, photo):
    np.testing.assert_array_equal(load_image(Image.fromarray(photo)), photo)
    gray = Image.fromarray(photo[..., 0])
    np.testing.assert_array_equal(load_image(gray), np.dstack([photo[..., 0]] * 3))
    lazy = Image.open(write(tmp_path, "a.png", encode(photo, "PNG")))  # not loaded yet
    np.testing.assert_array_equal(load_image(lazy), photo)
    pal = Image.fromarray(photo).convert("P")
    np.testing.assert_array_equal(load_image(pal), np.asarray(pal.convert("RGB")))


def test_output_is_a_new_array():
    arr = np.zeros((4, 5, 3), np.uint8)
    out = load_image(arr)
    out[:] = 7
    assert arr.max() == 0


# --- broken input ------------------------------------------------------------


def test_truncated_jpeg_raises_instead_of_grey_fill(tmp_path, photo):
    data = encode(photo, "JPEG", quality=95)
    half = data[: len(data) // 2]
    path = write(tmp_path, "half.jpg", half)
    with pytest.raises(InvalidImageError, match="half.jpg") as info:
        load_image(path)
    assert "truncated" in str(info.value)
    assert info.value.__cause__ is not None  # chained, not swallowed
    with pytest.raises(InvalidImageError, match="bytes"):
        load_image(half)


def test_truncated_png_raises(tmp_path, photo):
    data = encode(photo, "PNG")
    with pytest.raises(InvalidImageError, match="cut.png"):
        load_image(write(tmp_path, "cut.png", data[: len(data) // 2]))


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xd8\xff" + bytes(range(256)) * 4,  # JPEG magic then junk
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 64,  # PNG magic then junk
        b"GIF89a" + b"\xff" * 40,
    ],
    ids=["jpeg", "png", "gif"],
)
def test_corrupt_bytes_raise(tmp_path, data):
    path = write(tmp_path, "broken.img", data)
    with pytest.raises(InvalidImageError, match="broken.img") as info:
        load_image(path)
    assert type(info.value) is InvalidImageError
    assert info.value.__cause__ is not None


def test_corrupt_png_crc_raises(tmp_path, photo):
    data = bytearray(encode(photo, "PNG"))
    data[29] ^= 0xFF  # inside the IHDR CRC
    with pytest.raises(InvalidImageError, match="crc.png"):
        load_image(write(tmp_path, "crc.png", bytes(data)))


def test_zero_byte_file(tmp_path):
    path = write(tmp_path, "empty.jpg", b"")
    with pytest.raises(InvalidImageError, match=r"empty\.jpg.*0-byte"):
        load_image(path)
    with pytest.raises(InvalidImageError, match="0 bytes"):
        load_image(b"")
    with pytest.raises(InvalidImageError, match="0 bytes"):
        load_image(io.BytesIO())


def test_text_file(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("hello, this is not a photo\n")
    with pytest.raises(InvalidImageError, match="notes.jpg") as info:
        load_image(path)
    assert "not a recognised image" in str(info.value)
    assert "hello" in str(info.value)  # shows what actually arrived


def test_text_mode_file_object(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("abc")
    with open(path) as f, pytest.raises(InvalidImageError, match="'rb'"):
        load_image(f)


def test_missing_file(tmp_path):
    path = tmp_path / "nope" / "missing.png"
    with pytest.raises(InvalidImageError, match="missing.png") as info:
        load_image(path)
    assert "does not exist" in str(info.value)


def test_directory(tmp_path):
    with pytest.raises(InvalidImageError, match="folder") as info:
        load_image(tmp_path)
    assert str(tmp_path) in str(info.value)
    assert "iter_image_files" in str(info.value)


@pytest.mark.parametrize("source", [123, None, ["a.png"], {"path": "a.png"}])
def test_unsupported_source_types(source):
    with pytest.raises(UnsupportedImageError, match=type(source).__name__):
        load_image(source)


@pytest.mark.parametrize("bad", [0, -5, 1.5, "100", True])
def test_bad_max_pixels(bad):
    with pytest.raises(ValueError, match="max_pixels"):
        load_image(np.zeros((2, 2), np.uint8), max_pixels=bad)


# --- size limits -------------------------------------------------------------


def test_decompression_bomb_header_is_rejected_before_decoding(tmp_path):
    # 100000 x 100000 = 10 gigapixels: Pillow's own hard limit fires at open.
    path = write(tmp_path, "bomb.png", png_header_only(100_000, 100_000))
    with pytest.raises(ImageTooLargeError, match="bomb.png"):
        load_image(path)
    with pytest.raises(ImageTooLargeError):
        load_image(path, max_pixels=None)


def test_our_limit_fires_from_the_header(tmp_path):
    # 12000 x 9000 = 108 MP: over our 100 MP default, under Pillow's hard limit.
    path = write(tmp_path, "big.png", png_header_only(12_000, 9_000))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's DecompressionBombWarning must not escape
        with pytest.raises(ImageTooLargeError, match=r"big\.png.*12000x9000.*max_pixels"):
            load_image(path)
    assert 12_000 * 9_000 > DEFAULT_MAX_PIXELS
    # Without the limit the header is accepted and the (bogus) pixel data then fails to decode.
    with pytest.raises(InvalidImageError) as info:
        load_image(path, max_pixels=None)
    assert type(info.value) is InvalidImageError


def test_small_max_pixels(tmp_path, photo):
    data = encode(photo, "PNG")
    with pytest.raises(ImageTooLargeError, match="512x512"):
        load_image(data, max_pixels=1000)
    with pytest.raises(ImageTooLargeError):
        load_image(photo, max_pixels=1000)
    assert load_image(data, max_pixels=512 * 512).shape == (512, 512, 3)
    assert load_image(data, max_pixels=None).shape == (512, 512, 3)


# --- colour modes ------------------------------------------------------------


def test_grayscale_png_and_jpeg(tmp_path):
    gray = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (10, 1))
    out = load_image(write(tmp_path, "g.png", encode(gray, "PNG")))
    assert_rgb(out, gray.shape)
    np.testing.assert_array_equal(out, np.dstack([gray] * 3))
    out = load_image(write(tmp_path, "g.jpg", encode(gray, "JPEG", quality=95)))
    assert_rgb(out, gray.shape)
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()


def test_bilevel_image():
    im = Image.new("1", (4, 2), 1)
    np.testing.assert_array_equal(load_image(im), np.full((2, 4, 3), 255, np.uint8))


def test_cmyk_jpeg(tmp_path):
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0), (200, 150, 100)]
    rgb = np.zeros((32, 32 * len(colours), 3), np.uint8)
    for i, c in enumerate(colours):
        rgb[:, 32 * i : 32 * (i + 1)] = c
    data = encode(Image.fromarray(rgb).convert("CMYK"), "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    assert "adobe" in Image.open(io.BytesIO(data)).info  # Pillow writes Adobe (inverted) CMYK
    out = load_image(write(tmp_path, "cmyk.jpg", data))
    assert_rgb(out, rgb.shape[:2])
    for i, c in enumerate(colours):
        np.testing.assert_allclose(out[16, 32 * i + 16], c, atol=8)


def test_16bit_gray_png_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 1000, 257 * 100, 32896, 65535]], np.uint16)
    im = Image.fromarray(values)
    assert im.mode == "I;16"
    out = load_image(write(tmp_path, "g16.png", encode(im, "PNG")))
    np.testing.assert_array_equal(out[0, :, 0], [0, 4, 100, 128, 255])
    np.testing.assert_array_equal(load_image(im)[0, :, 0], [0, 4, 100, 128, 255])


def test_32bit_int_and_float_pil_modes():
    as_i = Image.new("I", (4, 1))
    as_i.putdata([0, 65535, 70000, -5])
    np.testing.assert_array_equal(load_image(as_i)[0, :, 0], [0, 255, 255, 0])
    as_f = Image.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32))
    assert as_f.mode == "F"
    np.testing.assert_array_equal(load_image(as_f)[0, :, 0], [0, 128, 255])
    with pytest.raises(UnsupportedImageError, match=r"\[0, 1\]"):
        load_image(Image.fromarray(np.array([[0.0, 200.0]], np.float32)))


def test_16bit_rgb_png(tmp_path):
    cv2 = pytest.importorskip("cv2")
    rgb16 = np.zeros((4, 4, 3), np.uint16)
    rgb16[..., 0], rgb16[..., 1], rgb16[..., 2] = 40000, 65535, 1000
    path = tmp_path / "rgb16.png"
    assert cv2.imwrite(str(path), rgb16[..., ::-1])  # cv2 writes BGR
    out = load_image(path)
    expected = np.rint(rgb16[0, 0] / 257.0)
    np.testing.assert_allclose(out[0, 0], expected, atol=1)


def test_rgba_png_composited_on_white(tmp_path):
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[0, 0] = (0, 0, 0, 0)  # fully transparent black -> white
    rgba[0, 1] = (255, 0, 0, 255)  # opaque red stays red
    rgba[0, 2] = (0, 0, 0, 128)  # half-transparent black -> mid grey
    rgba[1, :] = (10, 20, 30, 255)
    out = load_image(write(tmp_path, "a.png", encode(rgba, "PNG")))
    assert_rgb(out, (2, 3))
    np.testing.assert_array_equal(out[0, 0], (255, 255, 255))
    np.testing.assert_array_equal(out[0, 1], (255, 0, 0))
    np.testing.assert_array_equal(out[0, 2], (127, 127, 127))
    np.testing.assert_array_equal(out[1, 0], (10, 20, 30))


def test_la_png_composited_on_white(tmp_path):
    im = Image.new("LA", (2, 1))
    im.putdata([(0, 0), (50, 255)])
    out = load_image(write(tmp_path, "la.png", encode(im, "PNG")))
    np.testing.assert_array_equal(out[0], [(255, 255, 255), (50, 50, 50)])


def test_palette_png_with_transparency(tmp_path):
    im = Image.new("P", (4, 1))
    im.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    im.putdata([0, 1, 2, 0])
    data = encode(im, "PNG", transparency=0)
    reopened = Image.open(io.BytesIO(data))
    assert reopened.mode == "P" and "transparency" in reopened.info
    out = load_image(write(tmp_path, "p.png", data))
    np.testing.assert_array_equal(out[0], [(255, 255, 255), (255, 0, 0), (0, 0, 255), (255, 255, 255)])


def test_palette_png_without_transparency(tmp_path):
    im = Image.new("P", (2, 1))
    im.putpalette([0, 128, 0, 255, 255, 0] + [0] * (256 * 3 - 6))
    im.putdata([0, 1])
    out = load_image(write(tmp_path, "p.png", encode(im, "PNG")))
    np.testing.assert_array_equal(out[0], [(0, 128, 0), (255, 255, 0)])


# --- animation ---------------------------------------------------------------


@pytest.mark.parametrize("fmt,ext", [("GIF", "gif"), ("WEBP", "webp"), ("PNG", "png")])
def test_animated_first_frame(tmp_path, fmt, ext):
    frames = [Image.new("RGB", (16, 8), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    kwargs = {"lossless": True} if fmt == "WEBP" else {}
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, **kwargs)
    assert Image.open(io.BytesIO(data)).n_frames == 3
    out = load_image(write(tmp_path, f"anim.{ext}", data))
    assert_rgb(out, (8, 16))
    np.testing.assert_array_equal(out[4, 8], (255, 0, 0))


# --- EXIF orientation --------------------------------------------------------


def exif_jpeg(orientation: int) -> tuple[bytes, np.ndarray]:
    """A 40x60 (HxW) JPEG with big colour blocks; returns (bytes, stored pixels ignoring EXIF)."""
    stored = np.zeros((40, 60, 3), np.uint8)
    stored[:20, :30] = (255, 0, 0)  # top-left red
    stored[:20, 30:] = (0, 255, 0)  # top-right green
    stored[20:, :30] = (0, 0, 255)  # bottom-left blue
    stored[20:, 30:] = (255, 255, 255)
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(stored, "JPEG", quality=95, exif=exif.tobytes())
    raw = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    return data, raw


def test_exif_orientation_6_rotates_clockwise(tmp_path):
    data, raw = exif_jpeg(6)
    out = load_image(write(tmp_path, "o6.jpg", data))
    assert_rgb(out, (60, 40))  # portrait after rotation
    np.testing.assert_array_equal(out, np.rot90(raw, k=-1))  # 90 degrees clockwise
    # stored top-left (red) is now top-right; stored bottom-left (blue) is now top-left
    np.testing.assert_allclose(out[5, 35], (255, 0, 0), atol=10)
    np.testing.assert_allclose(out[5, 5], (0, 0, 255), atol=10)
    np.testing.assert_allclose(out[55, 35], (0, 255, 0), atol=10)


def test_exif_orientation_3_rotates_180(tmp_path):
    data, raw = exif_jpeg(3)
    out = load_image(data)
    assert_rgb(out, (40, 60))
    np.testing.assert_array_equal(out, raw[::-1, ::-1])
    np.testing.assert_allclose(out[35, 55], (255, 0, 0), atol=10)  # red now bottom-right


def test_exif_orientation_applies_to_pil_input(tmp_path):
    data, raw = exif_jpeg(6)
    out = load_image(Image.open(io.BytesIO(data)))
    np.testing.assert_array_equal(out, np.rot90(raw, k=-1))


# --- numpy arrays ------------------------------------------------------------


def test_arrays_of_each_supported_layout():
    gray = np.array([[0, 128], [255, 7]], np.uint8)
    expected = np.dstack([gray] * 3)
    np.testing.assert_array_equal(load_image(gray), expected)
    np.testing.assert_array_equal(load_image(gray[..., None]), expected)
    rgb = np.arange(2 * 2 * 3, dtype=np.uint8).reshape(2, 2, 3)
    np.testing.assert_array_equal(load_image(rgb), rgb)
    rgba = np.dstack([rgb, np.full((2, 2), 255, np.uint8)])
    np.testing.assert_array_equal(load_image(rgba), rgb)
    rgba[..., 3] = 0
    np.testing.assert_array_equal(load_image(rgba), np.full((2, 2, 3), 255, np.uint8))


def test_arrays_of_each_supported_dtype():
    np.testing.assert_array_equal(load_image(np.array([[0, 65535, 257 * 3]], np.uint16))[0, :, 0], [0, 255, 3])
    np.testing.assert_array_equal(load_image(np.array([[False, True]]))[0, :, 0], [0, 255])
    for dtype in (np.float16, np.float32, np.float64):
        out = load_image(np.array([[0.0, 0.5, 1.0]], dtype))
        np.testing.assert_array_equal(out[0, :, 0], [0, 128, 255])
    rgba16 = np.zeros((1, 1, 4), np.uint16)
    rgba16[0, 0] = (65535, 0, 0, 65535)
    np.testing.assert_array_equal(load_image(rgba16)[0, 0], (255, 0, 0))


def test_non_contiguous_array():
    bgr = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    view = bgr[::2, :, ::-1]
    out = load_image(view)
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out, view)


@pytest.mark.parametrize(
    "arr,needle",
    [
        (np.zeros((1, 4, 4, 3), np.uint8), r"arr\[0\]"),
        (np.zeros((2, 2, 2, 2), np.uint8), "shape"),
        (np.zeros((4, 4, 2), np.uint8), r"\(4, 4, 2\); expected HxW \(gray\).*RGBA\)\.$"),
        (np.zeros((3, 8, 8), np.uint8), "transpose"),
        (np.zeros(5, np.uint8), r"\(5,\)"),
        (np.zeros((4, 4), np.complex64), "complex64"),
        (np.zeros((4, 4), np.int64), "int64"),
        (np.zeros((4, 4), np.int8), "int8"),
        (np.full((4, 4), 200.0), r"200"),
        (np.array([[0.5, np.nan]]), "NaN"),
        (np.array([[-0.1, 0.5]], np.float32), r"-0\.1"),
    ],
)
def test_unsupported_arrays(arr, needle):
    with pytest.raises(UnsupportedImageError, match=needle):
        load_image(arr)


def test_empty_array():
    with pytest.raises(InvalidImageError, match="empty"):
        load_image(np.zeros((0, 4, 3), np.uint8))


# --- properties --------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(hnp.arrays(np.uint8, st.tuples(st.integers(1, 12), st.integers(1, 12), st.just(3))))
def test_png_bytes_round_trip_property(arr):
    np.testing.assert_array_equal(load_image(encode(arr, "PNG")), arr)


@settings(max_examples=50, deadline=None)
@given(hnp.arrays(np.uint16, (3, 5)))
def test_uint16_scaling_property(arr):
    out = load_image(arr)[..., 0].astype(int)
    expected = arr.astype(float) * 255 / 65535
    assert np.all(np.abs(out - expected) <= 0.5 + 1e-9)


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns about the junk EXIF it finds
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(
        [b"", b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"BM", b"RIFF\x00\x00\x00\x00WEBP", b"II*\x00"]
    ),
    st.binary(max_size=300),
)
def test_garbage_never_escapes_as_a_raw_error(prefix, body):
    try:
        out = load_image(prefix + body, max_pixels=10_000_000)
    except InvalidImageError as exc:
        assert "bytes" in str(exc)
    else:
        assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3


# --- folders -----------------------------------------------------------------


def test_iter_image_files(tmp_path):
    names = ["b.jpg", "a.PNG", "c.txt", "notes", ".hidden.jpg", "._a.jpg", "sub/d.webp", "sub/e.TIFF"]
    names += ["sub/deeper/f.gif", ".cache/g.png", "z.bmp", "y.jpeg", "x.tif"]
    for rel in names:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    (tmp_path / "dir.jpg").mkdir()  # a folder with an image extension is not a file
    found = [p.relative_to(tmp_path).as_posix() for p in iter_image_files(tmp_path)]
    assert found == ["a.PNG", "b.jpg", "sub/d.webp", "sub/deeper/f.gif", "sub/e.TIFF", "x.tif", "y.jpeg", "z.bmp"]
    top = [p.name for p in iter_image_files(str(tmp_path), recursive=False)]
    assert top == ["a.PNG", "b.jpg", "x.tif", "y.jpeg", "z.bmp"]
    assert all(isinstance(p, Path) for p in iter_image_files(tmp_path))
    assert {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"} == set(IMAGE_EXTENSIONS)


def test_iter_image_files_bad_folder(tmp_path):
    with pytest.raises(InvalidImageError, match="missing"):
        iter_image_files(tmp_path / "nope")  # fails at the call, before iterating
    f = write(tmp_path, "one.jpg", b"x")
    with pytest.raises(InvalidImageError, match="one.jpg.*load_image"):
        iter_image_files(f)


def test_every_command_walks_folders_the_same_way(tmp_path, monkeypatch):
    """`detect`, `enroll`, the evaluations and `index` list a folder through one walk, so they
    agree on which files are photos (HEIC/HEIF included once pillow-heif is installed)."""
    import sys
    import types

    from faceatlas.collection.indexer import list_photos

    for name in ("a.jpg", "b.gif", "c.HEIC", ".hidden.jpg", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    monkeypatch.setitem(sys.modules, "pillow_heif", types.SimpleNamespace(register_heif_opener=lambda: None))
    walked = [p.name for p in iter_image_files(tmp_path)]
    assert walked == ["a.jpg", "b.gif", "c.HEIC"]
    assert [p.name for p in list_photos(tmp_path)] == walked
    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # not installed: neither reads HEIC
    assert [p.name for p in iter_image_files(tmp_path)] == [p.name for p in list_photos(tmp_path)] == ["a.jpg", "b.gif"]
