"""Face regions in photo metadata: read what digiKam, Lightroom, Picasa, Apple Photos, Immich and
Microsoft Photo Gallery stored (MWG and MP regions in embedded XMP and ``.xmp`` sidecars, Picasa's
``.picasa.ini``, Google Takeout's JSON), and write faceatlas' faces back as MWG regions.

A pure library: it imports only ``faceatlas.errors`` and the standard library (Pillow lazily, to
read an image header). Coordinates and precedence are documented in :mod:`faceatlas.xmp.regions`
and docs/XMP.md.

>>> from faceatlas.xmp import read_regions
>>> found = read_regions(Path("IMG_1.jpg"))
>>> [(r.name, r.box) for r in found.regions if r.kind == "Face"]
"""

from faceatlas.xmp.errors import MalformedXmpError, SidecarNotWritableError, UnsupportedXmpTargetError, XmpError
from faceatlas.xmp.picasa import picasa_regions
from faceatlas.xmp.regions import Region, RegionsRead, read_regions
from faceatlas.xmp.takeout import takeout_people
from faceatlas.xmp.write import remove_names, sidecar_path, write_embedded, write_sidecar

__all__ = [
    "MalformedXmpError",
    "Region",
    "RegionsRead",
    "SidecarNotWritableError",
    "UnsupportedXmpTargetError",
    "XmpError",
    "picasa_regions",
    "read_regions",
    "remove_names",
    "sidecar_path",
    "takeout_people",
    "write_embedded",
    "write_sidecar",
]
