"""Each protocol end to end through FaceRunner, with a fake system whose answers are known."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from faceatlas.errors import FaceAtlasError
from faceatlas.eval import protocols
from faceatlas.eval.pairs import Pair, read_cfp_pairs, read_csv_pairs
from faceatlas.eval.source import FaceRunner
from faceatlas.types import Box, Face, Landmarks, Pose, Quality

DIM = 128


class IdentitySource:
    """Reads the identity from pixel (0, 0) red and a noise seed from green; blue 255 = no face.

    Each identity has its own orthonormal direction; an image's embedding is that direction plus
    noise, so same-identity similarities are high and different ones near 0.
    """

    key = "identity-fake"

    def __init__(self, noise: float = 0.3) -> None:
        self.noise = noise
        self.directions = np.linalg.qr(np.random.default_rng(0).normal(size=(DIM, DIM)))[0]

    def analyze_images(self, images, embed):
        out = []
        for image in images:
            identity, seed, no_face = int(image[0, 0, 0]), int(image[0, 0, 1]), image[0, 0, 2] == 255
            if no_face:
                out.append([])
                continue
            vector = self.directions[identity % DIM] + self.noise * np.random.default_rng(seed).normal(
                size=DIM
            ) / np.sqrt(DIM)
            h, w = image.shape[:2]
            out.append(
                [
                    Face(
                        box=Box(4.0, 4.0, w - 4.0, h - 4.0),
                        score=0.9,
                        landmarks=Landmarks(np.full((5, 2), 10.0)),
                        pose=Pose(0.0, 0.0, 0.0),
                        quality=Quality(seed / 255, seed / 255, 1.0, 1.0, 1.0, 0.9),
                        embedding=(vector / np.linalg.norm(vector)).astype(np.float32) if embed else None,
                    )
                ]
            )
        return out


def make_image(path, identity: int, seed: int, face: bool = True):
    pixels = np.full((32, 32, 3), 128, dtype=np.uint8)
    pixels[0, 0] = (identity, seed, 0 if face else 255)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)  # PNG: lossless, so the marker survives
    return path


@pytest.fixture
def identity_folders(tmp_path):
    root = tmp_path / "people"
    for person in range(12):
        for k in range(1 + person % 4):
            make_image(root / f"person{person:02d}" / f"{k}.png", person, 17 * person + k)
    return root


def test_pairs_protocol_writes_report_and_counts_failures(tmp_path):
    rows = ["path_a,path_b,same,fold,group"]
    for i in range(20):
        a = make_image(tmp_path / f"a{i}.png", i, i)
        b = make_image(tmp_path / f"b{i}.png", i, 100 + i, face=i != 3)  # one image without a face
        c = make_image(tmp_path / f"c{i}.png", i + 50, 200 + i)
        group = "g1" if i % 2 else "g2"
        rows += [f"{a.name},{b.name},1,{i % 10},{group}", f"{a.name},{c.name},0,{i % 10},{group}"]
    (tmp_path / "pairs.csv").write_text("\n".join(rows))
    pairs = read_csv_pairs(tmp_path / "pairs.csv")
    out = tmp_path / "out"
    written, _notes = protocols.pairs(pairs, FaceRunner(IdentitySource(), cache=False), out, "fake")
    result = json.loads((out / "result.json").read_text())
    verification = result["verification"]
    assert verification["n_failed"] == 1 and verification["n_pairs"] == 40
    # every impostor is far below every genuine pair except the failed one, which counts as "different"
    assert verification["accuracy_mean"] == pytest.approx(39 / 40)
    assert "fairness" in result
    assert (out / "verification.png").stat().st_size > 1000 and out / "report.txt" in written


def test_quality_protocol(tmp_path):
    pairs = []
    for i in range(30):
        a = make_image(tmp_path / f"a{i}.png", i, i)
        b = make_image(tmp_path / f"b{i}.png", i, 100 + i)
        c = make_image(tmp_path / f"c{i}.png", i + 60, 200 + i)
        pairs += [Pair(a, b, True, i % 10), Pair(a, c, False, i % 10)]
    out = tmp_path / "out"
    protocols.quality(pairs, FaceRunner(IdentitySource(noise=1.0), cache=False), out, "fake")
    result = json.loads((out / "result.json").read_text())
    assert "quality" in result["edc"]["curves"] and (out / "edc.png").exists()


def test_clustering_protocol(tmp_path, identity_folders):
    from faceatlas.eval.clustering import read_identity_folders

    items = read_identity_folders(identity_folders)
    out = tmp_path / "out"
    runner = FaceRunner(IdentitySource(noise=0.1), cache=False)
    protocols.clustering(items, runner, out, "fake", threshold=0.5, method="reference")
    result = json.loads((out / "result.json").read_text())["clustering"]
    assert result["bcubed_f1"] == pytest.approx(1.0) and result["n_clusters"] == 12
    assert (out / "mixed_clusters.png").exists()
    # the default clusterer gates faces below quality 0.3 (here: seed < 77): they join a cluster
    # only where they clearly belong, else stay unassigned (scored as singletons) -- never wrongly
    protocols.clustering(items, runner, tmp_path / "default", "fake", threshold=0.5)
    result = json.loads((tmp_path / "default" / "result.json").read_text())["clustering"]
    assert result["bcubed_precision"] == pytest.approx(1.0) and 0 < result["n_unclustered"] < len(items)


def test_identification_protocol(tmp_path, identity_folders):
    from faceatlas.eval.clustering import read_identity_folders

    items = read_identity_folders(identity_folders)
    out = tmp_path / "out"
    protocols.identification(items, FaceRunner(IdentitySource(noise=0.1), cache=False), out, "fake")
    result = json.loads((out / "result.json").read_text())["identification"]
    assert result["rank_rates"]["1"] == pytest.approx(1.0)
    assert (out / "det_cmc.png").exists()


def test_identification_protocol_measures_the_gallery_search(tmp_path, identity_folders, monkeypatch):
    """`eval identification` scores probes with Gallery.scores (what Gallery.identify ranks), not a copy."""
    from faceatlas.eval.clustering import read_identity_folders
    from faceatlas.gallery.gallery import Gallery

    calls = []
    real = Gallery.scores

    def spy(self, probes):
        calls.append(len(probes))
        return real(self, probes)

    monkeypatch.setattr(Gallery, "scores", spy)
    items = read_identity_folders(identity_folders)
    protocols.identification(items, FaceRunner(IdentitySource(noise=0.3), cache=False), tmp_path, "fake")
    result = json.loads((tmp_path / "result.json").read_text())["identification"]
    assert sum(calls) >= result["n_probes"] - result["n_no_face_mated"] - result["n_no_face_nonmated"] > 0


def test_detection_protocol(tmp_path):
    from faceatlas.eval.detection import DetectionSample

    samples = []
    for i in range(4):
        path = make_image(tmp_path / f"d{i}.png", 1, i, face=i != 0)
        samples.append(DetectionSample(path, np.array([[4.0, 4.0, 28.0, 28.0]]), {"all": np.array([True])}))
    out = tmp_path / "out"
    protocols.detection(samples, FaceRunner(IdentitySource(), cache=False), out, "fake")
    result = json.loads((out / "result.json").read_text())["detection"]
    setting = result["settings"]["all"]
    assert setting["recall"] == pytest.approx(0.75) and setting["ap"] == pytest.approx(0.75)


def test_cfp_layout(tmp_path):
    proto = tmp_path / "Protocol"
    for kind in ("F", "P"):
        (proto).mkdir(parents=True, exist_ok=True)
        (proto / f"Pair_list_{kind}.txt").write_text(
            "\n".join(f"{k} ../Data/Images/{k:03d}/{kind}.jpg" for k in (1, 2, 3))
        )
    for split in ("01", "02"):
        folder = proto / "Split" / "FP" / split
        folder.mkdir(parents=True)
        (folder / "same.txt").write_text("1,1\n2,2\n")
        (folder / "diff.txt").write_text("1,2\n3,1\n")
    pairs = read_cfp_pairs(tmp_path, "FP")
    assert len(pairs) == 8 and [p.fold for p in pairs] == [0] * 4 + [1] * 4
    assert pairs[0].a == (tmp_path / "Data/Images/001/F.jpg").resolve()
    assert pairs[0].b == (tmp_path / "Data/Images/001/P.jpg").resolve() and pairs[0].same
    assert pairs[3].a.name == "F.jpg" and pairs[3].b.parent.name == "001" and not pairs[3].same
    (proto / "Split" / "FP" / "02" / "diff.txt").write_text("1,9\n")
    with pytest.raises(FaceAtlasError, match="diff.txt: line 1"):
        read_cfp_pairs(tmp_path, "FP")


def test_csv_pairs_header_by_name_and_bad_flag(tmp_path):
    (tmp_path / "p.csv").write_text("group,same,path_b,path_a\nx,yes,b.jpg,a.jpg\n")
    (pair,) = read_csv_pairs(tmp_path / "p.csv")
    assert pair.a.name == "a.jpg" and pair.b.name == "b.jpg" and pair.same and pair.group == "x"
    (tmp_path / "bad.csv").write_text("a.jpg,b.jpg,maybe\n")
    with pytest.raises(FaceAtlasError, match="row 1"):
        read_csv_pairs(tmp_path / "bad.csv")


def test_group_labels_give_a_fairness_report(tmp_path, identity_folders):
    from faceatlas.eval.clustering import read_identity_csv

    rows = ["path,label,group"]
    for folder in sorted(identity_folders.iterdir()):
        for image in sorted(folder.iterdir()):
            rows.append(
                f"{image.relative_to(tmp_path)},{folder.name},{'north' if folder.name < 'person06' else 'south'}"
            )
    (tmp_path / "labels.csv").write_text("\n".join(rows))
    items = read_identity_csv(tmp_path / "labels.csv")
    for protocol, key in ((protocols.clustering, "bcubed_f1"), (protocols.identification, "rank_rates.1")):
        out = tmp_path / protocol.__name__
        # the reference clusterer: the fake faces' qualities would put some below the default's gate
        kwargs = {"threshold": 0.5, "method": "reference"} if protocol is protocols.clustering else {}
        protocol(items, FaceRunner(IdentitySource(noise=0.1), cache=False), out, "fake", **kwargs)
        fairness = json.loads((out / "result.json").read_text())["fairness"]
        assert set(fairness["groups"]) == {"north", "south"}
        assert fairness["groups"]["north"][key] == pytest.approx(1.0)
        assert key in fairness["spread"] and "north" in (out / "report.txt").read_text()


def test_landmarks_protocol_with_mtfl_groups(tmp_path):
    from faceatlas.eval.landmarks import read_mtfl

    lines = []
    for i in range(6):
        make_image(tmp_path / "lfw" / f"{i}.png", 1, i, face=i != 5)  # the last image: no face found
        # IdentitySource puts every landmark at (10, 10); the truth is offset by i px on the eyes
        xs = [10 + i, 20 + i, 10, 10, 10]
        ys = [10, 10, 10, 10, 10]
        gender = 1 + i % 2
        lines.append(f"lfw\\{i}.png " + " ".join(map(str, xs + ys)) + f" {gender} 1 2 3")
    (tmp_path / "mtfl.txt").write_text("\n".join(lines))
    samples = read_mtfl(tmp_path / "mtfl.txt", tmp_path)
    out = tmp_path / "out"
    protocols.landmarks(samples, FaceRunner(IdentitySource(), cache=False), out, "fake", group_by="gender")
    result = json.loads((out / "result.json").read_text())
    assert result["landmarks"]["faces"] == 6 and result["landmarks"]["missed"] == 1
    assert set(result["fairness"]["groups"]) == {"gender=1", "gender=2"}

    # brute force: per face, the mean distance of (10,10) to the five truth points over the eye distance (10)
    def nme(i):
        truth = [(10 + i, 10), (20 + i, 10), (10, 10), (10, 10), (10, 10)]
        return sum(((x - 10) ** 2 + (y - 10) ** 2) ** 0.5 for x, y in truth) / 5 / 10

    assert result["fairness"]["groups"]["gender=1"]["nme_mean"] == pytest.approx(np.mean([nme(0), nme(2), nme(4)]))
    with pytest.raises(FaceAtlasError, match="attribute"):
        protocols.landmarks(samples, FaceRunner(IdentitySource(), cache=False), out, "fake", group_by="hat")


def test_detection_groups_report_a_spread(tmp_path):
    from faceatlas.eval.detection import read_json_annotations

    entries = []
    for i in range(4):
        path = make_image(tmp_path / f"g{i}.png", 1, i, face=i % 2 == 0)  # odd images: nothing found
        entries.append(
            {"image": path.name, "group": "even" if i % 2 == 0 else "odd", "faces": [{"box": [4, 4, 28, 28]}]}
        )
    (tmp_path / "gt.json").write_text(json.dumps(entries))
    out = tmp_path / "out"
    _written, notes = protocols.detection(
        read_json_annotations(tmp_path / "gt.json"), FaceRunner(IdentitySource(), cache=False), out, "fake"
    )
    settings = json.loads((out / "result.json").read_text())["detection"]["settings"]
    assert settings["group=even"]["recall"] == pytest.approx(1.0) and settings["group=odd"]["recall"] == 0.0
    assert any("recall spread between groups: 100.00 points" in n for n in notes)


def test_pose_protocol_on_aflw_files(tmp_path):
    from scipy.io import savemat

    from faceatlas.eval.landmarks import read_aflw2000

    # IdentitySource reports yaw = pitch = roll = 0, so each face's error is its true angle
    true_yaws = [5.0, 40.0, -70.0, 120.0]  # the last is beyond ±99°: dropped by the protocol
    for k, yaw in enumerate(true_yaws):
        make_image(tmp_path / f"image{k:05d}.jpg", 1, k)
        points = np.zeros((3, 68))
        points[0] = np.linspace(5, 27, 68)  # x from 5 to 27 px
        points[1] = np.tile(np.linspace(5, 27, 4), 17)  # y from 5 to 27 px: a box like the detection's
        pose = np.radians([0.0, yaw, 0.0] + [0.0] * 4)
        savemat(tmp_path / f"image{k:05d}.mat", {"Pose_Para": pose[None, :], "pt3d_68": points})
    samples = read_aflw2000(tmp_path)
    assert len(samples) == 3 and samples.dropped == 1
    out = tmp_path / "out"
    protocols.pose(samples, FaceRunner(IdentitySource(), cache=False), out, "fake")
    result = json.loads((out / "result.json").read_text())["pose"]
    assert result["mae_yaw"] == pytest.approx((5 + 40 + 70) / 3)
    assert result["mae_pitch"] == pytest.approx(0.0, abs=1e-9) and (out / "pose_errors.png").exists()
