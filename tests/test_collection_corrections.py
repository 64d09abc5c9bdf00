"""The corrections of a collection's clusters as a library (``faceatlas.collection.corrections``):
their effect survives later clusterings (full ones too), named clusters follow into a gallery,
refusals are typed and change nothing, and constraints are written in one transaction.

Small collections stored directly with fake embeddings (as in test_collection.py): three people
by embedding direction, A in four photos, B in three, C in three, and a group photo of A and B;
for the split, also D, who looks so much like A that the clusterer takes them for one person.
No model loads, no photo file is read.
"""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest

from faceatlas.collection import corrections
from faceatlas.collection.corrections import DifferentPeopleError, SharedPhotoError, WholeClusterError
from faceatlas.collection.grouping import cluster_collection
from faceatlas.collection.store import (
    UNASSIGNED,
    ClusterNotFoundError,
    CollectionError,
    CollectionStore,
    CorrectionConflictError,
    FaceNotFoundError,
    InvalidCorrectionError,
    ModelMismatchError,
    NameTakenError,
    PhotoNotFoundError,
    SqliteCollectionStore,
    model_tag,
)
from faceatlas.models.cards import DLIB_RESNET_CARD
from faceatlas.types import Box, Face, Landmarks, Pose, Quality

DIM = 128
DIRECTIONS = np.linalg.qr(np.random.default_rng(1).normal(size=(DIM, DIM)))[0].astype(np.float32)
WHO = {"A": DIRECTIONS[1], "B": DIRECTIONS[2], "C": DIRECTIONS[5], "D": DIRECTIONS[1] + 0.2 * DIRECTIONS[7]}
PHOTOS = [*(["A"],) * 4, *(["B"],) * 3, *(["C"],) * 3, ["A", "B"]]  # who is in each photo, largest face first
LOOKALIKE = [*PHOTOS, ["D"], ["D"]]  # D's faces match A's at a cosine of about 0.94: above the threshold
ROOT = "/photos"  # never read: only enrolment metadata names it


class FakeEmbedder:
    card = DLIB_RESNET_CARD
    dim = DIM


class FakeAnalyzer:
    """What a Gallery needs of an analyzer here: the embedder's card (no image is analysed)."""

    embedder = FakeEmbedder()


class OtherModelAnalyzer:
    class embedder:  # stands in for the attribute of that name
        card = dataclasses.replace(DLIB_RESNET_CARD, version="2")
        dim = DIM


def fake_face(person: str, k: int, jitter: int) -> Face:
    """Face k of its photo (the larger, the lower k), of ``person``: its direction plus a little
    noise (``jitter`` seeds it), so that its faces match each other at a cosine of about 0.96."""
    size, x = 40 - 8 * k, 4 + 20 * k
    noise = np.random.default_rng(100 + jitter).normal(size=DIM).astype(np.float32) / np.sqrt(DIM)
    vector = WHO[person] / np.linalg.norm(WHO[person]) + 0.2 * noise
    return Face(
        box=Box(x, 10, x + size, 10 + size),
        score=0.99,
        landmarks=Landmarks(np.full((5, 2), x + size / 2)),
        pose=Pose(0.0, 0.0, 0.0),
        quality=Quality(0.9, 1, 1, 1, 1, 1),
        embedding=(vector / np.linalg.norm(vector)).astype(np.float32),
    )


class People:
    """A collection of the photos above, clustered once: {person: face ids}."""

    def __init__(self, store: CollectionStore, photos: list[list[str]] = PHOTOS) -> None:
        self.store = store
        store.bind_model(model_tag(FakeAnalyzer()))
        self.faces: dict[str, list[int]] = {p: [] for p in WHO}
        for n, who in enumerate(photos):
            faces = [fake_face(person, k, jitter=2 * n + k) for k, person in enumerate(who)]
            photo_id = store.add_photo(f"p{n:02d}.jpg", ROOT, f"{n:064x}", 1000 + n, n, 96, 96, faces)
            for person, face in zip(who, store.faces_of_photo(photo_id), strict=True):  # by idx: largest first
                self.faces[person].append(face.id)

    def of(self, person: str) -> frozenset[int]:
        return frozenset(self.faces[person])

    def cluster(self, person: str) -> int:
        (cluster,) = {self.store.face(f).cluster for f in self.faces[person]}
        return int(cluster)


def groups(store: CollectionStore) -> set[frozenset[int]]:
    """Every cluster with faces, as the set of its face ids."""
    return {frozenset(f.id for f in store.cluster_faces(c.id)) for c in store.clusters() if c.n_faces}


def state(store: CollectionStore) -> tuple:
    """Everything a refused correction must leave as it was."""
    table = store.face_table()
    must, cannot = store.constraints()
    return table.clusters.tolist(), store.clusters(), must.tolist(), cannot.tolist()


def count_constraints(store: CollectionStore) -> tuple[int, int]:
    must, cannot = store.constraints()
    return len(must), len(cannot)


@pytest.fixture
def store(collection_target):  # a SQLite file, and a PostgreSQL schema (tests/conftest.py)
    with CollectionStore.open(collection_target) as s:
        yield s


@pytest.fixture
def people(store) -> People:
    people = People(store)
    cluster_collection(store)
    assert groups(store) == {people.of(p) for p in "ABC"}  # one cluster per person to start with
    return people


@pytest.fixture
def gallery(tmp_path):
    from faceatlas.gallery.gallery import Gallery

    with Gallery.open(tmp_path / "gallery.db", analyzer=FakeAnalyzer()) as g:
        yield g


def in_gallery(gallery) -> dict[str, int]:
    return {p.name: p.n_faces for p in gallery.people()}


# --- corrections hold through later clusterings ---------------------------------------------------


def test_merge_keeps_the_faces_together_through_full_clusterings(people, store):
    b, c = people.cluster("B"), people.cluster("C")
    result = corrections.merge_clusters(store, c, into=b)
    together = people.of("B") | people.of("C")
    assert isinstance(result, corrections.MergeResult)
    assert (result.cluster.id, result.cluster.name, result.cluster.n_faces) == (b, None, 7)
    assert {f.id for f in result.faces} == together and {f.cluster for f in result.faces} == {b}
    assert (result.enrolled, result.gallery_faces, result.unenrolled) == (0, None, 0)
    with pytest.raises(ClusterNotFoundError):
        store.cluster(c)  # emptied and unnamed: gone
    assert count_constraints(store) == (6, 0)  # the seven faces chained: one must-link component

    expected = {people.of("A"), together}
    assert groups(store) == expected
    cluster_collection(store)
    assert groups(store) == expected
    cluster_collection(store, full=True)  # from scratch: B and C apart by their faces, together by the user's word
    assert groups(store) == expected


def test_split_keeps_the_parts_apart_through_full_clusterings(store):
    people = People(store, LOOKALIKE)
    cluster_collection(store)
    a_and_d = people.of("A") | people.of("D")
    assert groups(store) == {a_and_d, people.of("B"), people.of("C")}  # the clusterer's mistake
    ids = {c.id for c in store.clusters()}
    a = people.cluster("A")
    moved = people.faces["D"]
    result = corrections.split_cluster(store, a, [*moved, moved[0]])  # a face given twice counts once
    assert isinstance(result, corrections.SplitResult)
    assert result.former_id == a and result.cluster.id not in ids
    assert {f.id for f in result.faces} == set(moved) and result.cluster.name is None and result.unenrolled == 0
    assert {f.id for f in store.cluster_faces(a)} == people.of("A")
    # the moved faces chained; the best of them cannot-linked with each of the five that stayed
    assert count_constraints(store) == (1, 5)

    expected = {people.of(p) for p in "ABCD"}
    cluster_collection(store)
    assert groups(store) == expected
    cluster_collection(store, full=True)  # from scratch the clusterer would merge them again: the split holds
    assert groups(store) == expected

    # the user changes their mind: merged back, the two parts stay together from then on
    back = corrections.merge_clusters(store, people.cluster("D"), into=people.cluster("A"))
    assert {f.id for f in back.faces} == a_and_d
    cluster_collection(store, full=True)
    assert groups(store) == {a_and_d, people.of("B"), people.of("C")}


def test_not_this_person_keeps_the_face_out_through_full_clusterings(people, store):
    a = people.cluster("A")
    face = sorted(people.faces["A"])[1]
    result = corrections.not_this_person(store, face)
    assert result == corrections.NotThisPersonResult(face_id=face, former_id=a, unenrolled=0)
    assert store.face(face).cluster == UNASSIGNED
    rest = people.of("A") - {face}
    assert {f.id for f in store.cluster_faces(a)} == rest
    assert count_constraints(store) == (0, len(rest))

    cluster_collection(store)  # the face gets another chance: with nobody else, it is a person of its own
    assert groups(store) == {rest, frozenset({face}), people.of("B"), people.of("C")}
    cluster_collection(store, full=True)
    assert rest in groups(store) and store.face(face).cluster not in {store.face(f).cluster for f in rest}


def test_not_this_person_rechains_the_faces_it_joined(people, store):
    """A face in the middle of a must-link chain leaves: the others stay joined without it."""
    b, c = people.cluster("B"), people.cluster("C")
    corrections.merge_clusters(store, c, into=b)
    merged = sorted(people.of("B") | people.of("C"))
    middle = merged[3]  # chained to its neighbours on both sides
    corrections.not_this_person(store, middle)
    staying = set(merged) - {middle}
    must, cannot = store.constraints()
    assert not {middle} & {f for pair in must.tolist() for f in pair}
    assert {tuple(p) for p in cannot.tolist()} == {tuple(sorted((middle, f))) for f in staying}
    cluster_collection(store, full=True)
    assert frozenset(staying) in groups(store)  # still one person, by the user's word


# --- the gallery follows the names ---------------------------------------------------------------


def test_naming_enrols_and_corrections_take_faces_out_of_the_person(people, store, gallery):
    a = people.cluster("A")
    faces_a = sorted(people.faces["A"])
    named = corrections.name_cluster(store, a, "  Ada ", gallery)
    assert isinstance(named, corrections.NameResult)
    assert (named.cluster.name, named.enrolled, named.gallery_faces, named.unenrolled) == ("Ada", 5, 5, 0)
    assert {f.id for f in named.faces} == set(faces_a) and in_gallery(gallery) == {"Ada": 5}
    table = store.face_table()
    probe = table.embeddings[list(table.face_ids).index(faces_a[0])]
    assert gallery.identify(probe)[0].person == "Ada"  # a named cluster is a person
    again = corrections.name_cluster(store, a, "Ada", gallery)
    assert (again.enrolled, again.gallery_faces) == (0, 5)  # nothing enrolled twice

    assert corrections.not_this_person(store, faces_a[0], gallery).unenrolled == 1
    assert in_gallery(gallery) == {"Ada": 4}
    split = corrections.split_cluster(store, a, faces_a[1:3], gallery)
    assert split.unenrolled == 2 and in_gallery(gallery) == {"Ada": 2}
    assert corrections.name_cluster(store, a, "Ada", gallery).enrolled == 0  # the faces taken out are not re-added

    renamed = corrections.name_cluster(store, a, "Ada Lovelace", gallery)
    assert (renamed.cluster.name, renamed.gallery_faces) == ("Ada Lovelace", 2)
    assert in_gallery(gallery) == {"Ada Lovelace": 2}  # the gallery person renamed too
    unnamed = corrections.name_cluster(store, a, None, gallery)
    assert (unnamed.cluster.name, unnamed.enrolled, unnamed.gallery_faces, unnamed.unenrolled) == (None, 0, None, 2)
    assert in_gallery(gallery) == {}  # no face left: no person


def test_merging_takes_the_name_along_and_enrols_the_faces(people, store, gallery):
    a, b, c = (people.cluster(p) for p in "ABC")
    corrections.name_cluster(store, a, "Ada", gallery)
    corrections.name_cluster(store, c, "Cy", gallery)
    merged = corrections.merge_clusters(store, c, into=b, gallery=gallery)
    assert (merged.cluster.id, merged.cluster.name, merged.enrolled, merged.gallery_faces) == (b, "Cy", 4, 7)
    assert in_gallery(gallery) == {"Ada": 5, "Cy": 7}
    before = state(store)
    with pytest.raises(DifferentPeopleError, match="differently named") as refused:
        corrections.merge_clusters(store, b, into=a, gallery=gallery)
    assert (refused.value.source.name, refused.value.into.name) == ("Cy", "Ada")
    assert state(store) == before and in_gallery(gallery) == {"Ada": 5, "Cy": 7}


def test_without_a_gallery_only_the_collection_changes(people, store):
    a = people.cluster("A")
    named = corrections.name_cluster(store, a, "Ada")
    assert (named.cluster.name, named.enrolled, named.gallery_faces) == ("Ada", 0, None)
    assert corrections.not_this_person(store, people.faces["A"][0]).unenrolled == 0


def test_a_gallery_of_another_model_is_refused_before_naming(people, store, tmp_path):
    from faceatlas.gallery.gallery import Gallery

    a = people.cluster("A")
    with Gallery.open(tmp_path / "other.db", analyzer=OtherModelAnalyzer()) as other:
        other._bind()
        before = state(store)
        with pytest.raises(ModelMismatchError, match="cluster was not named"):
            corrections.name_cluster(store, a, "Ada", other)
        assert state(store) == before and other.people() == []


# --- refusals: typed, and nothing changes ----------------------------------------------------------


def test_refusals_are_typed_and_change_nothing(people, store):
    a, b, c = (people.cluster(p) for p in "ABC")
    faces_a = sorted(people.faces["A"])
    corrections.name_cluster(store, c, "Cy")
    missing = max(info.id for info in store.clusters()) + 1
    before = state(store)

    def refused(error: type[Exception], call, *args, match: str | None = None, **kwargs):
        with pytest.raises(error, match=match) as info:
            call(store, *args, **kwargs)
        assert state(store) == before, call.__name__
        return info.value

    assert refused(ClusterNotFoundError, corrections.name_cluster, missing, "Zed").cluster_id == missing
    for source, into in ((missing, a), (a, missing)):
        assert refused(ClusterNotFoundError, corrections.merge_clusters, source, into).cluster_id == missing
    assert refused(ClusterNotFoundError, corrections.split_cluster, missing, [faces_a[0]]).cluster_id == missing
    assert refused(FaceNotFoundError, corrections.not_this_person, 10_000).face_id == 10_000

    taken = refused(NameTakenError, corrections.name_cluster, a, "Cy", match="already named 'Cy'")
    assert (taken.cluster_id, taken.name, taken.other_id) == (a, "Cy", c)
    for blank in ("", "   "):
        refused(InvalidCorrectionError, corrections.name_cluster, a, blank, match="non-empty")

    itself = refused(InvalidCorrectionError, corrections.merge_clusters, a, a, match="into itself")
    assert isinstance(itself, ValueError)  # a wrong argument, whatever the collection holds
    shared = refused(SharedPhotoError, corrections.merge_clusters, b, a, match="both have a face in photo")
    (group,) = (p for p in store.photos() if p.n_faces == 2)
    assert (shared.source_id, shared.into_id, shared.photo_id) == (b, a, group.id)
    assert set(shared.faces) == {f.id for f in store.faces_of_photo(group.id)}

    strangers = [faces_a[0], people.faces["B"][0]]
    refused(InvalidCorrectionError, corrections.split_cluster, a, strangers, match=f"{strangers[1]} are not in")
    refused(InvalidCorrectionError, corrections.split_cluster, a, [], match="at least one face")
    whole = refused(WholeClusterError, corrections.split_cluster, a, faces_a, match="leave at least one face")
    assert whole.cluster_id == a and isinstance(whole, InvalidCorrectionError)

    corrections.not_this_person(store, faces_a[0])
    before = state(store)
    again = refused(
        CorrectionConflictError, corrections.not_this_person, faces_a[0], match=r"no cluster \(unassigned\)"
    )
    assert isinstance(again, CollectionError)


def test_a_face_not_clustered_yet_has_no_cluster_to_leave(store):
    people = People(store)  # never clustered
    with pytest.raises(CorrectionConflictError, match="not clustered yet"):
        corrections.not_this_person(store, people.faces["A"][0])


# --- the store: lookups and constraints in bulk ----------------------------------------------------


def test_lookups_by_id(people, store):
    a = people.cluster("A")
    face = store.face(people.faces["A"][0])
    assert face in store.cluster_faces(a) and face.cluster == a and face.root == ROOT
    assert store.cluster(a) == next(c for c in store.clusters() if c.id == a)
    photo = store.photo(face.photo_id)
    assert photo == next(p for p in store.photos() if p.id == face.photo_id)
    for lookup, error in ((store.face, FaceNotFoundError), (store.cluster, ClusterNotFoundError),
                          (store.photo, PhotoNotFoundError)):  # fmt: skip
        with pytest.raises(error, match="no .* 10000 in collection") as info:
            lookup(10_000)
        assert isinstance(info.value, CollectionError) and isinstance(info.value, KeyError)
        assert not str(info.value).startswith("'")  # not quoted like a plain KeyError
    with pytest.raises(ClusterNotFoundError):
        store.name_cluster(10_000, "Zed")  # the store's own refusals are typed too
    store.name_cluster(a, "Ada")
    with pytest.raises(NameTakenError):
        store.name_cluster(people.cluster("B"), "Ada")


class Statements:
    """The SQL a store's connection runs (its transactions, as BEGIN and COMMIT)."""

    def __init__(self, store: CollectionStore) -> None:
        if not isinstance(store, SqliteCollectionStore):
            pytest.skip("counts the statements of SQLite's connection")
        self.seen: list[str] = []
        store._conn.set_trace_callback(self.seen.append)

    def count(self, statement: str) -> int:
        return sum(s.strip().upper() == statement for s in self.seen)


def test_constraints_in_bulk_are_one_transaction(people, store):
    faces = sorted(people.faces["A"] + people.faces["B"] + people.faces["C"])
    pairs = [(a, b) for i, a in enumerate(faces) for b in faces[i + 1 :]]
    sql = Statements(store)
    assert store.add_constraints(pairs, "cannot") == len(pairs)
    assert (sql.count("BEGIN IMMEDIATE"), sql.count("COMMIT")) == (1, 1)
    assert count_constraints(store) == (0, len(pairs))

    sql.seen.clear()
    assert store.remove_constraints(pairs[:10] + [(faces[0], 10_000)]) == 10  # a pair with none: no error
    assert store.update_constraints(must=[pairs[-1][::-1]], remove=pairs[10:20]) == (1, 10)  # must replaces cannot
    assert (sql.count("BEGIN IMMEDIATE"), sql.count("COMMIT")) == (2, 2)
    must, cannot = store.constraints()
    assert must.tolist() == [list(pairs[-1])] and len(cannot) == len(pairs) - 21


def test_constraints_in_bulk_are_all_or_nothing(people, store):
    faces = sorted(people.faces["A"])
    good = [(faces[0], faces[1]), (faces[1], faces[2])]
    before = store.constraints()
    for pairs, error, match in [
        ([*good, (faces[3], 10_000)], FaceNotFoundError, "no face 10000"),
        ([*good, (faces[3], faces[3])], CollectionError, "two different faces"),
        ([*good, good[0][::-1]], CollectionError, "given twice"),
    ]:
        with pytest.raises(error, match=match):
            store.add_constraints(pairs, "must")
        assert all(np.array_equal(x, y) for x, y in zip(store.constraints(), before, strict=True))
    with pytest.raises(CollectionError, match="given twice"):
        store.update_constraints(must=good, remove=good[:1])
    with pytest.raises(CollectionError, match="'must' or 'cannot'"):
        store.add_constraints(good, "maybe")
    assert count_constraints(store) == (0, 0)


def test_a_correction_writes_its_constraints_in_one_transaction(people, store):
    """A split of a cluster of n faces adds n - k cannot-links and more: two write transactions
    (the clusters, the constraints), not one per constraint."""
    a = people.cluster("A")
    faces_a = sorted(people.faces["A"])
    sql = Statements(store)
    corrections.split_cluster(store, a, faces_a[:2])
    assert sql.count("BEGIN IMMEDIATE") == 2 and count_constraints(store) == (1, 3)


# --- the service's engine keeps one store --------------------------------------------------------------


def test_the_engine_keeps_one_store_that_sees_other_connections(tmp_path):
    from faceatlas.server.engine import Engine
    from faceatlas.server.settings import Settings

    engine = Engine(Settings(data_dir=tmp_path, rate_limit_per_minute=0))
    path = engine.settings.collection_path
    try:
        with engine.collection() as first:
            assert first.clusters() == []  # created: a new service's first request
        with engine.collection() as second:
            assert second is first  # opened once: no integrity check per request

        with CollectionStore.open(path) as job:  # an index job's own connection, in its own thread
            thread = threading.Thread(target=People, args=(job,))
            thread.start()
            thread.join()
            with engine.collection() as store:
                assert len(store.face_table()) == 12 and len(store.photos()) == 11  # its commits are seen

        errors: list[BaseException] = []

        def read() -> None:  # request threads share the one connection
            try:
                with engine.collection() as store:
                    for _ in range(50):
                        assert len(store.photos()) == 11 and store.face(store.face_table().face_ids[0])
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        readers = [threading.Thread(target=read) for _ in range(8)]
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join()
        assert errors == []

        for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            leftover.unlink(missing_ok=True)  # deleted while the service runs: a fresh start
        with engine.collection() as fresh:
            assert fresh is not first and fresh.photos() == [] and path.exists()
    finally:
        engine.close()
    with engine.collection() as reopened:  # an engine that serves again opens it again
        assert reopened.photos() == []
    engine.close()
    with pytest.raises(CollectionError, match="closed"):
        first.photos()
