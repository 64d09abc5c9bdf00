"""Picasa's face tags: ``.picasa.ini`` per folder, names from ``[Contacts2]`` and ``contacts.xml``.

Format (reverse-engineered, see exiftool's ``config_files/picasa_faces.config`` and Franz
Buchinger's ``.picasa.ini`` notes): a section per photo, ``[IMG_1.jpg]``, with
``faces=rect64(3f845bcb59418507),8e62398ebda8c1a5;rect64(...),...``. ``rect64`` is a 64-bit hex
number, leading zeros dropped, holding four 16-bit values left, top, right, bottom, each /65535 of
the image. The id after the comma names a contact: ``[Contacts2]`` lines ``id=Name;email;`` in the
same file, else ``<contact id=".." name=".."/>`` in the Picasa profile's ``contacts/contacts.xml``
(pass it as ``contacts``); ``ffffffffffffffff`` is an unnamed face.

Coordinates: for JPEG (and other non-RAW) files rect64 is relative to the stored, unrotated
image, like MWG regions (exiftool copies it unchanged into MWG areas with the stored
AppliedToDimensions); Picasa's own ``rotate=rotate(n)`` is a view setting and does not move them.
For RAW files Picasa writes them as if the image were not rotated (exiftool's 2015/05/11 fix);
faceatlas cannot read RAW headers, so those photos are reported and skipped.
"""

from __future__ import annotations

import re
from pathlib import Path

from faceatlas.xmp import _xml
from faceatlas.xmp._xml import XmlRefused
from faceatlas.xmp.regions import Region, _pixels, clean_name, stored_size, stored_to_displayed

UNNAMED = "ffffffffffffffff"
_FACE = re.compile(r"rect64\(([0-9a-fA-F]{1,16})\)\s*,\s*([0-9a-fA-F]*)")


def _ini_sections(text: str) -> dict[str, dict[str, str]]:
    """Sections of an INI file as Picasa writes it (duplicate keys: the last wins)."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
        elif current is not None and "=" in line:
            key, _, value = line.partition("=")
            current[key.strip()] = value.strip()
    return sections


def _contacts_xml(path: Path, problems: list[str]) -> dict[str, str]:
    try:
        packet = _xml.parse_packet_plain(path.read_bytes())
    except OSError as exc:
        problems.append(
            f"{path}: cannot read the Picasa contacts file ({exc.strerror or exc}); names from it are missing"
        )
        return {}
    except XmlRefused as exc:
        problems.append(f"{path}: the Picasa contacts file was ignored because {exc}")
        return {}
    names: dict[str, str] = {}
    for contact in packet.iter("contact"):
        cid, name = contact.get("id"), clean_name(contact.get("name"))
        if cid and name:
            names[cid.lower()] = name
    return names


def _header(photo: Path) -> tuple[tuple[int, int], int]:
    """(stored size, EXIF orientation) from the image header."""
    from PIL import Image

    with Image.open(photo) as im:
        try:
            orientation = int(im.getexif().get(0x0112, 1) or 1)
        except (OSError, ValueError, TypeError, SyntaxError):  # a broken EXIF block: place unrotated
            orientation = 1
        return im.size, orientation if orientation in range(1, 9) else 1


def picasa_regions(folder: Path, contacts: Path | None = None) -> tuple[dict[str, list[Region]], list[str]]:
    """Face regions Picasa stored for the photos of ``folder``: file name -> regions (boxes in
    displayed pixels, ``source="picasa"``, ``origin="picasa"``), and the problems met."""
    folder = Path(folder)
    problems: list[str] = []
    ini = next((folder / n for n in (".picasa.ini", "Picasa.ini", ".Picasa.ini") if (folder / n).is_file()), None)
    if ini is None:
        return {}, problems
    try:
        raw = ini.read_bytes()
    except OSError as exc:
        return {}, [f"{ini}: cannot be read ({exc.strerror or exc})"]
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    sections = _ini_sections(text)
    names: dict[str, str] = {}
    if contacts is not None:
        names.update(_contacts_xml(Path(contacts), problems))
    for cid, value in sections.get("Contacts2", {}).items():
        name = clean_name(value.split(";", 1)[0])
        if name:
            names[cid.lower()] = name  # the folder's own list is the most recent

    found: dict[str, list[Region]] = {}
    for section, keys in sections.items():
        faces = keys.get("faces")
        if section in ("Picasa", "Contacts", "Contacts2", "encoding") or not faces:
            continue
        photo = folder / section
        try:
            stored, orientation = _header(photo)
        except FileNotFoundError:
            problems.append(f"{ini.name}: [{section}] has faces but there is no such photo; skipped")
            continue
        except (OSError, ValueError, SyntaxError) as exc:  # not an image Pillow reads (RAW), or corrupt
            problems.append(f"{ini.name}: [{section}] cannot be opened to place its faces ({exc}); skipped")
            continue
        size = stored_size(stored, orientation)
        regions: list[Region] = []
        for n, match in enumerate(_FACE.finditer(faces), 1):
            bits = int(match.group(1), 16)
            left, top, right, bottom = ((bits >> shift) & 0xFFFF for shift in (48, 32, 16, 0))
            norm = (left / 65535, top / 65535, right / 65535, bottom / 65535)
            cid = match.group(2).lower()
            name = None if cid in ("", UNNAMED) else names.get(cid)
            if cid not in ("", UNNAMED) and name is None:
                problems.append(f"{ini.name}: [{section}] face {n}: contact {cid} has no name; kept unnamed")
            if right <= left or bottom <= top:
                problems.append(f"{ini.name}: [{section}] face {n} has no area; skipped")
                continue
            box = _pixels(stored_to_displayed(norm, orientation), size)
            if box is None:
                problems.append(f"{ini.name}: [{section}] face {n} lies outside the image; skipped")
                continue
            regions.append(Region(box, name, "Face", "picasa", "picasa"))
        if regions:
            found[section] = regions
        elif "rect64" in faces and not _FACE.search(faces):
            problems.append(f"{ini.name}: [{section}] faces= is not rect64(...),id; skipped")
    return found, problems
