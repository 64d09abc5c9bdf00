"""Clustering evaluation: labelled image lists, clustering metrics, a reference clusterer, contact sheets.

Data formats
------------
* **Identity folders** (:func:`read_identity_folders`): ``root/<identity>/<image files>``. Every
  non-hidden subfolder of ``root`` is one identity (its name is the label); its images are found
  recursively with :func:`faceatlas.image.iter_image_files` (extensions in
  :data:`faceatlas.image.IMAGE_EXTENSIONS`). Files directly inside ``root`` have no label and are
  ignored. Identities and images come out sorted, so the list is deterministic.
* **CSV** (:func:`read_identity_csv`): ``path,label[,group]``, one image per row; a header row
  whose first cell is ``path`` (or ``image``/``file``/``filename``) is skipped. Relative paths are
  relative to the CSV's folder. ``group`` is free text (e.g. an album or event); empty means None.

Metrics (:func:`clustering_metrics`)
------------------------------------
``true_labels`` are identities, ``predicted_labels`` cluster ids (any hashable values). A
predicted label of ``None`` or ``-1`` means *not clustered*: the item could not be embedded (no
face found, unreadable file) or the clusterer left it as noise. Every such item is scored as its
**own singleton cluster**: it is never dropped (a system that fails on hard images must not look
better for it), it costs recall, never precision, and it is counted in ``n_unclustered``.

With ``n_ij`` the number of items of identity ``i`` in predicted cluster ``j``, ``a_i`` the
identity sizes and ``b_j`` the cluster sizes, all computed from that contingency table:

* **Pairwise** (over all unordered pairs of items): ``TP = sum C(n_ij, 2)``;
  precision ``= TP / sum C(b_j, 2)`` (of the pairs put together, the share that are one person);
  recall ``= TP / sum C(a_i, 2)`` (of the same-person pairs, the share put together). With no
  predicted pairs precision is 1 (nothing was wrongly merged); with no same-person pairs recall is 1.
  Pair counts grow with the square of cluster size, so large clusters dominate.
* **BCubed** (Bagga & Baldwin; Amigó et al. 2009), per item then averaged over items: an item's
  precision is the share of its cluster that has its identity (``n_ij / b_j``), its recall the share
  of its identity that is in its cluster (``n_ij / a_i``). F1 is the harmonic mean of the averages.
* **NMI**: scikit-learn's ``normalized_mutual_info_score`` (arithmetic normalisation).
* ``singleton_share``: the fraction of items that sit in predicted clusters of size 1 (not-clustered
  items included). ``n_clusters`` counts clusters as scored, so each not-clustered item is one.
"""

from __future__ import annotations

import csv
import dataclasses
import numbers
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from faceatlas.errors import FaceAtlasError, InvalidArgumentError
from faceatlas.image import iter_image_files

__all__ = [
    "SHEET_PAD",
    "SHEET_TITLE_HEIGHT",
    "ClusteringReport",
    "LabeledImage",
    "MixedCluster",
    "baseline_cluster",
    "clustering_metrics",
    "contact_sheet",
    "mixed_clusters",
    "read_identity_csv",
    "read_identity_folders",
]

_CSV_HEADER_FIRST_CELLS = {"path", "image", "file", "filename", "image_path"}


# --- reading labelled images -------------------------------------------------


@dataclass(frozen=True, slots=True)
class LabeledImage:
    path: Path
    label: str
    group: str | None = None


def read_identity_folders(root: str | Path) -> list[LabeledImage]:
    """One :class:`LabeledImage` per image in ``root/<identity>/...`` (sorted by identity, then path)."""
    base = Path(root)
    if not base.is_dir():
        what = "a file" if base.exists() else "missing"
        raise FaceAtlasError(f"Expected a folder of identity subfolders, but {str(base)!r} is {what}.")
    items: list[LabeledImage] = []
    for sub in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
        items.extend(LabeledImage(path, sub.name) for path in iter_image_files(sub, recursive=True))
    if not items:
        loose = next(iter_image_files(base, recursive=False), None)
        hint = " (images lying directly in it have no identity: move them into a subfolder)" if loose else ""
        raise FaceAtlasError(
            f"No images found in the identity subfolders of {str(base)!r}{hint}. "
            "Expected root/<identity>/<image files>."
        )
    return items


def read_identity_csv(csv_file: str | Path) -> list[LabeledImage]:
    """Rows ``path,label[,group]`` (header optional); paths are relative to the CSV's folder."""
    source = Path(csv_file)
    base = source.parent
    items: list[LabeledImage] = []
    with source.open(newline="", encoding="utf-8-sig") as handle:  # -sig: spreadsheet BOMs
        reader = csv.reader(handle)
        for row in reader:
            cells = [cell.strip() for cell in row]
            if not any(cells):
                continue
            if not items and cells[0].lower() in _CSV_HEADER_FIRST_CELLS:
                continue  # header
            where = f"{source}: row {reader.line_num}"
            if len(cells) not in (2, 3):
                raise FaceAtlasError(f"{where} has {len(cells)} columns; expected path,label[,group]")
            if not cells[0] or not cells[1]:
                raise FaceAtlasError(f"{where} has an empty {'path' if not cells[0] else 'label'}")
            group = cells[2] if len(cells) == 3 and cells[2] else None
            items.append(LabeledImage(base / cells[0], cells[1], group))
    if not items:
        raise FaceAtlasError(f"{source} lists no images; expected rows path,label[,group]")
    return items


# --- metrics -------------------------------------------------------------------


def _is_unclustered(label: object) -> bool:
    if label is None:
        return True
    return isinstance(label, numbers.Number) and not isinstance(label, bool) and label == -1


def _encode(labels: Sequence[Hashable]) -> np.ndarray:
    """Integer codes in order of first appearance (works for mixed label types)."""
    codes: dict[Hashable, int] = {}
    return np.array([codes.setdefault(x, len(codes)) for x in labels], dtype=np.int64)


def _encode_predicted(labels: Sequence[Hashable]) -> tuple[np.ndarray, np.ndarray]:
    """Codes where every not-clustered item gets a fresh code of its own; also the not-clustered mask."""
    unclustered = np.array([_is_unclustered(x) for x in labels], dtype=bool)
    codes: dict[Hashable, int] = {}
    out = np.empty(len(labels), dtype=np.int64)
    fresh = 0
    for k, x in enumerate(labels):
        if not unclustered[k] and x in codes:
            out[k] = codes[x]
            continue
        out[k] = fresh
        if not unclustered[k]:
            codes[x] = fresh
        fresh += 1
    return out, unclustered


def _pairs(counts: np.ndarray) -> float:
    counts = counts.astype(np.float64)
    return float((counts * (counts - 1) / 2).sum())


def _f1(p: float, r: float) -> float:
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


@dataclass
class ClusteringReport:
    n_items: int
    n_identities: int
    n_clusters: int  # as scored: each not-clustered item is a cluster of its own
    n_unclustered: int  # predicted None / -1: not embedded, or left as noise
    pairwise_precision: float
    pairwise_recall: float
    pairwise_f1: float
    bcubed_precision: float
    bcubed_recall: float
    bcubed_f1: float
    nmi: float
    singleton_share: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def table(self) -> str:
        rows = [
            ("items", f"{self.n_items}"),
            ("identities", f"{self.n_identities}"),
            ("clusters", f"{self.n_clusters}"),
            ("not clustered", f"{self.n_unclustered}"),
            ("singleton share", f"{self.singleton_share:.3f}"),
            (
                "pairwise P / R / F1",
                f"{self.pairwise_precision:.3f} / {self.pairwise_recall:.3f} / {self.pairwise_f1:.3f}",
            ),
            ("BCubed P / R / F1", f"{self.bcubed_precision:.3f} / {self.bcubed_recall:.3f} / {self.bcubed_f1:.3f}"),
            ("NMI", f"{self.nmi:.3f}"),
        ]
        width = max(len(name) for name, _ in rows)
        lines = [f"{name:<{width}}  {value}" for name, value in rows]
        return "\n".join(lines + [f"note: {n}" for n in self.notes])


def clustering_metrics(true_labels: Sequence[Hashable], predicted_labels: Sequence[Hashable]) -> ClusteringReport:
    """Pairwise, BCubed and NMI scores of a clustering (see the module docstring for definitions)."""
    from sklearn.metrics import normalized_mutual_info_score

    true_labels, predicted_labels = list(true_labels), list(predicted_labels)
    if len(true_labels) != len(predicted_labels):
        raise InvalidArgumentError(f"{len(true_labels)} true labels but {len(predicted_labels)} predicted labels")
    if not true_labels:
        raise InvalidArgumentError("cannot score an empty clustering")
    if any(label is None for label in true_labels):
        raise InvalidArgumentError("every item needs a true label (None found)")
    t = _encode(true_labels)
    p, unclustered = _encode_predicted(predicted_labels)
    n = len(t)

    # contingency table as (identity, cluster) -> count, without building a dense matrix
    cells, n_ij = np.unique(np.stack([t, p], axis=1), axis=0, return_counts=True)
    a = np.bincount(t)  # identity sizes
    b = np.bincount(p)  # cluster sizes
    n_ij_f = n_ij.astype(np.float64)

    tp, pred_pairs, true_pairs = _pairs(n_ij), _pairs(b), _pairs(a)
    pw_p = tp / pred_pairs if pred_pairs else 1.0
    pw_r = tp / true_pairs if true_pairs else 1.0
    bc_p = float((n_ij_f**2 / b[cells[:, 1]]).sum() / n)
    bc_r = float((n_ij_f**2 / a[cells[:, 0]]).sum() / n)

    notes = []
    if unclustered.any():
        notes.append(f"{int(unclustered.sum())} items not clustered (None/-1) were scored as singleton clusters")
    return ClusteringReport(
        n_items=n,
        n_identities=len(a),
        n_clusters=len(b),
        n_unclustered=int(unclustered.sum()),
        pairwise_precision=pw_p,
        pairwise_recall=pw_r,
        pairwise_f1=_f1(pw_p, pw_r),
        bcubed_precision=bc_p,
        bcubed_recall=bc_r,
        bcubed_f1=_f1(bc_p, bc_r),
        nmi=float(normalized_mutual_info_score(t, p)),
        singleton_share=float((b[p] == 1).mean()),
        notes=notes,
    )


# --- reference clusterer -----------------------------------------------------


def baseline_cluster(embeddings: np.ndarray, threshold: float) -> np.ndarray:
    """Agglomerative average-linkage clustering on cosine distance; labels 0.. in order of first item.

    Two groups are merged while their average pairwise cosine similarity exceeds ``threshold``
    (distance threshold ``1 - threshold``). A reference for evaluation only: it needs every
    embedding at once and O(n^2) memory (about 4 bytes * n^2 for the distances).
    """
    from sklearn.cluster import AgglomerativeClustering

    if not -1.0 <= threshold <= 1.0:
        raise InvalidArgumentError(f"threshold is a cosine similarity and must lie in [-1, 1], got {threshold}")
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2:
        raise InvalidArgumentError(f"embeddings must be an (n, d) array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise InvalidArgumentError("embeddings hold NaN or inf; leave unembedded items out (label them -1)")
    if len(x) == 0:
        return np.empty(0, dtype=np.int64)
    if len(x) == 1:
        return np.zeros(1, dtype=np.int64)
    if (np.linalg.norm(x, axis=1) == 0).any():
        raise InvalidArgumentError("an all-zero embedding has no cosine distance; leave it out (label it -1)")
    model = AgglomerativeClustering(
        n_clusters=None, metric="cosine", linkage="average", distance_threshold=1.0 - float(threshold)
    )
    return _encode(model.fit_predict(x).tolist())


# --- looking at mistakes -------------------------------------------------------


@dataclass(frozen=True)
class MixedCluster:
    label: Hashable  # the predicted cluster id
    indices: np.ndarray  # item indices, in input order
    identities: dict[Hashable, int]  # identity -> how many of its items are in the cluster, largest first

    @property
    def size(self) -> int:
        return len(self.indices)

    def title(self) -> str:
        top = ", ".join(f"{name} {count}" for name, count in list(self.identities.items())[:4])
        more = ", ..." if len(self.identities) > 4 else ""
        return f"cluster {self.label}: {self.size} faces, {len(self.identities)} identities ({top}{more})"


def mixed_clusters(
    true_labels: Sequence[Hashable], predicted_labels: Sequence[Hashable], k: int = 10
) -> list[MixedCluster]:
    """The ``k`` largest predicted clusters that hold more than one identity (largest first).

    Ties in size go to the cluster whose first item comes first. Not-clustered items are skipped.
    """
    true_labels, predicted_labels = list(true_labels), list(predicted_labels)
    if len(true_labels) != len(predicted_labels):
        raise InvalidArgumentError(f"{len(true_labels)} true labels but {len(predicted_labels)} predicted labels")
    members: dict[Hashable, list[int]] = {}
    for i, label in enumerate(predicted_labels):
        if not _is_unclustered(label):
            members.setdefault(label, []).append(i)
    mixed = []
    for label, idx in members.items():
        counts = Counter(true_labels[i] for i in idx)
        if len(counts) > 1:
            mixed.append(MixedCluster(label, np.array(idx), dict(counts.most_common())))
    mixed.sort(key=lambda c: (-c.size, int(c.indices[0])))
    return mixed[:k]


SHEET_PAD = 4  # pixels around and between thumbnails
SHEET_TITLE_HEIGHT = 16  # pixels of the title band above each row


def _thumbnail(crop: np.ndarray, thumb: int):
    from PIL import Image, ImageOps

    array = np.asarray(crop)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise InvalidArgumentError(f"crops must be HxWx3 uint8 RGB arrays, got {array.dtype} {array.shape}")
    return ImageOps.contain(Image.fromarray(array), (thumb, thumb))


def contact_sheet(
    rows: Sequence[Sequence[np.ndarray]],
    row_titles: Sequence[str],
    path: str | Path,
    thumb: int = 96,
    max_per_row: int = 12,
) -> Path:
    """Write one PNG with a titled row of thumbnails per cluster (at most ``max_per_row`` each).

    Layout: each row is a ``SHEET_TITLE_HEIGHT`` title band above ``thumb``-pixel cells, with
    ``SHEET_PAD`` pixels around and between everything; so the image is
    ``SHEET_PAD + columns * (thumb + SHEET_PAD)`` wide and
    ``SHEET_PAD + len(rows) * (SHEET_TITLE_HEIGHT + thumb + SHEET_PAD)`` high, where ``columns`` is
    the longest row, capped. Crops keep their aspect ratio, centred in their cell. A truncated row
    says so in its title. With no rows, a one-line sheet says there is nothing to show.
    """
    from PIL import Image, ImageDraw

    if len(rows) != len(row_titles):
        raise InvalidArgumentError(f"{len(rows)} rows but {len(row_titles)} titles")
    columns = max([min(len(r), max_per_row) for r in rows], default=0) or 1
    cell, band = thumb + SHEET_PAD, SHEET_TITLE_HEIGHT + thumb + SHEET_PAD
    height = SHEET_PAD + band * len(rows) if rows else SHEET_PAD + SHEET_TITLE_HEIGHT
    sheet = Image.new("RGB", (SHEET_PAD + columns * cell, height), "white")
    draw = ImageDraw.Draw(sheet)
    if not rows:
        draw.text((SHEET_PAD, SHEET_PAD), "no clusters to show", fill="black")
    for r, (crops, title) in enumerate(zip(rows, row_titles, strict=True)):
        top = SHEET_PAD + r * band
        shown = crops[:max_per_row]
        suffix = f" (showing {len(shown)} of {len(crops)})" if len(crops) > len(shown) else ""
        draw.text((SHEET_PAD, top + 2), title + suffix, fill="black")
        for c, crop in enumerate(shown):
            image = _thumbnail(crop, thumb)
            x = SHEET_PAD + c * cell + (thumb - image.width) // 2
            y = top + SHEET_TITLE_HEIGHT + (thumb - image.height) // 2
            sheet.paste(image, (x, y))
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, format="PNG")
    return out
