"""Names from other tools' own files: Picasa's .picasa.ini + contacts.xml, Google Takeout's JSON
(faceatlas.xmp.picasa, faceatlas.xmp.takeout); and the library's import discipline."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
from PIL import Image

from faceatlas.xmp import picasa_regions, takeout_people

SRC = Path(__file__).resolve().parents[1] / "src" / "faceatlas" / "xmp"


def _rect64(left: float, top: float, right: float, bottom: float) -> str:
    value = 0
    for v in (left, top, right, bottom):
        value = (value << 16) | round(v * 65535)
    return f"{value:x}"  # Picasa drops leading zeros


def _jpeg(path: Path, size=(120, 80), orientation: int = 1) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(np.full((size[1], size[0], 3), 90, np.uint8)).save(path, exif=exif.tobytes())


def test_picasa_ini_with_contacts2_and_contacts_xml(tmp_path) -> None:
    _jpeg(tmp_path / "IMG_1.jpg")
    _jpeg(tmp_path / "IMG_2.jpg", orientation=6)  # stored 120x80, displayed 80x120
    (tmp_path / "contacts.xml").write_text(
        '<contacts>\n<contact id="aaaa000000000001" name="Grace Hopper" modified_time="1" local_contact="1"/>\n'
        '<contact id="aaaa000000000002" name="Old Name" />\n</contacts>\n',
        encoding="utf-8",
    )
    tiny = _rect64(0.0, 0.0, 0.25, 0.5)  # starts with zeros: a short hex string
    assert len(tiny) < 16
    (tmp_path / ".picasa.ini").write_text(
        "[Picasa]\nname=Holiday\n"
        "[Contacts2]\naaaa000000000002=Ada Lovelace;;\nbbbb000000000003=Zoe\u0308 ;zoe@example.com;\n"
        f"[IMG_1.jpg]\nfaces=rect64({_rect64(0.25, 0.125, 0.5, 0.625)}),aaaa000000000001;"
        f"rect64({tiny}),ffffffffffffffff;rect64({_rect64(0.5, 0.5, 0.75, 0.75)}),cccc000000000009\n"
        f"[IMG_2.jpg]\nrotate=rotate(1)\nfaces=rect64({_rect64(0.5, 0.25, 0.75, 0.5)}),aaaa000000000002;"
        f"rect64({_rect64(0.1, 0.1, 0.1, 0.2)}),bbbb000000000003\n"
        f"[gone.jpg]\nfaces=rect64({_rect64(0.1, 0.1, 0.2, 0.2)}),aaaa000000000001\n",
        encoding="utf-8",
    )
    found, problems = picasa_regions(tmp_path, contacts=tmp_path / "contacts.xml")
    assert sorted(found) == ["IMG_1.jpg", "IMG_2.jpg"]
    one = found["IMG_1.jpg"]
    assert [r.name for r in one] == ["Grace Hopper", None, None]
    assert np.allclose(one[0].box, (30, 10, 60, 50), atol=0.01)
    assert np.allclose(one[1].box, (0, 0, 30, 40), atol=0.01)
    assert {(r.source, r.origin, r.kind) for r in one} == {("picasa", "picasa", "Face")}
    two = found["IMG_2.jpg"]
    # [Contacts2] of the folder wins over contacts.xml; stored box x 60..90, y 20..40 -> rotated 90 CW
    assert [r.name for r in two] == ["Ada Lovelace"]
    assert np.allclose(two[0].box, (80 - 40, 60, 80 - 20, 90), atol=0.01)
    text = " ".join(problems)
    assert "cccc000000000009" in text and "gone.jpg" in text and "no area" in text


def test_picasa_without_ini_or_with_junk(tmp_path) -> None:
    assert picasa_regions(tmp_path) == ({}, [])
    _jpeg(tmp_path / "a.jpg")
    (tmp_path / ".picasa.ini").write_bytes(b"[a.jpg]\nfaces=rect64(zz),12\n\xff\xfe garbage")
    found, problems = picasa_regions(tmp_path, contacts=tmp_path / "missing.xml")
    assert found == {} and any("missing.xml" in p for p in problems)
    (tmp_path / "bad.xml").write_text('<!DOCTYPE c [<!ENTITY x "y">]><contacts/>')
    _found, problems = picasa_regions(tmp_path, contacts=tmp_path / "bad.xml")
    assert any("DOCTYPE" in p for p in problems)


def _meta(title: str, *names: str) -> str:
    return json.dumps(
        {"title": title, "photoTakenTime": {"timestamp": "1600000000"}, "people": [{"name": n} for n in names]}
    )


def test_takeout_json_in_every_naming_style(tmp_path) -> None:
    album = tmp_path / "Takeout" / "Google Photos" / "Photos from 2020"
    album.mkdir(parents=True)
    long_name = "PXL_20200101_123456789.PORTRAIT.ORIGINAL.jpg"  # 45 characters: every JSON name gets cut
    files = {
        "IMG_1.jpg": ("IMG_1.jpg.json", ["Ann"]),
        "IMG_2.jpg": ("IMG_2.jpg.supplemental-metadata.json", ["Bob", " Bob ", ""]),
        "IMG_3(1).jpg": ("IMG_3.jpg.supplemental-metadata(1).json", ["Carol"]),
        "IMG_4(2).jpg": ("IMG_4.jpg(2).json", ["Dan"]),
        long_name: (long_name[:46] + ".json", ["Eve"]),
        "IMG_6.jpg": ("IMG_6.jpg.supplemen.json", ["Zoe\u0308"]),
        "IMG_7.jpg": ("IMG_7.jpg.json", []),
    }
    for photo, (json_name, names) in files.items():
        (album / photo).write_bytes(b"jpeg")
        (album / json_name).write_text(_meta(photo.replace("(1)", "").replace("(2)", ""), *names))
    (album / "IMG_1-edited.jpg").write_bytes(b"jpeg")
    (album / "metadata.json").write_text(json.dumps({"title": "Photos from 2020", "date": {}}))  # album info
    (album / "orphan.jpg.json").write_text(_meta("orphan.jpg", "Nobody"))
    (album / "broken.json").write_text("{not json")
    people, problems = takeout_people(tmp_path / "Takeout")
    base = "Google Photos/Photos from 2020/"
    assert people == {
        base + "IMG_1.jpg": ["Ann"],
        base + "IMG_1-edited.jpg": ["Ann"],
        base + "IMG_2.jpg": ["Bob"],
        base + "IMG_3(1).jpg": ["Carol"],
        base + "IMG_4(2).jpg": ["Dan"],
        base + long_name: ["Eve"],
        base + "IMG_6.jpg": ["Zo\u00eb"],
    }
    assert any("orphan.jpg.json" in p for p in problems) and any("broken.json" in p for p in problems)
    assert len(problems) == 2


def test_a_folder_of_another_layout_is_reported_not_raised(tmp_path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"jpeg")
    people, problems = takeout_people(tmp_path)
    assert people == {} and len(problems) == 1 and "no Google Takeout photo metadata" in problems[0]
    (tmp_path / "a.jpg.json").write_text(json.dumps([{"name": "list, not an object"}]))
    (tmp_path / "b.json").write_text(json.dumps({"faces": [{"person": "x"}]}))
    people, problems = takeout_people(tmp_path)
    assert people == {} and "2 JSON file(s) of another shape" in problems[-1]
    assert takeout_people(tmp_path / "nowhere")[1]


def test_the_library_imports_nothing_above_errors_and_types() -> None:
    allowed = {"faceatlas.errors", "faceatlas.types"}
    for path in sorted(SRC.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            modules = []
            if isinstance(node, ast.ImportFrom) and node.module:
                modules = [node.module]
            elif isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            for module in modules:
                if module.startswith("faceatlas") and not module.startswith("faceatlas.xmp"):
                    assert module in allowed, f"{path.name} imports {module}"
