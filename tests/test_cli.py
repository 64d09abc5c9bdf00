"""The CLI as a script would use it: JSON out, exit codes, folders with bad files."""

import json
import shutil
import subprocess
import sys

import pytest

from faceatlas.cli import EXIT_BAD_INPUT, EXIT_NO_MATCH, EXIT_OK


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "faceatlas.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd)


def test_detect_json_and_draw(grace_hopper_path, tmp_path):
    out = tmp_path / "drawn.png"
    result = cli("detect", grace_hopper_path, "--draw", out)
    assert result.returncode == EXIT_OK, result.stderr
    record = json.loads(result.stdout)
    assert record["path"] == str(grace_hopper_path) and len(record["faces"]) == 1
    face = record["faces"][0]
    assert len(face["box"]) == 4 and len(face["landmarks"]) == 5 and set(face["pose"]) == {"yaw", "pitch", "roll"}
    assert out.stat().st_size > 1000


def test_folder_job_skips_bad_files_and_finishes(grace_hopper_path, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(grace_hopper_path, folder / "a.jpg")
    (folder / "b.jpg").write_bytes(b"")
    (folder / "c.png").write_bytes(b"garbage")
    shutil.copy(grace_hopper_path, folder / "d.jpg")
    result = cli("embed", folder)
    assert result.returncode == EXIT_BAD_INPUT
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["path"].rsplit("/", 1)[1] for r in records] == ["a.jpg", "b.jpg", "c.png", "d.jpg"]
    assert len(records[0]["faces"][0]["embedding"]) == 128 and len(records[3]["faces"]) == 1
    assert "error" in records[1] and "error" in records[2]
    assert "b.jpg" in result.stderr and "c.png" in result.stderr


def test_verify_exit_codes(grace_hopper_path, tmp_path):
    skimage_data = pytest.importorskip("skimage.data")
    from PIL import Image

    astronaut = tmp_path / "astronaut.png"
    Image.fromarray(skimage_data.astronaut()).save(astronaut)
    same = cli("verify", grace_hopper_path, grace_hopper_path)
    assert same.returncode == EXIT_OK and json.loads(same.stdout)["same_person"] is True
    different = cli("verify", grace_hopper_path, astronaut)
    assert different.returncode == EXIT_NO_MATCH and json.loads(different.stdout)["same_person"] is False
    flat = tmp_path / "flat.png"
    Image.new("RGB", (80, 80), (120, 120, 120)).save(flat)
    missing = cli("verify", grace_hopper_path, flat)
    assert missing.returncode == EXIT_BAD_INPUT and "no face" in missing.stderr


def test_usage_errors_exit_2(grace_hopper_path):
    assert cli("detect").returncode == 2
    assert cli("verify", grace_hopper_path, grace_hopper_path, "--far", "1e-3", "--threshold", "0.9").returncode == 2


def test_demo_runs(tmp_path):
    result = cli("demo", "--out", tmp_path / "demo.png")
    assert result.returncode == EXIT_OK, result.stderr
    assert "same person = True" in result.stdout and (tmp_path / "demo.png").exists()
