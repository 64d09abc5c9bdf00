"""A contact sheet of a collection: one row of face thumbnails per person, as a static HTML page.

``OUT/index.html`` plus ``OUT/faces/*.jpg``; no JavaScript, nothing fetched from elsewhere, so it
opens offline from the file system. Each thumbnail links to its photo by a path relative to
``OUT``. Thumbnails are named after the photo's bytes and the face's box, so a re-export only
crops faces it has not cropped before.
"""

from __future__ import annotations

import hashlib
import html
import os
import tempfile
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath

import numpy as np

from faceatlas.collection.store import UNASSIGNED, CollectionStore, FaceInfo
from faceatlas.errors import InvalidArgumentError, InvalidImageError

THUMB_SIZE = 112  # pixels, square
MARGIN = 0.3  # of the face box, on each side: hair and chin help a person recognise a face
FACES_DIR = "faces"


@dataclass
class HtmlExport:
    """What ``export_html`` wrote."""

    index: Path
    rows: int
    thumbnails: int  # cropped this time (the others were there from an earlier export)
    missing: list[str] = field(default_factory=list)  # photos no longer found or readable

    def __str__(self) -> str:
        line = f"wrote {self.index}: {self.rows} row(s), {self.thumbnails} new thumbnail(s)"
        return line + (f"; {len(self.missing)} photo(s) missing" if self.missing else "")


@dataclass(frozen=True, slots=True)
class _Row:
    title: str
    note: str
    n_faces: int
    faces: Sequence[FaceInfo]


def export_html(store: CollectionStore, out_dir: str | os.PathLike[str], *, max_faces: int = 24) -> HtmlExport:
    """Write the contact sheet of ``store`` to ``out_dir`` (created if needed).

    Rows: named clusters, then unnamed ones ("Person N", N = the cluster id for
    ``name_cluster``), each by size; then faces not clustered yet, if any; then "Unassigned".
    Each row shows its ``max_faces`` best-quality faces. Photos that are gone are shown as missing.
    """
    if max_faces < 1:
        raise InvalidArgumentError(f"max_faces must be at least 1, got {max_faces}")
    out = Path(out_dir).expanduser().absolute()
    (out / FACES_DIR).mkdir(parents=True, exist_ok=True)
    rows = _rows(store, max_faces)
    thumbs, written, missing = _thumbnails([f for row in rows for f in row.faces], out / FACES_DIR)
    page = _page(store, rows, thumbs, out)
    index = out / "index.html"
    _write_atomically(index, page.encode("utf-8"))
    return HtmlExport(index, len(rows), written, missing)


def _rows(store: CollectionStore, max_faces: int) -> list[_Row]:
    clusters = sorted(store.clusters(), key=lambda c: (c.name is None, -c.n_faces, c.id))
    rows = [
        _Row(c.name or f"Person {c.id}", f"cluster {c.id}", c.n_faces, store.cluster_faces(c.id)[:max_faces])
        for c in clusters
    ]
    waiting = store.cluster_faces(None)
    if waiting:
        rows.append(_Row("Not clustered yet", "run the clustering", len(waiting), waiting[:max_faces]))
    unassigned = store.cluster_faces(UNASSIGNED)
    rows.append(_Row("Unassigned", "faces the clustering placed with nobody", len(unassigned), unassigned[:max_faces]))
    return rows


# --- thumbnails -----------------------------------------------------------------------------------


def _thumbnails(faces: list[FaceInfo], folder: Path) -> tuple[dict[int, str | None], int, list[str]]:
    """(face id -> thumbnail file name or None if its photo is missing, number written, missing photos)."""
    by_photo: dict[tuple[Path, float | None], list[FaceInfo]] = {}  # a video's faces: one frame each
    for face in faces:
        by_photo.setdefault((face.file, face.time), []).append(face)
    names: dict[int, str | None] = {}
    written, missing = 0, []
    for (file, time), group in by_photo.items():
        todo = [f for f in group if not (folder / _thumb_name(f)).exists()]
        present, image = file.is_file(), None
        if present and todo:
            try:
                image = _pixels(file, time)
            except InvalidImageError:
                pass  # changed into something unreadable since it was indexed: shown as missing
        if not present or image is None and todo:
            missing.append(str(file))
            names.update((f.id, None) for f in group)
            continue
        for face in todo:
            _write_atomically(folder / _thumb_name(face), face_thumbnail(image, face.box))  # type: ignore[arg-type]
            written += 1
        names.update((f.id, _thumb_name(f)) for f in group)
    return names, written, missing


def _pixels(file: Path, time: float | None) -> np.ndarray:
    """The photo, or the frame of the video at ``time`` (a video face's)."""
    if time is not None:
        from faceatlas.collection.video import read_frame

        return read_frame(file, time)
    from faceatlas.image import load_image

    return load_image(file)


def _thumb_name(face: FaceInfo) -> str:
    key = f"{face.sha256}:{face.box}{'' if face.time is None else f'@{face.time}'}".encode()
    return hashlib.sha256(key).hexdigest()[:24] + ".jpg"


def face_thumbnail(
    image: np.ndarray, box: tuple[float, float, float, float], size: int = THUMB_SIZE, margin: float = MARGIN
) -> bytes:
    """A square ``size`` JPEG crop around the box with ``margin`` of it on each side (black beyond
    the photo's edge): the contact sheet's tiles and the service's thumbnails."""
    import io

    from PIL import Image

    x1, y1, x2, y2 = box
    side = max(x2 - x1, y2 - y1, 1.0) * (1 + 2 * margin)
    left, top = round((x1 + x2 - side) / 2), round((y1 + y2 - side) / 2)
    crop = Image.fromarray(image).crop((left, top, left + round(side), top + round(side)))
    buffer = io.BytesIO()
    crop.resize((size, size), Image.Resampling.LANCZOS).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def _write_atomically(path: Path, data: bytes) -> None:
    """Write aside, then rename: a killed export never leaves half a file that a re-export would reuse."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# --- the page -------------------------------------------------------------------------------------

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; background: #fafafa; color: #222; }
h1 { font-size: 1.4em; } .meta { color: #666; }
section { margin: 1.2em 0; padding-top: .4em; border-top: 1px solid #ddd; }
h2 { font-size: 1.1em; margin: .2em 0 .5em; } h2 small { color: #777; font-weight: normal; margin-left: .6em; }
.faces { display: flex; flex-wrap: wrap; gap: 4px; }
.faces img, .missing { width: 112px; height: 112px; display: block; border-radius: 4px; }
.missing { background: #ddd; color: #777; font-size: .8em; display: flex; align-items: center;
  justify-content: center; text-align: center; }
.more, .none { color: #777; font-size: .9em; }
"""


def _page(store: CollectionStore, rows: list[_Row], thumbs: dict[int, str | None], out: Path) -> str:
    photos = store.photos()
    n_faces = sum(p.n_faces for p in photos)
    unreadable = sum(p.status != "ok" for p in photos)
    meta = f"{store.location} · {len(photos)} photos · {n_faces} faces"
    meta += f" · {unreadable} unreadable" if unreadable else ""
    body = "\n".join(_section(row, thumbs, out) for row in rows)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>faceatlas collection</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f'<h1>faceatlas collection</h1>\n<p class="meta">{_e(meta)}</p>\n{body}\n</body>\n</html>\n'
    )


def _section(row: _Row, thumbs: dict[int, str | None], out: Path) -> str:
    tiles = "\n".join(_tile(face, thumbs.get(face.id), out) for face in row.faces)
    hidden = row.n_faces - len(row.faces)
    more = f'<p class="more">and {hidden} more</p>\n' if hidden > 0 else ""
    content = f'<div class="faces">\n{tiles}\n</div>\n{more}' if row.faces else '<p class="none">no faces</p>\n'
    return (
        f"<section>\n<h2>{_e(row.title)} <small>{row.n_faces} face(s) · {_e(row.note)}</small></h2>\n"
        f"{content}</section>"
    )


def _tile(face: FaceInfo, thumb: str | None, out: Path) -> str:
    label = _e(f"{face.path} (face {face.idx}, id {face.id})")
    if face.time is not None:
        label = _e(f"{face.path} at {face.time:.1f} s (face {face.idx}, id {face.id})")
    if thumb is None:
        return f'<span class="missing" title="{label}">missing<br>{_e(PurePath(face.path).name)}</span>'
    src = f"{FACES_DIR}/{urllib.parse.quote(thumb)}"
    href = photo_href(face.file, out) + ("" if face.time is None else f"#t={face.time:.2f}")  # a media fragment
    return f'<a href="{_e(href)}" title="{label}"><img src="{src}" alt="{label}"></a>'


def photo_href(file: Path, out: Path) -> str:
    """A link to ``file`` from a page in ``out``: a relative, percent-encoded path (a file: URI when
    no relative path exists, e.g. another drive on Windows)."""
    try:
        rel = os.path.relpath(file, out)
    except ValueError:
        return file.absolute().as_uri()
    return urllib.parse.quote(PurePath(rel).as_posix())


def _e(text: str) -> str:
    return html.escape(text, quote=True)
