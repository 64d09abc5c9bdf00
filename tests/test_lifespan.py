"""Birth dates, capture dates and life stages (issue 17, item 4): ``clustering.lifespan`` as a function,
and in a collection (both backends): a face of a photo dated before a person's birth never joins
them, life stages stay templates of their own under one name, refusals are typed and change nothing.

Collections are stored directly with the fake embeddings of test_collection_corrections.py: D looks
so much like A that the clusterer takes them for one person, as it would a look-alike sibling.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest
from test_collection_corrections import ROOT, FakeAnalyzer, fake_face, groups

from faceatlas.clustering import NOT_CLUSTERED, FaceClusterer
from faceatlas.clustering.lifespan import AgeCheck, as_days, lifespan_constraints, parse_birth_date
from faceatlas.collection import corrections
from faceatlas.collection.grouping import cluster_collection
from faceatlas.collection.store import (
    ClusterNotFoundError,
    CollectionStore,
    CorrectionConflictError,
    InvalidCorrectionError,
    NewPhoto,
    model_tag,
)
from faceatlas.errors import InvalidArgumentError

# --- the rules, as a function ---------------------------------------------------------------------


def test_faces_dated_before_birth_leave_the_person_and_are_kept_out():
    labels = np.array([0, 0, 0, 1, -2, -2])
    dates = ["2012-05-01T10:00:00", "2008-01-01T09:00:00", None, "2001-01-01", "2009-12-31T23:59:59", "2011-01-01"]
    rules = lifespan_constraints(labels, dates, born={0: "2010-03-04"})
    assert rules.evict.tolist() == [1]  # in the cluster, dated before the birth
    # every face dated before the birth, with a face that stays: 1 (evicted), 3 (in another cluster), 4 (new)
    assert sorted(map(tuple, rules.cannot_link.tolist())) == [(1, 0), (3, 0), (4, 0)]
    assert rules.barred == 3


def test_a_person_over_120_at_the_photos_date_is_ruled_out_and_so_is_nothing_undated():
    rules = lifespan_constraints([0, -2, -2], ["2000-01-01", "2000-01-01", None], born={0: "1870-01-01"})
    assert rules.evict.tolist() == [0] and len(rules.cannot_link) == 0  # the cluster empties: nothing to join
    nothing = lifespan_constraints([0, -2], [None, None], born={0: "1990-01-01"})
    assert len(nothing.evict) == 0 and len(nothing.cannot_link) == 0 and nothing.barred == 0


def test_a_must_linked_face_stays_whatever_its_date():
    rules = lifespan_constraints([0, 0], ["2020-01-01", "1999-01-01"], born={0: "2010-01-01"}, keep=np.array([0, 1], bool))
    assert len(rules.evict) == 0 and len(rules.cannot_link) == 0  # the user's word outranks the clock


def test_age_estimates_bar_only_faces_far_from_the_persons_age():
    # born 1980; photos of 2020: the person is 40, allowed 40 +- max(20, 16)
    dates = ["2020-06-01"] * 4
    hard = AgeCheck(soft=False)
    rules = lifespan_constraints([0, -2, -2, -2], dates, born={0: "1980-01-01"}, ages=[40, 8, 55, np.nan], age_check=hard)
    assert sorted(map(tuple, rules.cannot_link.tolist())) == [(1, 0)]
    strict = lifespan_constraints([0, -2, -2, -2], dates, born={0: "1980-01-01"}, ages=[40, 8, 55, np.nan],
                                  age_check=AgeCheck(years=5, fraction=0.0, soft=False))  # fmt: skip
    assert sorted(map(tuple, strict.cannot_link.tolist())) == [(1, 0), (2, 0)]


def test_by_default_an_age_estimate_takes_the_face_out_after_clustering_and_leaves_its_group_alone():
    dates = ["2020-06-01"] * 4 + ["1970-01-01"]
    ages = [40, 8, 35, np.nan, 30]  # face 1's estimate rules it out; face 4 predates the birth
    rules = lifespan_constraints([0, -2, -2, -2, -2], dates, born={0: "1980-01-01"}, ages=ages)
    assert rules.cannot_link.tolist() == [[4, 0]]  # a date is certain: a cannot-link
    assert rules.unlikely.tolist() == [[1, 0]] and rules.barred == 2  # an estimate: checked afterwards
    clustered = np.array([0, 0, 0, 0, 7])  # faces 1 and 2 (a group) joined the person
    assert rules.settle(clustered).tolist() == [0, -1, 0, 0, 7]  # only the face its estimate rules out leaves
    kept = lifespan_constraints([0, -2, -2, -2, -2], dates, born={0: "1980-01-01"}, ages=ages,
                                keep=np.array([False, True, False, False, False]))  # fmt: skip
    assert kept.unlikely.tolist() == []  # the user's word outranks an estimate too


def test_life_stages_keep_a_dated_face_in_the_stage_whose_ages_fit():
    # one person (key 0) born 2000: stage 0 holds faces aged 2-5, stage 7 faces aged 25-26
    labels = np.array([0, 0, 7, 7, -2, -2, -2])
    dates = ["2002-06-01", "2005-06-01", "2025-06-01", "2026-06-01", "2004-01-01", "2024-06-01", "2015-06-01"]
    rules = lifespan_constraints(labels, dates, born={0: "2000-01-01", 7: "2000-01-01"}, person_of={7: 0})
    pairs = sorted(map(tuple, rules.cannot_link.tolist()))
    # the child's faces are outside the adult stage (and so kept out of it), the adult's out of the
    # child's; the face at 15 is far from both: no stage fits, so neither bars it
    assert pairs == [(0, 2), (1, 2), (2, 0), (3, 0), (4, 2), (5, 0)]
    assert len(rules.evict) == 0


def test_dates_are_read_leniently_and_birth_dates_strictly():
    days = as_days(["2004-07-01T12:30:00", "2004-07-02", None, "", "yesterday", date(2001, 2, 3)])
    assert [str(d) for d in days] == ["2004-07-01", "2004-07-02", "NaT", "NaT", "NaT", "2001-02-03"]
    assert parse_birth_date(" 1990-04-01 ") == date(1990, 4, 1)
    for bad in ("1990-13-01", "April 1990", (date.today() + timedelta(days=2)).isoformat(), 1990):
        with pytest.raises(InvalidArgumentError):
            parse_birth_date(bad)
    with pytest.raises(InvalidArgumentError, match="one value per face"):
        lifespan_constraints([0, 0], ["2000-01-01"], born={0: "1990-01-01"})
    with pytest.raises(InvalidArgumentError, match="one value per face"):
        lifespan_constraints([0, 0], ["2000-01-01"] * 2, born={0: "1990-01-01"}, ages=[1.0])


def test_the_clusterer_honours_the_rules_it_is_given():
    rng = np.random.default_rng(3)
    centre = rng.normal(size=128)
    x = centre + 0.15 * rng.normal(size=(6, 128))  # one look to the embedder: two people by the dates
    first = FaceClusterer(threshold=0.5, min_quality=None).fit(x).labels_
    assert len(set(first.tolist())) == 1
    labels = np.array([0, 0, 0, NOT_CLUSTERED, NOT_CLUSTERED, NOT_CLUSTERED])
    rules = lifespan_constraints(labels, ["2015-01-01"] * 3 + ["2001-01-01"] * 3, born={0: "2010-01-01"})
    out = FaceClusterer(threshold=0.5, min_quality=None).fit(x, cannot_link=rules.cannot_link, initial_labels=labels)
    assert out.labels_[:3].tolist() == [0, 0, 0] and 0 not in out.labels_[3:].tolist()


# --- in a collection ---------------------------------------------------------------------------------

A_BORN = "2010-01-01"


@pytest.fixture
def store(collection_target):  # a SQLite file, and a PostgreSQL schema (tests/conftest.py)
    with CollectionStore.open(collection_target) as s:
        yield s


def dated_library(store: CollectionStore, photos: list[tuple[str, str | None]]) -> dict[str, list[int]]:
    """One face per photo: (who, capture time). Returns {person: face ids}."""
    store.bind_model(model_tag(FakeAnalyzer()))
    rows = [
        NewPhoto(f"p{n:02d}.jpg", ROOT, f"{n:064x}", 1000 + n, n, 96, 96, [fake_face(who, 0, jitter=n)], taken_at=taken)
        for n, (who, taken) in enumerate(photos)
    ]
    faces: dict[str, list[int]] = {}
    for (who, _), photo_id in zip(photos, store.add_photos(rows), strict=True):
        faces.setdefault(who, []).extend(f.id for f in store.faces_of_photo(photo_id))
    return faces


SIBLINGS = [*[("A", f"201{k}-06-01T12:00:00") for k in range(2, 6)], ("D", "2005-03-01T09:00:00"),
            ("D", "2006-08-01T09:00:00"), ("C", None), ("C", "2020-01-01T00:00:00"), ("C", None)]  # fmt: skip


def test_a_look_alike_dated_before_the_persons_birth_leaves_them_and_stays_out(store):
    faces = dated_library(store, SIBLINGS)
    cluster_collection(store)
    a = store.face(faces["A"][0]).cluster
    assert {store.face(f).cluster for f in faces["D"]} == {a}  # the clusterer's mistake: one look
    store.name_cluster(a, "Ada")
    assert store.set_birth_date(a, date(2010, 1, 1)) == A_BORN
    assert store.cluster(a).born == A_BORN

    report = cluster_collection(store)
    assert report.dated_out == 2 and "2 moved out of a person" in str(report)
    assert {f.id for f in store.cluster_faces(a)} == set(faces["A"])
    assert groups(store) == {frozenset(faces[p]) for p in "ADC"}  # D is a person of their own
    cluster_collection(store, full=True)  # from scratch too
    assert {f.id for f in store.cluster_faces(a)} == set(faces["A"])

    # a user who puts a face there anyway wins (a camera clock may be wrong)
    corrections.merge_clusters(store, store.face(faces["D"][0]).cluster, into=a)
    cluster_collection(store, full=True)
    assert {f.id for f in store.cluster_faces(a)} == set(faces["A"]) | set(faces["D"])


def test_birth_dates_are_checked_and_a_refusal_changes_nothing(store):
    faces = dated_library(store, SIBLINGS)
    cluster_collection(store)
    a = store.face(faces["A"][0]).cluster
    for bad in ("2010-02-30", "next year", (date.today() + timedelta(days=1)).isoformat()):
        with pytest.raises(InvalidCorrectionError):
            store.set_birth_date(a, bad)
    assert store.cluster(a).born is None
    with pytest.raises(ClusterNotFoundError):
        store.set_birth_date(999, A_BORN)
    store.set_birth_date(a, A_BORN)
    assert store.set_birth_date(a, None) is None and store.cluster(a).born is None


def test_life_stages_are_one_person_with_templates_of_their_own(store, tmp_path):
    from faceatlas.gallery.gallery import Gallery

    # C stands for Ada as a child (another look to the embedder); A for the adult
    faces = dated_library(store, [("A", "2030-01-01"), ("A", "2031-01-01"), ("C", "2014-01-01"), ("C", "2015-01-01")])
    cluster_collection(store)
    adult, child = store.face(faces["A"][0]).cluster, store.face(faces["C"][0]).cluster
    store.name_cluster(adult, "Ada")
    store.set_birth_date(adult, A_BORN)
    stage = store.link_life_stage(child, adult)
    assert (stage.name, stage.born, stage.person) == ("Ada", A_BORN, adult)
    with pytest.raises(InvalidCorrectionError, match="life stage"):
        store.name_cluster(child, "Bea")
    store.set_birth_date(child, "2010-01-02")  # on a stage: the person's
    assert store.cluster(adult).born == "2010-01-02" == store.cluster(child).born
    corrections.name_cluster(store, adult, "Ada")  # naming the person again: the stage sharing it is no clash

    cluster_collection(store, full=True)  # the stages stay apart, each its own template
    assert groups(store) == {frozenset(faces["A"]), frozenset(faces["C"])}
    with Gallery.open(tmp_path / "g.db", analyzer=FakeAnalyzer()) as gallery:
        store.enroll_named(gallery)
        assert {p.name: p.n_faces for p in gallery.people()} == {"Ada": 4}

    assert store.unlink_life_stage(child) == store.cluster(child)
    assert (store.cluster(child).name, store.cluster(child).person, store.cluster(child).born) == (None, None, None)


def test_a_life_stage_link_is_refused_where_it_cannot_be(store):
    faces = dated_library(store, [("A", None), ("A", None), ("C", None), ("C", None), ("B", None), ("B", None)])
    store.bind_model(model_tag(FakeAnalyzer()))
    both = store.add_photo("group.jpg", ROOT, "f" * 64, 1, 1, 96, 96, [fake_face("A", 0, 50), fake_face("B", 1, 51)])
    cluster_collection(store)
    a, b, c = (store.face(faces[p][0]).cluster for p in "ABC")
    assert {f.cluster for f in store.faces_of_photo(both)} == {a, b}
    store.name_cluster(a, "Ada")
    store.name_cluster(c, "Cy")
    before = store.clusters()
    with pytest.raises(InvalidCorrectionError, match="named 'Cy'"):
        store.link_life_stage(c, a)
    with pytest.raises(InvalidCorrectionError):
        store.link_life_stage(a, a)
    with pytest.raises(CorrectionConflictError, match="once per photo"):
        store.link_life_stage(b, a)
    with pytest.raises(ClusterNotFoundError):
        store.link_life_stage(999, a)
    with pytest.raises(ClusterNotFoundError):
        store.unlink_life_stage(999)
    assert store.clusters() == before


def test_forgetting_a_person_forgets_their_birth_date_and_stages(store):
    faces = dated_library(store, [("A", None), ("A", None), ("C", None), ("C", None)])
    cluster_collection(store)
    adult, child = store.face(faces["A"][0]).cluster, store.face(faces["C"][0]).cluster
    store.name_cluster(adult, "Ada")
    store.set_birth_date(adult, A_BORN)
    store.link_life_stage(child, adult)
    store.forget_name("Ada")
    assert [(c.name, c.born, c.person) for c in store.clusters()] == [(None, None, None)] * 2


def test_linking_a_stage_enrols_it_under_the_persons_name_and_unlinking_takes_it_out(store, tmp_path):
    from faceatlas.gallery.gallery import Gallery

    faces = dated_library(store, [("A", None), ("A", None), ("C", None), ("C", None)])
    cluster_collection(store)
    adult, child = store.face(faces["A"][0]).cluster, store.face(faces["C"][0]).cluster
    with Gallery.open(tmp_path / "g.db", analyzer=FakeAnalyzer()) as gallery:
        corrections.name_cluster(store, adult, "Ada", gallery)
        linked = corrections.link_life_stage(store, child, adult, gallery)
        assert (linked.cluster.person, linked.enrolled, linked.gallery_faces) == (adult, 2, 4)
        unlinked = corrections.unlink_life_stage(store, child, gallery)
        assert unlinked.unenrolled == 2 and unlinked.cluster.person is None
        assert {p.name: p.n_faces for p in gallery.people()} == {"Ada": 2}
        corrections.link_life_stage(store, child, adult, gallery)
        renamed = corrections.name_cluster(store, adult, "Ada L.", gallery)  # the stage goes with the person
        assert renamed.gallery_faces == 4 and {p.name for p in gallery.people()} == {"Ada L."}
        removed = corrections.name_cluster(store, adult, None, gallery)  # and leaves with the name
        assert removed.unenrolled == 4 and gallery.people() == []


def test_the_cli_records_birth_dates_and_life_stages(tmp_path):
    from typer.testing import CliRunner

    from faceatlas.cli import app

    db = tmp_path / "c.db"
    with CollectionStore.open(db) as s:
        faces = dated_library(s, [("A", None), ("A", None), ("C", None), ("C", None)])
        cluster_collection(s)
        adult, child = s.face(faces["A"][0]).cluster, s.face(faces["C"][0]).cluster
        s.name_cluster(adult, "Ada")
    run = CliRunner().invoke
    ok = run(app, ["people", "born", str(adult), "2010-01-01", "--db", str(db)])
    assert ok.exit_code == 0 and "born 2010-01-01" in ok.output
    bad = run(app, ["people", "born", str(adult), "2010-31-01", "--db", str(db)])
    assert bad.exit_code != 0 and "ISO date" in bad.output
    neither = run(app, ["people", "born", str(adult), "--db", str(db)])
    assert neither.exit_code != 0 and "--clear" in neither.output
    staged = run(app, ["people", "stage", str(child), str(adult), "--db", str(db)])
    assert staged.exit_code == 0 and f"life stage of cluster {adult} (Ada)" in staged.output
    listed = run(app, ["people", "clusters", "--db", str(db)])
    assert "Ada  (born 2010-01-01)" in listed.output
    assert f"Ada  (born 2010-01-01, life stage of {adult})" in listed.output
    assert run(app, ["people", "stage", str(child), "--unlink", "--db", str(db)]).exit_code == 0
    cleared = run(app, ["people", "born", str(adult), "--clear", "--db", str(db)])
    assert cleared.exit_code == 0 and "forgotten" in cleared.output
    with CollectionStore.open(db) as s:
        assert [(c.born, c.person) for c in s.clusters()] == [(None, None)] * 2


def test_a_schema_3_file_is_upgraded_and_its_people_have_no_dates_yet(tmp_path):
    import sqlite3

    from faceatlas.collection.store import MIGRATIONS

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    for migrate in MIGRATIONS[:3]:
        migrate(conn)
    conn.execute("PRAGMA user_version = 3")
    conn.execute("INSERT INTO clusters (id, name) VALUES (3, 'Ada')")
    conn.close()
    with CollectionStore.open(path) as store:
        assert (store.cluster(3).born, store.cluster(3).person) == (None, None)
        assert store.set_birth_date(3, A_BORN) == A_BORN
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) == 5
    conn.close()
