"""`faceatlas eval` end to end on ../shared/data (real models), and its usage errors."""

from __future__ import annotations

import json

import pytest
from conftest import shared_data  # tests/ is on sys.path under pytest
from typer.testing import CliRunner

from faceatlas.cli import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, ["eval", *map(str, args)])


def test_lfw_pairs_file_needs_images(tmp_path):
    (tmp_path / "pairs.txt").write_text("A\t1\t2\n")
    result = invoke("pairs", tmp_path / "pairs.txt", "--out", tmp_path / "out")
    assert result.exit_code == 2 and "--images" in result.output


def test_malformed_annotations_are_bad_input(tmp_path):
    (tmp_path / "gt.txt").write_text("0--x/a.jpg\nnot-a-number\n")
    result = invoke("detection", tmp_path / "gt.txt", "--images", tmp_path, "--out", tmp_path / "out")
    assert result.exit_code == 3 and "line 2" in result.output


@pytest.mark.slow
def test_detection_and_landmarks_on_dlib_faces(tmp_path):
    faces = shared_data("dlib_faces", "examples", "faces")
    xml = faces / "testing_with_face_landmarks.xml"
    cache = tmp_path / "cache.sqlite"
    result = invoke("landmarks", xml, "--out", tmp_path / "lm", "--cache-file", cache)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "lm" / "result.json").read_text())["landmarks"]
    assert report["faces"] == 25 and report["missed"] <= 2 and report["nme_mean"] < 0.1
    # the same boxes as a JSON detection set; detection runs the detector below its operating
    # point (the whole precision-recall curve), so it computes its own faces, then reuses them
    from faceatlas.eval.landmarks import read_dlib_xml

    entries = {}
    for sample in read_dlib_xml(xml):
        entries.setdefault(str(sample.image), []).append({"box": [float(v) for v in sample.box]})
    (tmp_path / "boxes.json").write_text(json.dumps([{"image": k, "faces": v} for k, v in entries.items()]))
    for computed in (5, 0):
        result = invoke("detection", tmp_path / "boxes.json", "--out", tmp_path / "det", "--cache-file", cache)
        assert result.exit_code == 0, result.output
        document = json.loads((tmp_path / "det" / "result.json").read_text())
        assert document["run"]["from_cache"] == 5 - computed and document["run"]["computed"] == computed
    assert document["detection"]["settings"]["all"]["recall"] > 0.8
    assert (tmp_path / "det" / "precision_recall.png").exists()


@pytest.mark.slow
def test_clustering_and_identification_on_lfw_identities(tmp_path):
    images = shared_data("lfw_devtest", "images")
    people = sorted(p for p in images.iterdir() if len(list(p.iterdir())) >= 3)[:6]
    rows = ["path,label,group"] + [
        f"{image},{person.name},{'a' if k % 2 else 'b'}"
        for k, person in enumerate(people)
        for image in sorted(person.iterdir())[:4]
    ]
    (tmp_path / "people.csv").write_text("\n".join(rows))
    cache = tmp_path / "cache.sqlite"
    result = invoke("clustering", tmp_path / "people.csv", "--out", tmp_path / "cl", "--cache-file", cache)
    assert result.exit_code == 0, result.output
    clustering = json.loads((tmp_path / "cl" / "result.json").read_text())
    assert clustering["clustering"]["bcubed_f1"] > 0.8 and set(clustering["fairness"]["groups"]) == {"a", "b"}
    result = invoke("identification", tmp_path / "people.csv", "--out", tmp_path / "id", "--cache-file", cache)
    assert result.exit_code == 0, result.output
    identification = json.loads((tmp_path / "id" / "result.json").read_text())
    assert identification["run"]["computed"] == 0  # every face came from the clustering run's cache
    assert identification["identification"]["rank_rates"]["1"] > 0.8
    assert (tmp_path / "id" / "det_cmc.png").exists()
    result = invoke(
        "labelling", tmp_path / "people.csv", "--out", tmp_path / "lab", "--cache-file", cache, "--budget", 60
    )
    assert result.exit_code == 0, result.output
    labelling = json.loads((tmp_path / "lab" / "result.json").read_text())["labelling"]
    assert {(r["strategy"], r["start"]) for r in labelling["runs"]} >= {
        ("queue", "faceatlas"),
        ("name every cluster", "dbscan"),
    }
    assert (tmp_path / "lab" / "labelling_curves.png").exists() and "answers than naming every cluster to F 0.99" in (
        tmp_path / "lab" / "report.txt"
    ).read_text()
