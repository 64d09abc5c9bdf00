"""Private people: one flag kept in step between the photo collection and the gallery.

A person is private in the collection (``clusters.private``) and in the gallery
(``people.private``); a name links the two, as naming a cluster enrols its faces under that name.
Marking one side marks the other side of the same name: ``set_person_private`` (by name: the
gallery person and the cluster of that name) and ``set_cluster_private`` (by cluster: the cluster
and, when it is named, the gallery person of its name).

Who is hidden is read fail-safe (``hidden``): the union of both sides, so a cluster named after a
private gallery person, or a gallery person whose cluster is private, is hidden even when the two
flags were never put in step (a file marked by an older faceatlas, a store edited alone).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from faceatlas.gallery.store import PersonNotFoundError

__all__ = ["Hidden", "PrivacyChange", "hidden", "set_cluster_private", "set_person_private"]


@dataclass(frozen=True, slots=True)
class PrivacyChange:
    """What one call marked: the person's name (None: an unnamed cluster), the flag, the clusters
    marked, and whether a gallery person was."""

    name: str | None
    private: bool
    clusters: tuple[int, ...]
    gallery: bool


@dataclass(frozen=True, slots=True)
class Hidden:
    """Who a caller without the private permission must not see: names and cluster ids."""

    names: frozenset[str]
    clusters: frozenset[int]

    @property
    def empty(self) -> bool:
        return not (self.names or self.clusters)


NOTHING = Hidden(frozenset(), frozenset())


def set_person_private(name: str, private: bool, gallery: Any | None = None, store: Any | None = None) -> PrivacyChange:
    """Mark the person ``name`` private (or not) in the gallery and in the collection's cluster of
    that name, whichever have it; PersonNotFoundError when neither does. ``gallery`` is a Gallery
    (or a store with ``set_private``), ``store`` a CollectionStore; either may be None."""
    clusters: tuple[int, ...] = ()
    if store is not None:
        clusters = tuple(c.id for c in store.clusters() if c.name == name)
    in_gallery = gallery is not None and _gallery_has(gallery, name)
    if not clusters and not in_gallery:
        raise PersonNotFoundError(f"no person named {name!r} in the gallery or the collection")
    if in_gallery and gallery is not None:
        gallery.set_private(name, bool(private))
    if store is not None:
        for cluster_id in clusters:
            store.set_private(cluster_id, bool(private))
    return PrivacyChange(name, bool(private), clusters, in_gallery)


def set_cluster_private(cluster_id: int, private: bool, store: Any, gallery: Any | None = None) -> PrivacyChange:
    """Mark a cluster private (or not) and, when it is named, the gallery person of its name;
    ClusterNotFoundError when there is no such cluster."""
    info = store.cluster(cluster_id)
    store.set_private(info.id, bool(private))
    in_gallery = info.name is not None and gallery is not None and _gallery_has(gallery, info.name)
    if in_gallery and gallery is not None:
        gallery.set_private(info.name, bool(private))
    return PrivacyChange(info.name, bool(private), (int(info.id),), in_gallery)


def hidden(gallery: Any | None = None, store: Any | None = None) -> Hidden:
    """Every private person's name and cluster id (the union of both sides; see the module doc)."""
    names: set[str] = set()
    if gallery is not None:
        people = gallery.people() if hasattr(gallery, "people") else gallery.list_people()
        names.update(p.name for p in people if getattr(p, "private", False))
    clusters: set[int] = set()
    if store is not None:
        infos = store.clusters()
        names.update(c.name for c in infos if c.private and c.name is not None)
        clusters.update(int(c.id) for c in infos if c.private or (c.name is not None and c.name in names))
    return Hidden(frozenset(names), frozenset(clusters))


def _gallery_has(gallery: Any, name: str) -> bool:
    lookup = gallery.store if hasattr(gallery, "store") else gallery
    try:
        lookup.get_person(name)
    except PersonNotFoundError:
        return False
    return True
