"""Safe XMP parsing, RDF struct reading and a prefix-preserving serializer.

Safety: packets over ``MAX_PACKET_BYTES`` and any packet with a DOCTYPE or ENTITY declaration are
refused before the parser sees them (XMP never needs either, and this rules out entity expansion
and external entities); stdlib ``expat`` resolves no external entities on its own.

ElementTree forgets namespace prefixes, so :func:`parse_packet` records them and
:func:`serialize` writes them back: a sidecar we rewrite still reads ``dc:subject``, not ``ns0:subject``.
"""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

MAX_PACKET_BYTES = 4 * 1024 * 1024

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
XMLNS = "http://www.w3.org/XML/1998/namespace"
X = "adobe:ns:meta/"
MWG_RS = "http://www.metadataworkinggroup.com/schemas/regions/"
ST_AREA = "http://ns.adobe.com/xmp/sType/Area#"
ST_DIM = "http://ns.adobe.com/xap/1.0/sType/Dimensions#"
MP = "http://ns.microsoft.com/photo/1.2/"
MPRI = "http://ns.microsoft.com/photo/1.2/t/RegionInfo#"
MPREG = "http://ns.microsoft.com/photo/1.2/t/Region#"

PREFERRED_PREFIXES = {
    RDF: "rdf",
    X: "x",
    MWG_RS: "mwg-rs",
    ST_AREA: "stArea",
    ST_DIM: "stDim",
    MP: "MP",
    MPRI: "MPRI",
    MPREG: "MPReg",
}

_RDF_ATTRS = {f"{{{RDF}}}{n}" for n in ("about", "parseType", "resource", "nodeID", "ID", "datatype")}
_ROOT_START = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?(?:xmpmeta|xapmeta|RDF)[\s>/]")


class XmlRefused(Exception):
    """Internal: the packet is not XML we accept; callers turn it into a problem or a typed error."""


@dataclass
class Packet:
    root: ET.Element
    prefixes: dict[str, str] = field(default_factory=dict)  # uri -> prefix, as the file had them


def q(ns: str, local: str) -> str:
    return f"{{{ns}}}{local}"


def extract_packet(raw: bytes) -> bytes:
    """The XML part of an XMP packet (drops xpacket wrappers, padding and trailing bytes)."""
    match = _ROOT_START.search(raw)
    if not match:
        raise XmlRefused("no x:xmpmeta or rdf:RDF element")
    start = match.start()
    tag = raw[start + 1 : match.end() - 1]
    close = b"</" + tag + b">"
    end = raw.rfind(close)
    if end < 0:
        raise XmlRefused(f"no closing </{tag.decode('ascii', 'replace')}>")
    return raw[start : end + len(close)]


def parse_packet(raw: bytes) -> Packet:
    """Parse one XMP packet safely; raises :class:`XmlRefused` with the reason."""
    if len(raw) > MAX_PACKET_BYTES:
        raise XmlRefused(f"it is {len(raw)} bytes, more than the {MAX_PACKET_BYTES} allowed")
    lowered = raw.lower()
    if b"<!doctype" in lowered or b"<!entity" in lowered:
        raise XmlRefused("it declares a DOCTYPE or ENTITY, which XMP never needs")
    body = extract_packet(raw)
    prefixes: dict[str, str] = {}
    try:
        events = ET.iterparse(io.BytesIO(body), events=("start-ns", "start"))
        root: ET.Element | None = None
        for event, item in events:
            if event == "start-ns":
                prefix, uri = item
                if prefix and uri not in prefixes:
                    prefixes[uri] = prefix
            elif root is None:
                root = item
        # iterparse keeps building the tree; the root is complete once the loop ends
    except ET.ParseError as exc:
        raise XmlRefused(f"it is not well-formed XML ({exc})") from None
    if root is None:
        raise XmlRefused("it is empty")
    return Packet(root, prefixes)


def find_rdf(root: ET.Element) -> ET.Element | None:
    return root if root.tag == q(RDF, "RDF") else root.find(f".//{{{RDF}}}RDF")


# -- reading RDF structs -------------------------------------------------------------------------


def struct_of(node: ET.Element) -> dict[str, Any]:
    """The fields of an RDF struct node (rdf:Description, a parseType=Resource property, an rdf:li)."""
    out: dict[str, Any] = {}
    for key, value in node.attrib.items():
        if key not in _RDF_ATTRS and not key.startswith(f"{{{XMLNS}}}"):
            out[key] = value
    for child in node:
        if child.tag == q(RDF, "Description"):
            out.update(struct_of(child))
        elif isinstance(child.tag, str):
            out[child.tag] = value_of(child)
    return out


def value_of(prop: ET.Element) -> Any:
    """A property's value: a string, a list (Bag/Seq/Alt) or a dict (struct)."""
    if prop.get(q(RDF, "parseType")) == "Resource":
        return struct_of(prop)
    kids = [k for k in prop if isinstance(k.tag, str)]
    if not kids:
        if any(k not in _RDF_ATTRS and not k.startswith(f"{{{XMLNS}}}") for k in prop.attrib):
            return struct_of(prop)
        return (prop.text or "").strip()
    first = kids[0]
    if first.tag in (q(RDF, "Bag"), q(RDF, "Seq"), q(RDF, "Alt")):
        return [value_of(li) for li in first if li.tag == q(RDF, "li")]
    return struct_of(prop)


def description_properties(root: ET.Element) -> list[tuple[ET.Element, ET.Element]]:
    """(rdf:Description, property element) for every top-level property in the packet."""
    rdf = find_rdf(root)
    found: list[tuple[ET.Element, ET.Element]] = []
    if rdf is None:
        return found
    for desc in rdf.findall(q(RDF, "Description")):
        for prop in desc:
            if isinstance(prop.tag, str):
                found.append((desc, prop))
    return found


def description_attr(root: ET.Element, tag: str) -> tuple[ET.Element, str] | None:
    """A top-level simple property written as an attribute of rdf:Description."""
    rdf = find_rdf(root)
    if rdf is None:
        return None
    for desc in rdf.findall(q(RDF, "Description")):
        if tag in desc.attrib:
            return desc, desc.attrib[tag]
    return None


# -- writing -------------------------------------------------------------------------------------


def serialize(packet: Packet) -> bytes:
    """The packet as UTF-8 XML, every namespace declared once on the root, prefixes as they were."""
    uris: list[str] = []

    def collect(name: str) -> None:
        if name.startswith("{"):
            uri = name[1:].partition("}")[0]
            if uri != XMLNS and uri not in uris:
                uris.append(uri)

    for elem in packet.root.iter():
        if isinstance(elem.tag, str):
            collect(elem.tag)
            for key in elem.attrib:
                collect(key)
    prefix_of: dict[str, str] = {}
    taken: set[str] = set()
    for uri in uris:
        prefix = packet.prefixes.get(uri) or PREFERRED_PREFIXES.get(uri) or "ns"
        base, n = prefix, 0
        while prefix in taken:
            n += 1
            prefix = f"{base}{n}"
        taken.add(prefix)
        prefix_of[uri] = prefix

    def name(qname: str) -> str:
        if not qname.startswith("{"):
            return qname
        uri, _, local = qname[1:].partition("}")
        return f"xml:{local}" if uri == XMLNS else f"{prefix_of[uri]}:{local}"

    out = io.StringIO()

    def write(elem: ET.Element, depth: int, declare: bool) -> None:
        pad = " " * depth
        attrs = "".join(f" {name(k)}={_quote(v)}" for k, v in elem.attrib.items())
        if declare:
            attrs = "".join(f"\n{pad}  xmlns:{prefix_of[u]}={_quote(u)}" for u in uris) + attrs
        out.write(f"{pad}<{name(elem.tag)}{attrs}")
        kids = [k for k in elem if isinstance(k.tag, str)]
        text = (elem.text or "").strip() if kids else (elem.text or "")
        if not kids and not text:
            out.write("/>\n")
            return
        out.write(">")
        if kids:
            out.write("\n")
            for kid in kids:
                write(kid, depth + 1, False)
            out.write(f"{pad}</{name(elem.tag)}>\n")
        else:
            out.write(f"{_escape(text)}</{name(elem.tag)}>\n")

    write(packet.root, 0, True)
    return out.getvalue().encode("utf-8")


def wrap_packet(xml: bytes, padding: int = 0) -> bytes:
    """An xpacket-wrapped packet, as Adobe's toolkit and exiftool write them."""
    head = b"<?xpacket begin='\xef\xbb\xbf' id='W5M0MpCehiHzreSzNTczkc9d'?>\n"
    pad = (b" " * 99 + b"\n") * (padding // 100)
    return head + xml + pad + b"<?xpacket end='w'?>"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _quote(text: str) -> str:
    return '"' + _escape(text).replace('"', "&quot;").replace("\n", "&#10;").replace("\t", "&#9;") + '"'


def new_packet() -> Packet:
    root = ET.Element(q(X, "xmpmeta"), {q(X, "xmptk"): "faceatlas"})
    ET.SubElement(root, q(RDF, "RDF"))
    return Packet(root, {})


def parse_packet_plain(raw: bytes) -> ET.Element:
    """Any small XML document (Picasa's contacts.xml), with the same safety rules as XMP."""
    if len(raw) > MAX_PACKET_BYTES:
        raise XmlRefused(f"it is {len(raw)} bytes, more than the {MAX_PACKET_BYTES} allowed")
    lowered = raw.lower()
    if b"<!doctype" in lowered or b"<!entity" in lowered:
        raise XmlRefused("it declares a DOCTYPE or ENTITY")
    try:
        return ET.fromstring(raw)
    except ET.ParseError as exc:
        raise XmlRefused(f"it is not well-formed XML ({exc})") from None
