"""FaceClusterer: average linkage on the k-NN graph, constraints, quality gate, incremental runs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from faceatlas.clustering import FaceClusterer, cluster
from faceatlas.clustering.clusterer import NOT_CLUSTERED
from faceatlas.models.cards import DLIB_RESNET_CARD

DIM = 32


def identities(n_people: int, per_person: int, seed: int = 0, spread: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors around well separated random directions; (embeddings, person of each row)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_people, DIM))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    people = np.repeat(np.arange(n_people), per_person)
    x = centres[people] + spread * rng.standard_normal((len(people), DIM)) / np.sqrt(DIM)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), people


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs_a = a[:, None] == a[None, :]
    pairs_b = b[:, None] == b[None, :]
    return bool((pairs_a == pairs_b).all())


def test_separate_people_become_separate_clusters():
    x, people = identities(6, 5)
    clusterer = FaceClusterer(threshold=0.9).fit(x)
    assert same_partition(clusterer.labels_, people)
    assert clusterer.n_clusters_ == 6 and sorted(set(clusterer.labels_.tolist())) == list(range(6))
    assert (cluster(x, threshold=0.9) == clusterer.labels_).all()  # the front door is the default clusterer


def test_default_threshold_comes_from_the_model_card():
    x, _ = identities(2, 3)
    per_comparison = 1 - (1 - 1e-2) ** (1 / 30)  # FPIR 1 % over a face's 30 neighbours
    assert FaceClusterer().fit(x).threshold_ == pytest.approx(DLIB_RESNET_CARD.threshold_for(per_comparison))
    assert FaceClusterer(far=1e-4).fit(x).threshold_ == pytest.approx(DLIB_RESNET_CARD.threshold_for(1e-4))
    assert FaceClusterer(fpir=0.05, k=10).fit(x).threshold_ < FaceClusterer().fit(x).threshold_


def test_average_linkage_is_exact_on_small_sets():
    """With k large enough that every pair is a candidate (and no seed rule), the result equals
    scikit-learn's UPGMA."""
    from sklearn.cluster import AgglomerativeClustering

    x, _ = identities(8, 6, seed=3, spread=0.9)  # overlapping people: merges are close calls
    ours = FaceClusterer(threshold=0.6, k=len(x), min_quality=None, mutual_seeds=False, consensus=False)
    ours = ours.fit(x).labels_
    reference = AgglomerativeClustering(
        n_clusters=None, metric="cosine", linkage="average", distance_threshold=1 - 0.6
    ).fit_predict(x)
    assert same_partition(ours, reference)


def test_two_single_faces_pair_up_only_as_mutual_nearest_neighbours():
    """Faces p1, p2 are one person; x is nearest to p1 but not close enough to the pair's average;
    y's nearest is x. Average linkage alone then pairs x with y, two strangers; the seed rule
    does not, since x's nearest neighbour is p1, not y."""
    gram = np.array([[1, 0.97, 0.95, 0.84], [0.97, 1, 0.87, 0.78], [0.95, 0.87, 1, 0.93], [0.84, 0.78, 0.93, 1]])
    x = np.linalg.cholesky(gram).astype(np.float32)  # rows whose dot products are the gram matrix
    plain = FaceClusterer(threshold=0.92, min_quality=None, mutual_seeds=False).fit(x).labels_
    assert plain[0] == plain[1] and plain[2] == plain[3] and plain[0] != plain[2]
    seeded = FaceClusterer(threshold=0.92, min_quality=None).fit(x).labels_
    assert seeded[0] == seeded[1] and len({seeded[0], seeded[2], seeded[3]}) == 3


def test_a_face_left_alone_joins_the_cluster_its_whole_neighbourhood_agrees_on():
    """Three tight groups (0.9 within, 0.78 across) merge into one cluster. Face 12 matches two
    faces of each group at 0.74, above the threshold 0.7, and the rest at 0.62: each group's
    average, and the cluster's, stay below 0.7, so average linkage leaves it alone. All its k = 5
    (or 6) nearest neighbours pass and lie in that cluster, so it joins, unless a photo or a
    cannot-link forbids it or its neighbourhood does not agree (k = 7 reaches a 0.62 face)."""
    gram = np.full((13, 13), 0.78)
    for start in (0, 4, 8):
        gram[start : start + 4, start : start + 4] = 0.9
    gram[12, :] = gram[:, 12] = 0.62
    gram[12, [0, 1, 4, 5, 8, 9]] = gram[[0, 1, 4, 5, 8, 9], 12] = 0.74
    np.fill_diagonal(gram, 1.0)
    x = np.linalg.cholesky(gram).astype(np.float32)

    alone = FaceClusterer(threshold=0.7, k=5, consensus=False).fit(x).labels_
    assert len(set(alone[:12].tolist())) == 1 and alone[12] != alone[0]
    assert (FaceClusterer(threshold=0.7, k=5).fit(x).labels_ == 0).all()
    assert (FaceClusterer(threshold=0.7, k=6).fit(x).labels_ == 0).all()
    assert FaceClusterer(threshold=0.7, k=7).fit(x).labels_[12] != 0
    photo = FaceClusterer(threshold=0.7, k=5).fit(x, groups=[0, *range(1, 12), 0]).labels_
    assert photo[12] != photo[0] and len(set(photo[:12].tolist())) == 1
    assert FaceClusterer(threshold=0.7, k=5).fit(x, cannot_link=[(12, 6)]).labels_[12] != 0


def test_faces_of_one_photo_never_share_a_cluster():
    rng = np.random.default_rng(5)
    x, _ = identities(5, 12, seed=1, spread=0.6)
    photos = rng.integers(0, 20, size=len(x))  # many photos hold the same person twice
    labels = FaceClusterer(threshold=0.7).fit(x, groups=photos).labels_
    for label in set(labels.tolist()) - {-1}:
        members = photos[labels == label]
        assert len(members) == len(set(members.tolist())), f"cluster {label} holds two faces of one photo"
    # without the constraint the same data does put a photo twice in a cluster (the test has teeth)
    unconstrained = FaceClusterer(threshold=0.7).fit(x).labels_
    assert any(
        len(set(photos[unconstrained == label].tolist())) < int((unconstrained == label).sum())
        for label in set(unconstrained.tolist())
    )


def test_user_corrections_are_honoured():
    x, _ = identities(3, 4)
    must = [(0, 4)]  # the user says faces 0 (person 0) and 4 (person 1) are one person
    labels = FaceClusterer(threshold=0.9).fit(x, must_link=must).labels_
    assert labels[0] == labels[4]
    cannot = [(0, 1)]  # "not this person": face 1 is not whoever face 0 is
    labels = FaceClusterer(threshold=0.9).fit(x, cannot_link=cannot).labels_
    assert labels[0] != labels[1]
    assert labels[2] == labels[3] == labels[0] or labels[2] == labels[3] == labels[1]


def test_quality_gate_low_quality_faces_attach_only_where_they_clearly_belong():
    x, people = identities(2, 5, seed=2)
    a, b = x[people == 0].mean(axis=0), x[people == 1].mean(axis=0)
    near_a = a + 0.05 * (b - a)
    between = (a + b) / 2
    extra = np.stack([near_a / np.linalg.norm(near_a), between / np.linalg.norm(between)]).astype(np.float32)
    data = np.vstack([x, extra])
    quality = np.r_[np.full(len(x), 0.9), 0.1, 0.1]
    labels = FaceClusterer(threshold=0.5, min_quality=0.3, attach_margin=0.05).fit(data, qualities=quality).labels_
    # the gated faces took no part in merging: the two people did not merge through them
    assert same_partition(labels[: len(x)], people)
    assert labels[-2] == labels[0]  # clearly person 0: attached
    assert labels[-1] == -1  # halfway between two people: left unassigned


def test_incremental_run_keeps_clusters_and_labels_and_matches_a_full_run():
    x, people = identities(6, 6, seed=4)
    order = np.random.default_rng(0).permutation(len(x))
    x, people = x[order], people[order]
    first = np.isin(people, [0, 1, 2, 3]) & (np.arange(len(x)) < 24)
    before = FaceClusterer(threshold=0.9).fit(x[first]).labels_
    initial = np.full(len(x), NOT_CLUSTERED)
    initial[first] = before
    after = FaceClusterer(threshold=0.9).fit(x, initial_labels=initial).labels_
    assert (after[first] == before).all()  # nobody was moved, every label kept
    assert same_partition(after, people)  # new faces joined their people; new people got new clusters
    new_people = set(people[~first].tolist()) - set(people[first].tolist())
    assert all(after[people == p][0] > before.max() for p in new_people)
    full = FaceClusterer(threshold=0.9).fit(x).labels_
    assert same_partition(after, full)


def test_new_faces_reopen_a_small_cluster_formed_on_thin_evidence():
    """Faces a and b (0.8) were each other's best match when they were alone, so they formed a
    cluster. Then a's own person arrives (p1, p2: 0.9 to a and each other, 0.5 to b). A full run
    puts a with p1, p2 and leaves b alone; an incremental run that kept {a, b} could not (the
    pairs' average, 0.7, is below 0.75). Reopening the small cluster the new faces reach does,
    and a keeps its label; a frozen (e.g. named) cluster, or one above ``reopen`` faces, stays."""
    gram = np.array([[1, 0.8, 0.9, 0.9], [0.8, 1, 0.5, 0.5], [0.9, 0.5, 1, 0.9], [0.9, 0.5, 0.9, 1]])
    x = np.linalg.cholesky(gram).astype(np.float32)
    assert (FaceClusterer(threshold=0.75).fit(x[:2]).labels_ == [0, 0]).all()
    initial = [0, 0, NOT_CLUSTERED, NOT_CLUSTERED]
    full = FaceClusterer(threshold=0.75).fit(x).labels_
    reopened = FaceClusterer(threshold=0.75).fit(x, initial_labels=initial).labels_
    assert same_partition(reopened, full) and list(reopened) == [0, 1, 0, 0]
    kept = [0, 0, 1, 1]
    assert list(FaceClusterer(threshold=0.75, reopen=0).fit(x, initial_labels=initial).labels_) == kept
    assert list(FaceClusterer(threshold=0.75, reopen=1).fit(x, initial_labels=initial).labels_) == kept
    assert list(FaceClusterer(threshold=0.75).fit(x, initial_labels=initial, frozen_labels=[0]).labels_) == kept


def test_an_existing_cluster_with_a_new_cannot_link_gives_up_only_that_face():
    x, people = identities(2, 4)
    labels = FaceClusterer(threshold=0.9).fit(x).labels_
    merged = np.where(people == 1, labels[0], labels)  # a stored clustering that lumped both people
    again = FaceClusterer(threshold=0.9).fit(x, initial_labels=merged, cannot_link=[(0, 4)]).labels_
    assert again[0] != again[4]
    # "not this person" on face 0 against its whole cluster: only face 0 leaves, the rest keep the label
    cannot = [(0, j) for j in range(1, 4)]
    again = FaceClusterer(threshold=0.9).fit(x, initial_labels=labels, cannot_link=cannot).labels_
    assert (again[1:] == labels[1:]).all() and again[0] not in labels


def test_bad_input_is_refused_with_a_reason():
    x, _ = identities(2, 3)
    with pytest.raises(ValueError, match="NaN"):
        FaceClusterer().fit(np.where(np.eye(len(x), DIM, dtype=bool), np.nan, x))
    with pytest.raises(ValueError, match=r"\(n, d\)"):
        FaceClusterer().fit(x[0])
    with pytest.raises(ValueError, match="zero length"):
        FaceClusterer().fit(np.zeros((3, DIM)))
    with pytest.raises(ValueError, match="qualities"):
        FaceClusterer().fit(x, qualities=[1.0])
    with pytest.raises(ValueError, match="must_link"):
        FaceClusterer().fit(x, must_link=[(0, 99)])
    with pytest.raises(ValueError, match="k must"):
        FaceClusterer(k=0).fit(x)
    with pytest.raises(ValueError, match="reopen"):
        FaceClusterer(reopen=-1).fit(x)
    with pytest.raises(ValueError, match="frozen_labels"):
        FaceClusterer().fit(x, initial_labels=[0, 0, 0, -2, -2, -2], frozen_labels=["Ada"])
    assert FaceClusterer().fit(np.zeros((0, DIM), np.float32)).labels_.shape == (0,)
    assert FaceClusterer().fit(x[:1]).labels_.tolist() == [0]


# --- a photo collection: ids stay, names stay apart, corrections hold ----------------------


def _collection(tmp_path, x, photos):
    from faceatlas.collection.store import CollectionStore
    from faceatlas.gallery.store import ModelTag
    from faceatlas.types import Box, Face, Landmarks, Quality

    store = CollectionStore.open(tmp_path / "photos.db")
    store.bind_model(ModelTag("test", "1", DIM))
    for photo in sorted(set(photos.tolist())):
        faces = [
            Face(
                Box(0, 0, 50 - i, 50 - i), 0.99, Landmarks(np.zeros((5, 2))), None, Quality(0.9, 1, 1, 1, 1, 1), x[row]
            )
            for i, row in enumerate(np.flatnonzero(photos == photo))
        ]
        store.add_photo(f"p{photo}.jpg", str(tmp_path), f"sha{photo}", 1, 1, 50, 50, faces)
    return store


def test_cluster_collection_keeps_ids_names_and_corrections(tmp_path):
    from faceatlas.collection.grouping import cluster_collection

    x, people = identities(4, 4, seed=6)
    photos = np.arange(len(x))  # one face per photo
    store = _collection(tmp_path, x, photos)
    clusterer = FaceClusterer(threshold=0.9)
    report = cluster_collection(store, clusterer)
    assert report.clusters == 4 and report.placed == 16 and report.new_clusters == 4
    table = store.face_table()
    assert same_partition(table.clusters, people)
    ada = int(table.clusters[0])
    store.name_cluster(ada, "Ada")

    # a new photo of Ada and one of a stranger: Ada's cluster keeps its id (and so its name)
    stranger, _ = identities(1, 1, seed=99)
    new = np.vstack([x[people == people[0]][:1] * 0.99 + 0.01 * x[1], stranger]).astype(np.float32)
    for i, vector in enumerate(new / np.linalg.norm(new, axis=1, keepdims=True)):
        face = store.cluster_faces(ada)[0]
        from faceatlas.types import Box, Face, Landmarks, Quality

        store.add_photo(
            f"new{i}.jpg",
            str(tmp_path),
            f"new{i}",
            1,
            1,
            50,
            50,
            [Face(Box(0, 0, 9, 9), 0.99, Landmarks(np.zeros((5, 2))), None, Quality(0.9, 1, 1, 1, 1, 1), vector)],
        )
        assert face.id  # the cluster still has faces
    report = cluster_collection(store, clusterer)
    assert report.placed == 2 and report.new_clusters == 1
    names = {info.name: info for info in store.clusters()}
    assert names["Ada"].id == ada and names["Ada"].n_faces == 5

    # "not this person": the user takes Ada's first face out; a full re-run honours it
    ada_faces = [f.id for f in store.cluster_faces(ada)]
    for other in ada_faces[1:]:
        store.add_constraint(ada_faces[0], other, "cannot")
    cluster_collection(store, clusterer, full=True)
    assert ada_faces[0] not in [f.id for f in store.cluster_faces(ada)]
    assert {info.name: info.id for info in store.clusters()}["Ada"] == ada

    assert sorted(f.id for f in store.cluster_faces(ada)) == sorted(ada_faces[1:])
    store.close()


def test_differently_named_clusters_are_never_merged(tmp_path):
    from faceatlas.collection.grouping import cluster_collection

    x, _ = identities(1, 6, seed=7)  # one person...
    store = _collection(tmp_path, x, np.arange(len(x)))
    table = store.face_table()
    store.set_clusters(table.face_ids, [0, 0, 0, 1, 1, 1])  # ...that the user named twice
    store.name_cluster(0, "Ada")
    store.name_cluster(1, "Ada's twin")
    cluster_collection(store, FaceClusterer(threshold=0.5), full=True)
    assert {info.name: info.n_faces for info in store.clusters()} == {"Ada": 3, "Ada's twin": 3}
    store.close()


def test_cli_cluster_list_and_name_into_a_gallery(tmp_path, monkeypatch):
    """`faceatlas cluster`, `people clusters`, `people name --gallery`, then the gallery knows her."""
    from typer.testing import CliRunner

    from faceatlas.cli import app
    from faceatlas.gallery.gallery import Gallery
    from faceatlas.models import catalog

    # toy vectors, toy threshold: the card of the collection's model ("test" v1, registered nowhere)
    monkeypatch.setattr(catalog, "card_for_tag", lambda tag, embedder=None, where="": _LooseCard())
    x, people = identities(3, 4, seed=8)
    _collection(tmp_path, x, np.arange(len(x))).close()
    db, gallery = str(tmp_path / "photos.db"), str(tmp_path / "gallery.db")
    runner = CliRunner()
    result = runner.invoke(app, ["cluster", "--db", db])
    assert result.exit_code == 0 and "12 faces in 3 clusters (3 new)" in result.output, result.output
    result = runner.invoke(app, ["people", "clusters", "--db", db])
    assert result.exit_code == 0 and "3 people; 0 faces unassigned, 0 not clustered yet" in result.output
    result = runner.invoke(app, ["people", "name", "0", "Ada", "--db", db, "--gallery", gallery])
    assert result.exit_code == 0 and "'Ada'" in result.output, result.output
    assert runner.invoke(app, ["people", "name", "99", "Nobody", "--db", db]).exit_code == 3
    with Gallery.open(gallery, analyzer=_TestAnalyzer()) as g:
        assert [p.name for p in g.people()] == ["Ada"] and g.people()[0].n_faces == 4
        (hit,) = g.identify(x[people == people[0]][0])
        assert hit.candidates[0].person == "Ada"


class _LooseCard:
    name, version, embedding_dim = "test", "1", DIM

    @staticmethod
    def threshold_for(far: float) -> float:
        return 0.9


class _TestAnalyzer:
    class embedder:  # the gallery binds to the collection's model tag ("test" v1)
        card = dataclasses.replace(DLIB_RESNET_CARD, name="test", version="1", embedding_dim=DIM)
        dim = DIM


def test_real_group_photos_never_put_two_faces_of_one_photo_together(tmp_path):
    """dlib's annotated group photos through the real pipeline, clustered loosely enough that
    faces of one photo would merge without the constraint."""
    import shutil

    from conftest import shared_data

    from faceatlas.collection.grouping import cluster_collection
    from faceatlas.collection.indexer import index_folder
    from faceatlas.collection.store import CollectionStore

    source = shared_data("dlib_faces", "examples", "faces")
    photos = tmp_path / "photos"
    photos.mkdir()
    for image in sorted(source.glob("*.jpg")):
        shutil.copy(image, photos / image.name)
    with CollectionStore.open(tmp_path / "c.db") as store:
        index_folder(photos, store)
        table = store.face_table()
        per_photo = np.bincount(table.photo_ids)
        assert len(table) >= 30 and per_photo.max() >= 5  # real group photos
        for clusterer in (FaceClusterer(threshold=0.5, min_quality=None), FaceClusterer()):
            cluster_collection(store, clusterer, full=True)
            table = store.face_table()
            for label in set(table.clusters.tolist()) - {-1}:
                members = table.photo_ids[table.clusters == label]
                assert len(members) == len(set(members.tolist())), f"cluster {label}: two faces of one photo"
        loose = FaceClusterer(threshold=0.5, min_quality=None, k=len(table)).fit(table.embeddings).labels_
        assert any(  # without the constraint, the loose clusterer does put faces of one photo together
            len(set(table.photo_ids[loose == label].tolist())) < int((loose == label).sum())
            for label in set(loose.tolist())
        )


def _reference_linkage(nodes, edges: np.ndarray, threshold: float, seed_ok=None) -> list[list[int]]:
    """Average linkage as defined, slowly: at every step every candidate pair (two clusters joined
    by an edge, not refused) is scored afresh and the best one merged. No heap, no saved scores.
    Same conventions as ``average_linkage``: ties go to the lower (a, b); the bigger cluster keeps
    its index (the lower one if equal); a refused pair stays refused."""
    m = len(nodes.sizes)
    sums, sizes = nodes.sums.astype(np.float64).copy(), nodes.sizes.astype(np.float64).copy()
    members = [list(v) for v in nodes.members]
    photos = [set(p) for p in nodes.photos] or [set() for _ in range(m)]
    forbidden = [set(f) for f in nodes.forbidden] or [set() for _ in range(m)]
    owner = np.arange(m)
    refused: set[tuple[int, int]] = set()
    while True:
        a, b = owner[edges[:, 0]], owner[edges[:, 1]]
        pairs = np.unique(np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1)[a != b], axis=0)
        pairs = np.array([p for p in pairs.tolist() if tuple(p) not in refused], dtype=np.int64).reshape(-1, 2)
        if not len(pairs):
            break
        scores = np.einsum("ij,ij->i", sums[pairs[:, 0]], sums[pairs[:, 1]]) / (sizes[pairs[:, 0]] * sizes[pairs[:, 1]])
        best = int(np.argmax(scores))  # the first of equals: the lowest pair
        if scores[best] < threshold:
            break
        x, y = pairs[best].tolist()
        if (
            photos[x] & photos[y]
            or forbidden[x] & set(members[y])
            or forbidden[y] & set(members[x])
            or (seed_ok is not None and sizes[x] == sizes[y] == 1 and not seed_ok(members[x][0], members[y][0]))
        ):
            refused.add((x, y))
            continue
        if sizes[x] < sizes[y]:
            x, y = y, x
        sums[x] += sums[y]
        sizes[x] += sizes[y]
        members[x] += members[y]
        photos[x] |= photos[y]
        forbidden[x] |= forbidden[y]
        members[y] = []
        owner[owner == y] = x
    return [v for v in members if v]


def _linkage_case(seed: int, constraints: bool):
    """Overlapping people, a few two-face starting nodes, k-NN edges (k = 5); with ``constraints``
    also photos of 2 to 3 faces and cannot-links. (nodes, edges, threshold, face similarities)."""
    from faceatlas.clustering.linkage import Nodes

    rng = np.random.default_rng(seed)
    x, _ = identities(14, 8, seed=seed, spread=1.0)
    x = x.astype(np.float64)
    x = x[rng.permutation(len(x))[: int(rng.integers(60, 113))]]  # 60 to 112 faces
    n = len(x)
    sims = x @ x.T
    node_of = np.arange(n)
    for i in rng.choice(n, size=6, replace=False).tolist():  # six faces join their nearest one's node
        j = int(np.argsort(-sims[i])[1])
        node_of[node_of == node_of[i]] = node_of[j]
    _, node_of = np.unique(node_of, return_inverse=True)
    m = int(node_of.max()) + 1
    members = [np.flatnonzero(node_of == v).tolist() for v in range(m)]
    photos: list[set[int]] = []
    forbidden: list[set[int]] = []
    if constraints:
        photo = np.full(n, -1)
        for p, faces in enumerate(np.array_split(rng.permutation(n)[: n // 3], n // 8)):
            photo[faces] = p  # about a third of the faces share a photo with 1 or 2 others
        photos = [{int(photo[f]) for f in faces if photo[f] >= 0} for faces in members]
        forbidden = [set() for _ in range(m)]
        close = np.argwhere(np.triu(sims, 1) > 0.5)
        for i, j in close[rng.choice(len(close), size=min(12, len(close)), replace=False)].tolist():
            forbidden[node_of[i]].add(j)
            forbidden[node_of[j]].add(i)
    nodes = Nodes(
        np.stack([x[f].sum(axis=0) for f in members]),
        np.array([len(f) for f in members], float),
        members,
        photos,
        forbidden,
    )
    near = np.argsort(-sims, axis=1)[:, 1:6]
    edges = node_of[np.stack([np.repeat(np.arange(n), 5), near.ravel()], axis=1)]
    threshold = float(np.quantile(sims[np.triu_indices(n, 1)], 0.97))
    return nodes, edges, threshold, sims


def _mutual_nearest(sims: np.ndarray):
    best = np.where(np.eye(len(sims), dtype=bool), -np.inf, sims).max(axis=1)
    return lambda a, b: sims[a, b] >= best[a] and sims[a, b] >= best[b]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("constraints", [False, True])
@pytest.mark.parametrize("seeded", [False, True])
def test_average_linkage_equals_a_plain_reference_on_random_data(seed, constraints, seeded):
    """The heap and per-cluster lists give the partition of the plain definition: at each step
    score every candidate pair afresh and merge the best. Overlapping people and k = 5 make close
    calls and pairs whose score climbs past the threshold after a merge; photos, cannot-links and
    the seed rule refuse merges along the way."""
    from faceatlas.clustering.linkage import average_linkage

    nodes, edges, threshold, sims = _linkage_case(seed, constraints)
    seed_ok = _mutual_nearest(sims) if seeded else None
    expected = _reference_linkage(dataclasses.replace(nodes), edges, threshold, seed_ok)
    got = average_linkage(
        dataclasses.replace(nodes, sums=nodes.sums.copy(), photos=[set(p) for p in nodes.photos]),
        edges,
        threshold,
        seed_ok,
    )
    assert {frozenset(c) for c in got} == {frozenset(c) for c in expected}
    assert 1 < len(expected) < len(nodes.sizes) - 10  # merges happened, and not into one cluster


@pytest.mark.parametrize("seed", range(3))
def test_average_linkage_with_every_pair_a_candidate_is_sklearns_upgma(seed):
    from sklearn.cluster import AgglomerativeClustering

    from faceatlas.clustering.linkage import Nodes, average_linkage

    x, _ = identities(10, 10, seed=seed, spread=1.0)
    x = x.astype(np.float64)
    n = len(x)
    edges = np.argwhere(~np.eye(n, dtype=bool))
    threshold = 0.55
    got = average_linkage(Nodes(x.copy(), np.ones(n), [[i] for i in range(n)]), edges, threshold)
    labels = np.empty(n, int)
    for label, faces in enumerate(got):
        labels[faces] = label
    reference = AgglomerativeClustering(
        n_clusters=None, metric="cosine", linkage="average", distance_threshold=1 - threshold
    ).fit_predict(x)
    assert same_partition(labels, reference)
    assert 1 < len(got) < n - 20


def test_a_pair_can_climb_past_the_threshold_after_a_merge():
    """Faces 0 and 1 are very alike (0.954) but no edge joins them (nor 2 and 3); 0's edges reach
    only 2 and 3, both below the threshold (0.79, 0.80). Once 1 and 3 merge (0.933), 0's average
    with {1, 3} is 0.87: 0 joins, then 2. Keeping old scores as upper bounds (avg(A∪B, C) lies
    between avg(A, C) and avg(B, C)) fails here: avg(0, 1) was never a candidate, and a lazy
    rescoring would leave 0 on its own."""
    from faceatlas.clustering.linkage import Nodes, average_linkage

    x = np.array([[0.912, -0.303, 0.276], [0.869, -0.494, 0.044], [0.939, -0.088, -0.331], [0.789, -0.53, -0.31]])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    edges = np.array([[0, 2], [0, 3], [1, 2], [1, 3]])
    assert (x[0] @ x[2] < 0.82) and (x[0] @ x[3] < 0.82) and x[0] @ x[1] > 0.95
    got = average_linkage(Nodes(x.copy(), np.ones(4), [[0], [1], [2], [3]]), edges, 0.82)
    assert sorted(map(sorted, got)) == [[0, 1, 2, 3]]


def test_cli_corrections_hold_through_a_full_recluster(tmp_path, monkeypatch):
    """`people merge-clusters`, `people split`, `people not-this-person`, then `cluster --full`."""
    from typer.testing import CliRunner

    from faceatlas.cli import app
    from faceatlas.collection.store import CollectionStore
    from faceatlas.models import catalog

    monkeypatch.setattr(catalog, "card_for_tag", lambda tag, embedder=None, where="": _LooseCard())
    x, _ = identities(3, 4, seed=8)
    _collection(tmp_path, x, np.arange(len(x))).close()
    db = str(tmp_path / "photos.db")
    runner = CliRunner()
    assert runner.invoke(app, ["cluster", "--db", db]).exit_code == 0

    def clusters() -> dict[int, set[int]]:
        with CollectionStore.open(db, create=False) as store:
            return {info.id: {f.id for f in store.cluster_faces(info.id)} for info in store.clusters()}

    before = clusters()
    (a, b, c) = sorted(before)
    merged = runner.invoke(app, ["people", "merge-clusters", str(b), str(a), "--db", db])
    assert merged.exit_code == 0 and "8 faces" in merged.output, merged.output
    leaving = min(before[c])
    result = runner.invoke(app, ["people", "not-this-person", str(leaving), "--db", db])
    assert result.exit_code == 0 and f"left cluster {c}" in result.output, result.output
    split_off = sorted(before[a])[:2]
    result = runner.invoke(app, ["people", "split", str(a), *map(str, split_off), "--db", db])
    assert result.exit_code == 0 and "2 faces split off" in result.output, result.output
    assert runner.invoke(app, ["people", "not-this-person", "999999", "--db", db]).exit_code == 3

    assert runner.invoke(app, ["cluster", "--full", "--db", db]).exit_code == 0
    after = clusters()
    holding = {frozenset(faces) for faces in after.values()}
    assert frozenset(split_off) in holding  # the split holds
    assert frozenset((before[a] | before[b]) - set(split_off)) in holding  # so does the merge
    # and "not this person": the face is with none of its former cluster's faces (alone is fine)
    assert all(not (leaving in faces and faces & (before[c] - {leaving})) for faces in after.values())


def test_hnsw_graph_finds_the_exact_neighbours_on_separated_people(monkeypatch):
    """Above HNSW_FROM the graph is clustering's own light HNSW: on well separated people it
    finds the same close neighbours as exact search, and the clusters are the same."""
    from faceatlas.clustering import graph

    x, people = identities(40, 6, seed=11)
    exact = graph.Neighbours(x)
    monkeypatch.setattr(graph, "HNSW_FROM", 1)
    approx = graph.Neighbours(x)
    rows = np.arange(len(x))
    (exact_ids, _), (ids, sims) = exact.of_rows(rows, 5), approx.of_rows(rows, 5)
    assert ids.shape == exact_ids.shape == (len(x), 5) and sims.dtype == np.float32
    assert (ids != rows[:, None]).all()  # a face is never its own neighbour
    assert (people[ids] == people[:, None]).all()  # 5 neighbours, all of the face's own person
    assert np.mean([set(a) == set(b) for a, b in zip(ids, exact_ids, strict=True)]) > 0.95
    np.testing.assert_allclose(sims, np.einsum("id,ikd->ik", x, x[ids]), atol=1e-5)
    labels = FaceClusterer(threshold=0.9).fit(x).labels_
    monkeypatch.setattr(graph, "HNSW_FROM", 1_000_000)
    assert same_partition(labels, FaceClusterer(threshold=0.9).fit(x).labels_)


@pytest.mark.parametrize("hnsw", [False, True])
def test_neighbours_of_new_vectors(monkeypatch, hnsw):
    from faceatlas.clustering import graph

    monkeypatch.setattr(graph, "HNSW_FROM", 1 if hnsw else 1_000_000)
    x, _ = identities(10, 5, seed=12)
    known, new = x[::2], x[1::2]
    ids, sims = graph.Neighbours(known).of_vectors(new, 3)
    truth = np.argsort(-(new @ known.T), axis=1)[:, :3]
    assert ids.shape == (len(new), 3) and (ids == truth).mean() > 0.95
    np.testing.assert_allclose(sims, np.einsum("id,ikd->ik", new, known[ids]), atol=1e-5)
    wide, wide_sims = graph.Neighbours(known[:2]).of_vectors(new, 3)  # fewer rows than k: all of them
    assert wide.shape == (len(new), 2) and set(wide[0].tolist()) == {0, 1} and np.isfinite(wide_sims).all()


def test_gated_faces_attach_alike_whether_scored_against_all_clusters_or_their_neighbours(monkeypatch):
    """Past ATTACH_EXACT_UP_TO (gated faces × clusters) a gated face is scored only against the
    clusters its nearest faces are in: the same attachments where those hold the answer."""
    from faceatlas.clustering import clusterer

    x, people = identities(12, 6, seed=13)
    rng = np.random.default_rng(13)
    gated = rng.choice(len(x), 20, replace=False)
    a, b = x[people == 0].mean(axis=0), x[people == 1].mean(axis=0)
    between = ((a + b) / 2 / np.linalg.norm((a + b) / 2)).astype(np.float32)
    data = np.vstack([x, between])  # halfway between two people: stays unassigned either way
    quality = np.ones(len(data))
    quality[[*gated, len(x)]] = 0.1
    groups = np.arange(len(data))
    mate = next(i for i in np.flatnonzero(people == people[gated[0]]) if i not in gated)
    groups[gated[0]] = groups[mate]  # in one photo with a face of its own person: may not join it
    fit = FaceClusterer(threshold=0.8, attach_margin=0.05)
    exact = fit.fit(data, qualities=quality, groups=groups).labels_
    monkeypatch.setattr(clusterer, "ATTACH_EXACT_UP_TO", 0)
    near = fit.fit(data, qualities=quality, groups=groups).labels_
    assert (near == exact).all()
    assert exact[-1] == -1 and (exact[gated] >= 0).sum() >= 15  # most gated faces found their person
    assert exact[gated[0]] != exact[mate]
    assert same_partition(exact[: len(x)][exact[: len(x)] >= 0], people[exact[: len(x)] >= 0])
