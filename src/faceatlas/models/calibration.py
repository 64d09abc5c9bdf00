"""Calibrating an embedder's thresholds on the user's own labelled pairs, and where the result lives.

A shipped card's thresholds were measured on LFW; on other people and conditions the same
threshold gives another false-accept rate. :func:`fit_thresholds` fixes the threshold at each
target FAR (1e-2, 1e-3, ... as far as the data supports) from the user's same-person and
different-person similarities, with the one definition of "threshold at a FAR"
(:mod:`faceatlas._thresholds`).

Where it is stored:

- a registered model (``dlib_resnet``, ``facenet``): a user calibration file,
  ``<config>/calibrations/<name>-<version>.json`` (``<config>``: ``$FACEATLAS_CONFIG_DIR``, else
  the user config folder). :func:`with_user_calibration` lays it over the shipped card, so
  ``get_card``, ``verify``, galleries and the clusterer all use it; removing the file restores
  the shipped calibration. It names the model version, so other weights never pick it up.
- a bring-your-own model: the ``thresholds`` of its sidecar card (:mod:`faceatlas.models.byo`),
  which is where that model's card is already read from.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from faceatlas._thresholds import false_accepts_allowed, threshold_at_far
from faceatlas.errors import InvalidArgumentError, ModelError
from faceatlas.models.cards import CalibratedThreshold, ModelCard

CONFIG_ENV = "FACEATLAS_CONFIG_DIR"
FAR_TARGETS: tuple[float, ...] = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
# a FAR is measured only where this many impostor scores may pass the threshold (as the gallery's
# MIN_TAIL): with 1 or 2 the threshold is just the next-highest stranger's score, mostly noise
MIN_FALSE_ACCEPTS = 10
FORMAT = "faceatlas-calibration"


def config_dir() -> Path:
    """``$FACEATLAS_CONFIG_DIR``, else the user config folder (``~/.config/faceatlas`` on Linux)."""
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV]).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir("faceatlas"))


def calibration_path(name: str, version: str) -> Path:
    """Where the user calibration of model ``name`` at ``version`` is kept."""
    safe = re.sub(r"[^A-Za-z0-9._+-]", "_", f"{name}-{version}")
    return config_dir() / "calibrations" / f"{safe}.json"


# -- fitting ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Calibration:
    """What :func:`fit_thresholds` measured: a threshold per supported FAR, and the TAR there."""

    thresholds: tuple[CalibratedThreshold, ...]
    tar: tuple[float, ...]  # same-person pairs accepted at each threshold (NaN without any)
    n_genuine: int
    n_impostor: int
    unsupported: tuple[float, ...]  # targets the data is too small for
    failed: int = 0  # pairs with a side that had no face (scored -inf: a reject)

    def describe(self) -> str:
        lines = [f"{self.n_genuine:,} same-person and {self.n_impostor:,} different-person pairs"]
        if self.failed:
            lines[0] += f" ({self.failed} with no face on a side, counted as rejected)"
        for t, tar in zip(self.thresholds, self.tar, strict=True):
            lines.append(f"  FAR {t.far:g}: threshold {t.similarity:.4f}, TAR {100 * tar:.2f}%")
        if self.unsupported:
            need = math.ceil(MIN_FALSE_ACCEPTS / self.unsupported[0])
            lines.append(
                f"  not calibrated: FAR {', '.join(f'{f:g}' for f in self.unsupported)} "
                f"(FAR {self.unsupported[0]:g} needs at least {need:,} different-person pairs)"
            )
        return "\n".join(lines)

    def text(self, source: str) -> str:
        """The card's ``calibration`` text for this fit on ``source``."""
        tars = ", ".join(f"{100 * tar:.2f}% at FAR {t.far:g}" for t, tar in zip(self.thresholds, self.tar, strict=True))
        when = datetime.now(UTC).date().isoformat()
        return (
            f"calibrated by the user on {source} ({when}): {self.n_genuine:,} same-person and "
            f"{self.n_impostor:,} different-person pairs. TAR there: {tars}."
        )


def fit_thresholds(
    similarities: np.ndarray | Sequence[float],
    same: np.ndarray | Sequence[bool],
    targets: Sequence[float] = FAR_TARGETS,
    min_false_accepts: int = MIN_FALSE_ACCEPTS,
) -> Calibration:
    """The threshold at each target FAR the impostor scores support (``min_false_accepts`` of them
    may pass it); InvalidArgumentError when they support none. Scores may hold -inf (a pair with
    no face), never NaN."""
    scores = np.asarray(similarities, dtype=np.float64).ravel()
    labels = np.asarray(same, dtype=bool).ravel()
    if scores.shape != labels.shape:
        raise InvalidArgumentError(f"{scores.size} similarities but {labels.size} same/different labels")
    impostor, genuine = scores[~labels], scores[labels]
    n = int(impostor.size)
    supported = sorted((f for f in targets if false_accepts_allowed(n, f) >= min_false_accepts), reverse=True)
    if not supported:
        need = math.ceil(min_false_accepts / max(targets))
        raise InvalidArgumentError(
            f"calibrating needs at least {need:,} different-person pairs for FAR {max(targets):g}, got {n:,}: "
            "add more people (a folder of identity folders gives every cross-person pair)"
        )
    thresholds, tars = [], []
    for far in supported:
        # exact (not rounded: a threshold rounded down lets one more impostor through); cosines lie
        # in [-1, 1] and the threshold is the next float above a score, so it is clipped back
        t = float(np.clip(threshold_at_far(impostor, far), -1.0, 1.0))
        thresholds.append(CalibratedThreshold(far, t))
        tars.append(float((genuine >= t).mean()) if genuine.size else float("nan"))
    return Calibration(
        thresholds=tuple(thresholds),
        tar=tuple(tars),
        n_genuine=int(genuine.size),
        n_impostor=n,
        unsupported=tuple(f for f in sorted(targets, reverse=True) if f not in supported),
        failed=int(np.isneginf(scores).sum()),
    )


# -- user calibration files (registered models) ----------------------------------------------------


def save_user_calibration(card: ModelCard, calibration: Calibration, source: str) -> Path:
    """Write the calibration of a registered model; it replaces the shipped thresholds from now on."""
    path = calibration_path(card.name, card.version)
    data = {
        "format": FORMAT,
        "name": card.name,
        "version": card.version,
        "thresholds": [{"far": t.far, "similarity": t.similarity} for t in calibration.thresholds],
        "tar": list(calibration.tar),
        "pairs": {"same": calibration.n_genuine, "different": calibration.n_impostor},
        "calibration": calibration.text(source),
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise ModelError(
            f"could not write the calibration {path}: {exc}; set ${CONFIG_ENV} to a writable folder"
        ) from exc
    return path


def remove_user_calibration(name: str, version: str | None = None) -> list[Path]:
    """Delete the user calibration of ``name`` (one version, or every version); the files removed."""
    folder = config_dir() / "calibrations"
    if version is not None:
        found = [calibration_path(name, version)]
    else:
        found = [p for p in folder.glob("*.json") if _read(p).get("name") == name] if folder.is_dir() else []
    removed = [p for p in found if p.is_file()]
    for path in removed:
        path.unlink()
    return removed


def user_calibration(name: str, version: str) -> dict[str, Any] | None:
    """The stored user calibration of that model version (thresholds checked), or None."""
    path = calibration_path(name, version)
    try:
        stat = path.stat()
    except OSError:
        return None
    return _parsed(path, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _parsed(path: Path, size: int, mtime_ns: int) -> dict[str, Any]:  # size/mtime: re-read when it changes
    data = _read(path)
    if data.get("format") != FORMAT or not isinstance(data.get("thresholds"), list) or not data["thresholds"]:
        raise ModelError(f"{path} is not a faceatlas calibration file; delete it (faceatlas models calibrate --reset)")
    try:
        points = tuple(
            CalibratedThreshold(float(t["far"]), float(t["similarity"]))
            for t in data["thresholds"]
            if 0.0 < float(t["far"]) < 1.0 and -1.0 <= float(t["similarity"]) <= 1.0
        )
    except (TypeError, KeyError, ValueError) as exc:
        raise ModelError(f"{path}: unreadable thresholds ({exc}); calibrate again or delete the file") from exc
    if len(points) != len(data["thresholds"]):
        raise ModelError(f"{path}: a threshold is out of range; calibrate again or delete the file")
    return {**data, "thresholds": tuple(sorted(points, key=lambda t: -t.far))}  # 1e-2 first, as cards list them


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"could not read the calibration file {path}: {exc}; delete it or calibrate again") from exc
    return data if isinstance(data, dict) else {}


def with_user_calibration(card: ModelCard) -> ModelCard:
    """``card`` with the user's calibration of that model version laid over the shipped one, if any.

    Only embedders are calibrated; a card without a stored calibration (or a stand-in that is no
    ModelCard) is returned as it is.
    """
    if not isinstance(card, ModelCard) or card.task != "embedding":
        return card
    stored = user_calibration(card.name, card.version)
    if stored is None:
        return card
    text = str(stored.get("calibration") or "calibrated by the user")
    changes: dict[str, Any] = {"thresholds": stored["thresholds"], "calibration": text}
    if any(f.name == "template_thresholds" for f in dataclasses.fields(card)):
        # measured on the shipped calibration's data too: dropped, so a gallery too small to
        # calibrate its own templates falls back to these (the user's) face-to-face thresholds
        changes["template_thresholds"] = ()
    return dataclasses.replace(card, **changes)


def calibration_origin(card: ModelCard) -> str:
    """Where the card's thresholds come from: "user" (a user calibration file), "shipped", or "none"."""
    if card.task == "embedding" and user_calibration(card.name, card.version) is not None:
        return "user"
    return "shipped" if card.thresholds else "none"


# -- storing a fit where the model's card is read from ----------------------------------------------


def store_calibration(model: str | os.PathLike[str], calibration: Calibration, source: str) -> tuple[Path, str]:
    """Store ``calibration`` for ``model`` (a registered embedder's name, or a bring-your-own path):
    (the file written, what it replaced, in words)."""
    from faceatlas.models import cards

    if isinstance(model, str) and model in cards.list_models("embedding"):
        shipped = cards.shipped_card(model)  # not one a user calibration was laid over
        previous = user_calibration(shipped.name, shipped.version)
        replaced = (
            "your earlier calibration"
            if previous is not None
            else f"the shipped calibration ({shipped.calibration.split(':')[0]})"
            if shipped.thresholds
            else "no calibration (the model had no thresholds)"
        )
        return save_user_calibration(shipped, calibration, source), replaced
    return _store_in_sidecar(model, calibration, source)


def _store_in_sidecar(model: str | os.PathLike[str], calibration: Calibration, source: str) -> tuple[Path, str]:
    from faceatlas.models import byo

    file = byo.resolve_model(model, "embedding")
    card = byo.model_info(file, "embedding").card  # refuses a detector, or a sidecar of other weights
    side = byo.sidecar_path(file)
    replaced = "the sidecar's thresholds" if card.thresholds else "no thresholds (the model was uncalibrated)"
    if not side.is_file():
        byo.write_card(file)
    data = _read(side)
    data["thresholds"] = [{"far": t.far, "similarity": t.similarity} for t in calibration.thresholds]
    data["calibration"] = calibration.text(source)
    try:
        side.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise ModelError(f"could not write the sidecar card {side}: {exc}") from exc
    byo.model_info(file, "embedding")  # reads back what was written: a bad value fails here, not later
    return side, replaced


def reset_calibration(model: str | os.PathLike[str]) -> list[Path]:
    """Undo :func:`store_calibration`: a registered model's user calibration files are deleted (its
    shipped thresholds apply again); a bring-your-own model's sidecar loses its thresholds."""
    from faceatlas.models import cards

    if isinstance(model, str) and model in cards.list_models():
        return remove_user_calibration(model)
    from faceatlas.models import byo

    if not byo.looks_like_path(model):
        raise InvalidArgumentError(
            f"{model!r} is neither a registered model ({', '.join(cards.list_models())}) nor a path to an .onnx file"
        )
    side = byo.sidecar_path(byo.resolve_model(model, "embedding"))
    if not side.is_file():
        return []
    data = _read(side)
    if not data.get("thresholds"):
        return []
    data["thresholds"], data["calibration"] = [], ""
    side.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return [side]
