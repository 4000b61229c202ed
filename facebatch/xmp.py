"""XMP sidecar content for photo managers: MWG face regions and IPTC PersonInImage.  Pure: bytes in, bytes out.

`update_sidecar(existing, size, faces, orientation)` merges facebatch's named faces into an existing
sidecar (or into a new one) and returns the new content; `remove_our_data(existing)` takes them out
again.  Nothing here touches a file.

What is written (one region per named face):

    mwg-rs:Regions (a RegionInfo struct; exiftool's Image/ExifTool/MWG.pm defines the property
                    "Regions" with the tag name "RegionInfo", digiKam reads Xmp.mwg-rs.Regions;
                    an element named mwg-rs:RegionInfo is read by nobody)
        mwg-rs:AppliedToDimensions   stDim:w, stDim:h, stDim:unit="pixel"
        mwg-rs:RegionList (rdf:Bag)  mwg-rs:Type="Face", mwg-rs:Name, mwg-rs:Area
                                     (stArea:x, stArea:y = the CENTRE, stArea:w, stArea:h, all
                                     normalised to 0..1, stArea:unit="normalized")
    Iptc4xmpExt:PersonInImage (rdf:Bag of names)

Orientation (what we found, and why the regions are NOT in the upright frame for rotated photos):
  * MWG "Guidelines for Handling Image Metadata" 2.0, section 5.9 (image regions) and 5.4
    (orientation), as quoted in the skatsubo/exif-orientation-vs-face-regions test set: region
    metadata is applied to the *stored* image; whoever applies the Exif Orientation must rotate
    the regions too.  stArea:x/y are the centre of the area; AppliedToDimensions are the
    dimensions of the image the regions were made for.
  * digiKam reads them that way: ItemScanner::commitFaces scales the normalised rectangle by the
    image's stored size and then calls TagRegion::adjustToOrientation(rect, orientation, size).
    Readers that forgot the rotation misplaced digiKam's faces on portrait phone photos
    (pigallery2 issues 515 and 979; Damselfly issue 352), and a Lightroom plugin found that
    Lightroom ignores regions written in the rotated frame (PhotoStation-Upload-Lr-Plugin issue 13).
  * exiftool's config_files/rotate_regions.config rotates an MWG region 90 degrees clockwise as
    x' = 1 - y, y' = x with w and h swapped: the same map as `_to_stored` below for orientation 6.
  So callers pass the box in upright pixels (facebatch's convention everywhere) together with the
  file's EXIF orientation, and this module maps the box and the dimensions back to the stored
  pixels.  With orientation 1 (the default) the upright and stored frames are the same.

UNKNOWN faces get no region and no PersonInImage entry.  digiKam turns a region without a name
into an unconfirmed "Unknown" face in its own database (ItemScanner::commitFaces), so writing them
would flood the photo manager's own unknown-face queue with our detections and duplicate its
detector's; a face that the user then names there would also be a region of uncertain ownership.

Recognising what facebatch wrote, so a rerun replaces only that:
  * each region we write carries a field in our own namespace, facebatch:Generated="True"
    (a struct field in a private namespace: readers ignore fields they do not know);
  * the names we *added* to Iptc4xmpExt:PersonInImage are listed in facebatch:PersonInImage.  A name
    already present (the user's own entry) is not added again and not listed, so removing ours
    never removes the user's; a person deleted from the database disappears on the next write.
  * facebatch:Created="True" marks a sidecar that facebatch created; such a file is deleted (the
    caller is told by a None result) once it holds nothing but facebatch's data and a copy of
    the photo's own XMP packet, which a new sidecar starts from (`update_sidecar`'s `embedded`).
  Every other property, every region without our marker, and every foreign namespace stays.
  A face that already has a region without our marker (the user's, or ours renamed in a photo
  manager that dropped the marker) gets no second region from us (`same_face`).  If no such region
  names the face (another program found it and left it unnamed), the first is given our name
  with facebatch:NamedRegion=<that name>, and a rerun or a removal takes the name back out, unless
  the user renamed the region since (it is theirs then).
  AppliedToDimensions is set to the image's stored size whenever we write regions (normalised
  areas do not depend on it, so other regions stay valid).  The packet is re-indented on the
  first merge; whitespace between elements carries no meaning in RDF, and rdf:parseType="Literal"
  content keeps its text and whitespace, though a default namespace inside it is written with a
  prefix (the same XML to any namespace-aware reader).  XML comments and processing instructions
  are not kept.

Existing sidecars are untrusted: they are parsed with defusedxml with DTDs forbidden (so no entity
bombs and no external entities), limited in size and nesting depth, and anything that is not an
XMP packet raises SidecarError (an ImageError) with a one-line message: the caller leaves the file
as it is.
"""
from __future__ import annotations

import hashlib
import io
import re
from typing import Iterable, NamedTuple
from xml.etree import ElementTree as ET

import defusedxml
import defusedxml.ElementTree as safe_et

from .errors import SidecarError
from .results import UNKNOWN

OUR_NS = "https://ns.facebatch.invalid/xmp/1.0/"  # an identifier only: .invalid never resolves

# Standard prefixes, as photo managers and exiftool write them.  Order is the order of declaration.
PREFIXES = {
    "x": "adobe:ns:meta/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "mwg-rs": "http://www.metadataworkinggroup.com/schemas/regions/",
    "stDim": "http://ns.adobe.com/xap/1.0/sType/Dimensions#",
    "stArea": "http://ns.adobe.com/xmp/sType/Area#",
    "Iptc4xmpExt": "http://iptc.org/std/Iptc4xmpExt/2008-02-29/",
    "facebatch": OUR_NS,
}
_XML_NS = "http://www.w3.org/XML/1998/namespace"

# Sidecars are kilobytes; darktable's with a long edit history a few hundred.  Anything far larger
# is not worth parsing, and deep nesting would only serve to exhaust the stack.
MAX_SIDECAR_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 64

ORIENTATIONS = range(1, 9)


def _q(prefix: str, local: str) -> str:
    return f"{{{PREFIXES[prefix]}}}{local}"


X_XMPMETA, X_XAPMETA = _q("x", "xmpmeta"), _q("x", "xapmeta")
RDF_RDF, RDF_DESC, RDF_LI = _q("rdf", "RDF"), _q("rdf", "Description"), _q("rdf", "li")
RDF_BAG, RDF_SEQ, RDF_ALT = _q("rdf", "Bag"), _q("rdf", "Seq"), _q("rdf", "Alt")
RDF_ABOUT, RDF_PARSETYPE, RDF_VALUE = _q("rdf", "about"), _q("rdf", "parseType"), _q("rdf", "value")
REGION_INFO, REGION_LIST = _q("mwg-rs", "Regions"), _q("mwg-rs", "RegionList")  # exiftool calls mwg-rs:Regions "RegionInfo"
APPLIED_TO = _q("mwg-rs", "AppliedToDimensions")
PERSON_IN_IMAGE = _q("Iptc4xmpExt", "PersonInImage")
OUR_MARKER, OUR_PERSONS, OUR_CREATED = _q("facebatch", "Generated"), _q("facebatch", "PersonInImage"), _q("facebatch", "Created")
OUR_SEED = _q("facebatch", "SeedDigest")  # of the photo's own XMP, which a new sidecar started as
OUR_NAMING = _q("facebatch", "NamedRegion")  # on another program's unnamed region that we gave a name
REGION_NAME = _q("mwg-rs", "Name")


class FaceRegion(NamedTuple):
    """A named face: box in upright full-resolution pixels (right and bottom exclusive, as `Face`)."""

    name: str
    left: int
    top: int
    right: int
    bottom: int

    @classmethod
    def from_labelled(cls, labelled) -> "FaceRegion":
        """From a results.LabelledFace."""
        face = labelled.face
        return cls(labelled.name, face.left, face.top, face.right, face.bottom)


# --------------------------------------------------------------------------- geometry

def stored_size(size: tuple[int, int], orientation: int = 1) -> tuple[int, int]:
    """The stored pixel size of an image whose upright (EXIF-rotated) size is `size`."""
    width, height = size
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _to_stored(u: float, v: float, w: float, h: float, orientation: int) -> tuple[float, float, float, float]:
    """Normalised centre and size in the upright frame -> the same area in the stored frame.

    Inverse of what ImageOps.exif_transpose does to the pixels: orientation 6 shows the stored
    image turned 90 degrees clockwise (upright u = 1 - stored y, v = stored x), 8 turned
    counter-clockwise, 3 turned half-way; 2, 4, 5 and 7 are the mirrored variants.
    """
    if orientation == 2:
        return 1 - u, v, w, h
    if orientation == 3:
        return 1 - u, 1 - v, w, h
    if orientation == 4:
        return u, 1 - v, w, h
    if orientation == 5:
        return v, u, h, w
    if orientation == 6:
        return v, 1 - u, h, w
    if orientation == 7:
        return 1 - v, 1 - u, h, w
    if orientation == 8:
        return 1 - v, u, h, w
    return u, v, w, h


def normalised_area(face: FaceRegion, size: tuple[int, int], orientation: int = 1) -> tuple[float, float, float, float] | None:
    """(x, y, w, h) of the MWG Area for an upright box: centre and size, 0..1, in the stored frame.

    The box is clipped to the image; None when nothing of it is left.
    """
    width, height = size
    left, right = max(0, min(face.left, width)), max(0, min(face.right, width))
    top, bottom = max(0, min(face.top, height)), max(0, min(face.bottom, height))
    if right <= left or bottom <= top:
        return None
    return _to_stored((left + right) / 2 / width, (top + bottom) / 2 / height,
                      (right - left) / width, (bottom - top) / height, orientation)


# --------------------------------------------------------------------------- parsing

def _parse(data: bytes) -> tuple[ET.Element, dict[str, str]]:
    """Parse untrusted bytes: (root element, {namespace uri: prefix used in the file})."""
    if len(data) > MAX_SIDECAR_BYTES:
        raise SidecarError(f"the existing XMP sidecar is {len(data)} bytes, over facebatch's limit of "
                           f"{MAX_SIDECAR_BYTES}; move it away if it is not a real sidecar")
    prefixes: dict[str, str] = {}
    root = None
    depth = 0
    try:
        for event, item in safe_et.iterparse(io.BytesIO(data), events=("start", "end", "start-ns"),
                                             forbid_dtd=True):
            if event == "start-ns":
                prefix, uri = item
                prefixes.setdefault(uri, prefix)
            elif event == "start":
                depth += 1
                if depth > MAX_DEPTH:
                    raise SidecarError(f"the existing XMP sidecar nests elements over {MAX_DEPTH} deep, "
                                       "which no XMP needs; move it away or fix it")
            else:
                depth -= 1
                root = item
    except defusedxml.DTDForbidden:
        raise SidecarError("the existing XMP sidecar declares a DTD, which XMP never does and which can "
                           "hide entity bombs or external files; remove the DOCTYPE or move the file away") from None
    except (defusedxml.EntitiesForbidden, defusedxml.ExternalReferenceForbidden):
        raise SidecarError("the existing XMP sidecar declares entities, which XMP never does; "
                           "move the file away or fix it") from None
    except ET.ParseError as exc:
        raise SidecarError(f"the existing XMP sidecar is not well-formed XML ({exc}); fix it or move it away") from None
    except (LookupError, ValueError) as exc:  # an encoding expat does not know, or multi-byte (shift_jis, utf-32)
        raise SidecarError(f"the existing XMP sidecar is in an encoding facebatch cannot read ({exc}); save it as "
                           "UTF-8 or move it away") from None
    if root is None:  # pragma: no cover - expat reports an empty document as a ParseError
        raise SidecarError("the existing XMP sidecar is empty; delete it or move it away")
    return root, prefixes


def _packet(root: ET.Element) -> tuple[ET.Element, ET.Element]:
    """(x:xmpmeta, rdf:RDF) of a parsed sidecar; a bare rdf:RDF is wrapped."""
    if root.tag == RDF_RDF:
        meta = ET.Element(X_XMPMETA)
        meta.append(root)
        return meta, root
    if root.tag in (X_XMPMETA, X_XAPMETA):
        rdf = root.find(RDF_RDF)
        if rdf is None:
            raise SidecarError("the existing XMP sidecar has no rdf:RDF inside x:xmpmeta; fix it or move it away")
        return root, rdf
    raise SidecarError(f"the existing sidecar is XML but not XMP (its root element is {_plain(root.tag)}); "
                       "move it away so facebatch can write one")


def _plain(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


# --------------------------------------------------------------------------- RDF helpers

def _struct(prop: ET.Element) -> ET.Element:
    """The element holding a struct's fields: a nested rdf:Description, or the property element itself."""
    inner = prop.find(RDF_DESC)
    return inner if inner is not None else prop


def _field(node: ET.Element, tag: str) -> str | None:
    """A simple field of a struct, written as an attribute or as a child element."""
    if tag in node.attrib:
        return node.attrib[tag]
    child = node.find(tag)
    if child is None:
        return None
    if RDF_VALUE in child.attrib:
        return child.attrib[RDF_VALUE]
    value = child.find(RDF_VALUE)
    return (value.text if value is not None else child.text) or ""


def _container(prop: ET.Element) -> ET.Element | None:
    for tag in (RDF_BAG, RDF_SEQ, RDF_ALT):
        found = prop.find(tag)
        if found is not None:
            return found
    return None


def _item_value(item: ET.Element) -> str:
    if RDF_VALUE in item.attrib:
        return item.attrib[RDF_VALUE]
    value = item.find(RDF_VALUE)
    return (value.text if value is not None else item.text) or ""


def _has_fields(node: ET.Element, ignore: tuple[str, ...] = ()) -> bool:
    """Whether a struct or description has any property left (rdf: attributes are syntax, not properties)."""
    for key in node.attrib:
        if not key.startswith(f"{{{PREFIXES['rdf']}}}") and key not in ignore and not key.startswith(f"{{{_XML_NS}}}"):
            return True
    return any(child.tag not in ignore for child in node)


def _ours(node: ET.Element) -> bool:
    return _field(node, OUR_MARKER) == "True"


def _remove_property(desc: ET.Element, tag: str) -> None:
    desc.attrib.pop(tag, None)
    for child in desc.findall(tag):
        desc.remove(child)


_INVALID_XML_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _clean(text: str) -> str:
    """Drop characters XML 1.0 cannot carry (a name from the database could hold anything)."""
    return _INVALID_XML_CHARS.sub("", text)


def _sub(parent: ET.Element, tag: str, text: str | None = None, resource: bool = False) -> ET.Element:
    element = ET.SubElement(parent, tag, {RDF_PARSETYPE: "Resource"} if resource else {})
    element.text = text
    return element


def _number(value: float) -> str:
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


# --------------------------------------------------------------------------- the merge

def update_sidecar(existing: bytes | None, size: tuple[int, int], faces: Iterable[FaceRegion],
                   orientation: int = 1, embedded: bytes | None = None) -> bytes | None:
    """New sidecar content with facebatch's regions replaced by `faces`; None if the file should not exist.

    `existing` is the current sidecar's content, or None when there is none.  `size` is the image's
    upright (width, height) and the faces' boxes are in upright pixels; `orientation` is the
    original file's EXIF orientation (1-8), used to store regions in the frame MWG prescribes.
    `embedded` is the XMP packet inside the photo itself, if any (read for a new sidecar only): a
    new sidecar starts as a copy of it, because digiKam reads a photo's sidecar *instead of* its
    embedded XMP, and a sidecar holding only our regions would hide the user's keywords, rating
    and named faces (and put a second region on a face already named there).  exiftool builds
    sidecars the same way.  The copy's digest is kept (facebatch:SeedDigest), so the sidecar is
    known for a plain copy later, whatever the photo holds by then.
    Faces named UNKNOWN (or unnamed) are left out.  None means: no sidecar is needed (there was
    none and no face is named, or nothing of ours would be in it), or the sidecar facebatch
    created now holds nothing but its own data and the copy it started from.
    Raises SidecarError when `existing` is not a usable XMP packet; an unusable `embedded` packet
    is not copied.
    """
    if orientation not in ORIENTATIONS:
        orientation = 1  # an out-of-range tag is ignored by Pillow's exif_transpose as well
    named = [face for face in faces if face.name and face.name != UNKNOWN]
    width, height = size
    if named and (width <= 0 or height <= 0):
        raise ValueError(f"image size must be positive, got {size!r}")
    if existing is None:
        if not named:
            return None
        seed = _embedded_document(embedded)
        if seed is None:
            meta = ET.Element(X_XMPMETA)
            ET.SubElement(ET.SubElement(meta, RDF_RDF), RDF_DESC, {RDF_ABOUT: ""})
            file_prefixes: dict[str, str] = {}
            seed_digest = None
        else:
            meta, file_prefixes = seed
            seed_digest = _digest(meta)
        rdf = meta.find(RDF_RDF)
        created = True
    else:
        root, file_prefixes = _parse(existing)
        meta, rdf = _packet(root)
        created = any(_field(desc, OUR_CREATED) == "True" for desc in rdf.findall(RDF_DESC))
        seed_digest = next((_field(d, OUR_SEED) for d in rdf.findall(RDF_DESC) if _field(d, OUR_SEED)), None)

    descriptions = rdf.findall(RDF_DESC)
    if not descriptions:
        descriptions = [ET.SubElement(rdf, RDF_DESC, {RDF_ABOUT: ""})]
    kept = _remove_ours(descriptions)
    added = _add(descriptions, named, size, orientation) if named else []
    _note_ours(descriptions, added + kept)
    _drop_empty(descriptions)

    if created:
        if len(rdf) == len(descriptions) and not any(_has_fields(desc) for desc in descriptions):
            return None  # ours, and nothing but our data was in it
        if seed_digest is not None and _digest(meta) == seed_digest:
            return None  # ours, and nothing but our data and the copy of the photo's XMP it started as
        descriptions[0].append(_simple(OUR_CREATED, "True"))
        if seed_digest is not None:
            descriptions[0].append(_simple(OUR_SEED, seed_digest))
    return _serialize(meta, file_prefixes)


def _digest(meta: ET.Element) -> str:
    """A digest of what a packet says (`_content`), regions' AppliedToDimensions left out: we set
    those to the photo's size whenever we write regions."""
    return hashlib.sha256(repr(_content(meta, skip=(APPLIED_TO,))).encode("utf-8")).hexdigest()


def _content(element: ET.Element, skip: tuple[str, ...] = ()) -> tuple:
    """What an XMP tree says, for comparing two: its properties and values, without the layout.

    RDF writes the same data several ways, and photo managers and facebatch each choose their
    own: a property as an attribute or as an element, a struct as rdf:parseType="Resource" or as
    a nested rdf:Description, the top-level properties in one rdf:Description or in several.
    These all give the same tuple, and so do another indentation, other namespace prefixes, and
    another order of properties or of unordered (Bag) items.  Seq and Alt keep their order.
    Properties tagged `skip` are left out."""
    items = [(name, "", value.strip(), ()) for name, value in element.attrib.items()
             if name not in (RDF_PARSETYPE, RDF_ABOUT) and name not in skip]
    for child in element:
        if child.tag in skip:
            continue
        if child.tag == RDF_DESC:  # a struct's or the packet's properties belong to the parent
            items.extend(_content(child, skip)[3])
        else:
            items.append(_content(child, skip))
    if element.tag not in (RDF_SEQ, RDF_ALT):
        items.sort()
    return element.tag, "", (element.text or "").strip(), tuple(items)


def _embedded_document(embedded: bytes | None) -> tuple[ET.Element, dict[str, str]] | None:
    """(x:xmpmeta, prefixes) of the photo's own XMP packet, as a new sidecar would start; None
    when there is none or it is not usable XMP (the sidecar then starts empty, as before)."""
    if not embedded:
        return None
    try:
        root, prefixes = _parse(embedded)
        meta, rdf = _packet(root)
    except SidecarError:
        return None
    descriptions = rdf.findall(RDF_DESC) or [ET.SubElement(rdf, RDF_DESC, {RDF_ABOUT: ""})]
    _remove_ours(descriptions)  # a photo whose XMP was copied from one of our sidecars
    _drop_empty(descriptions)
    return meta, prefixes


def remove_our_data(existing: bytes) -> bytes | None:
    """The sidecar without anything facebatch wrote; None if facebatch created it and nothing else
    is left (but the copy of the photo's XMP it started as)."""
    return update_sidecar(existing, (0, 0), [])


def _simple(tag: str, text: str) -> ET.Element:
    element = ET.Element(tag)
    element.text = text
    return element


def _remove_ours(descriptions: list[ET.Element]) -> list[str]:
    """Take out our regions, the PersonInImage entries we added, and our bookkeeping.  Returns the
    entries we added that stay, because a region we did not write still names that person: they
    are still ours (`_note_ours`), to go when that region stops naming them."""
    our_names: list[str] = []
    for desc in descriptions:
        for prop in desc.findall(OUR_PERSONS):
            bag = _container(prop)
            if bag is not None:
                our_names.extend(_item_value(item) for item in bag.findall(RDF_LI))
        _remove_property(desc, OUR_PERSONS)
        _remove_property(desc, OUR_CREATED)
        _remove_property(desc, OUR_SEED)
        for info in desc.findall(REGION_INFO):
            for region_list in _struct(info).findall(REGION_LIST):
                bag = _container(region_list)
                if bag is None:
                    continue
                for item in bag.findall(RDF_LI):
                    region = _struct(item)
                    if _ours(region):
                        bag.remove(item)
                    elif _field(region, OUR_NAMING) is not None:  # not ours, only its name: give that back
                        if _field(region, REGION_NAME) == _field(region, OUR_NAMING):  # unless renamed since
                            _remove_property(region, REGION_NAME)
                        _remove_property(region, OUR_NAMING)
    # One entry per name we added goes; a user's own entry of that name stays, and so does ours
    # while a region we did not write names that person (ours, rewritten by a photo manager that
    # dropped our marker, is now the manager's: the list must keep agreeing with it).
    still_named = {name for _, name, _ in _foreign_faces(descriptions)}
    kept = []
    for name in our_names:
        if name in still_named:
            kept.append(name)
        else:
            _remove_person(descriptions, name)
    return kept


def _remove_person(descriptions: list[ET.Element], name: str) -> None:
    for desc in descriptions:
        for prop in desc.findall(PERSON_IN_IMAGE):
            bag = _container(prop)
            for item in (bag.findall(RDF_LI) if bag is not None else ()):
                if _item_value(item) == name:
                    bag.remove(item)
                    return


def _add(descriptions: list[ET.Element], faces: list[FaceRegion], size: tuple[int, int],
         orientation: int) -> list[str]:
    """Our regions for `faces`, and their names in PersonInImage; returns the entries added."""
    home = next((desc for desc in descriptions if desc.find(REGION_INFO) is not None), descriptions[0])
    info = home.find(REGION_INFO)
    if info is None:
        info = _sub(home, REGION_INFO, resource=True)
    struct = _struct(info)
    _remove_property(struct, APPLIED_TO)
    stored_w, stored_h = stored_size(size, orientation)
    dims = ET.Element(APPLIED_TO, {RDF_PARSETYPE: "Resource"})
    _sub(dims, _q("stDim", "w"), str(stored_w))
    _sub(dims, _q("stDim", "h"), str(stored_h))
    _sub(dims, _q("stDim", "unit"), "pixel")
    struct.insert(0, dims)
    region_list = struct.find(REGION_LIST)
    if region_list is None:
        region_list = _sub(struct, REGION_LIST)
    bag = _container(region_list)
    if bag is None:
        bag = _sub(region_list, RDF_BAG)
    others = _foreign_faces(descriptions)
    listed: list[FaceRegion] = []  # faces whose name belongs in PersonInImage
    for face in faces:
        area = normalised_area(face, size, orientation)
        covering = [(name, region) for other, name, region in others if area is not None and same_face(area, other)]
        if covering:
            # a photo manager's region marks this face: a second box would be a duplicate.  If it
            # gives our name (ours, rewritten by a manager that dropped our marker), the person
            # is still in the photo: keep them listed, or the region and the list would disagree.
            # If no region names the face (another program found it and left it unnamed), the
            # first gets our name, marked so that it is given back (`_remove_ours`).
            names = [name for name, _ in covering]
            if _clean(face.name) in names:
                listed.append(face)
            elif not any(names):
                region = covering[0][1]
                _remove_property(region, REGION_NAME)
                _sub(region, REGION_NAME, _clean(face.name))
                _sub(region, OUR_NAMING, _clean(face.name))  # the name we gave, to take back if unchanged
                listed.append(face)
            continue
        listed.append(face)  # no foreign region marks it: ours to name
        if area is None:
            continue
        item = _sub(bag, RDF_LI, resource=True)
        area_element = _sub(item, _q("mwg-rs", "Area"), resource=True)
        for key, value in zip("xywh", area):
            _sub(area_element, _q("stArea", key), _number(value))
        _sub(area_element, _q("stArea", "unit"), "normalized")
        _sub(item, REGION_NAME, _clean(face.name))
        _sub(item, _q("mwg-rs", "Type"), "Face")
        _sub(item, OUR_MARKER, "True")

    present = []
    for desc in descriptions:
        for prop in desc.findall(PERSON_IN_IMAGE):
            bag = _container(prop)
            present.extend(_item_value(item) for item in (bag.findall(RDF_LI) if bag is not None else ()))
    person_prop = next((prop for desc in descriptions for prop in desc.findall(PERSON_IN_IMAGE)), None)
    added: list[str] = []
    for name in dict.fromkeys(_clean(face.name) for face in listed):
        if name in present or name in added:
            continue
        if person_prop is None:
            person_prop = _sub(home, PERSON_IN_IMAGE)
        person_bag = _container(person_prop)
        if person_bag is None:
            person_bag = _sub(person_prop, RDF_BAG)
        _sub(person_bag, RDF_LI, name)
        added.append(name)
    return added


def _note_ours(descriptions: list[ET.Element], names: list[str]) -> None:
    """List the PersonInImage entries we added (facebatch:PersonInImage), so that they can go."""
    if not names:
        return
    home = next((desc for desc in descriptions if desc.find(PERSON_IN_IMAGE) is not None), descriptions[0])
    ours_bag = _sub(_sub(home, OUR_PERSONS), RDF_BAG)
    for name in dict.fromkeys(names):
        _sub(ours_bag, RDF_LI, name)


def same_face(area: tuple[float, float, float, float], other: tuple[float, float, float, float]) -> bool:
    """Whether two (centre x, centre y, w, h) areas mark the same face: each centre lies inside the other.

    Detectors draw boxes of different sizes around one face (digiKam's, Lightroom's and MTCNN's
    differ by a third or more), so overlap ratios are unreliable; but the centre of a face stays
    inside any box around it, and two neighbouring faces never hold each other's centres.
    """
    def holds(box, point) -> bool:
        x, y, w, h = box
        return abs(point[0] - x) <= w / 2 and abs(point[1] - y) <= h / 2
    return holds(area, other[:2]) and holds(other, area[:2])


def _foreign_faces(descriptions: list[ET.Element]) -> list[tuple[tuple[float, float, float, float], str, ET.Element]]:
    """The (x, y, w, h), name ("" if none) and struct of every face region facebatch did not write
    (a photo manager's or the user's).

    A face that already has such a region gets no region of ours: the user may have renamed our
    region in a photo manager that dropped our marker, or named the face there first.  Either way
    their region is the one that counts, and a second box on the same face would be a duplicate in
    their face list.  Regions of other types (Pet, Focus, BarCode) do not mark faces.
    """
    areas = []
    for desc in descriptions:
        for info in desc.findall(REGION_INFO):
            for region_list in _struct(info).findall(REGION_LIST):
                bag = _container(region_list)
                for item in (bag.findall(RDF_LI) if bag is not None else ()):
                    region = _struct(item)
                    if _ours(region) or (_field(region, _q("mwg-rs", "Type")) or "Face") != "Face":
                        continue
                    area_prop = region.find(_q("mwg-rs", "Area"))
                    if area_prop is None:
                        continue
                    area = _struct(area_prop)
                    if (_field(area, _q("stArea", "unit")) or "normalized") != "normalized":
                        continue
                    try:  # a field missing (None) or not a number: no area
                        box = tuple(float(_field(area, _q("stArea", key))) for key in "xywh")
                    except (TypeError, ValueError):
                        continue
                    areas.append((box, (_field(region, REGION_NAME) or "").strip(), region))
    return areas


def _drop_empty(descriptions: list[ET.Element]) -> None:
    """Remove region lists, mwg-rs:Regions and PersonInImage that our removal left empty."""
    for desc in descriptions:
        for info in desc.findall(REGION_INFO):
            struct = _struct(info)
            for region_list in struct.findall(REGION_LIST):
                bag = _container(region_list)
                if bag is None or len(bag.findall(RDF_LI)) == 0:
                    struct.remove(region_list)
            if not _has_fields(struct, ignore=(APPLIED_TO,)):
                desc.remove(info)
        for prop in desc.findall(PERSON_IN_IMAGE):
            bag = _container(prop)
            if bag is not None and len(bag.findall(RDF_LI)) == 0:
                desc.remove(prop)


# --------------------------------------------------------------------------- writing

def _escape(text: str, attribute: bool = False) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")
    if attribute:
        text = text.replace('"', "&quot;").replace("\n", "&#10;").replace("\t", "&#9;")
    return text


def _uris(element: ET.Element) -> set[str]:
    """Namespace URIs used by an element's own tag and attributes."""
    found = set()
    for name in (element.tag, *element.attrib):
        if isinstance(name, str) and name.startswith("{"):
            found.add(name[1:].split("}", 1)[0])
    found.discard(_XML_NS)
    return found


def _prefix_map(meta: ET.Element, file_prefixes: dict[str, str]) -> dict[str, str]:
    """uri -> prefix: the standard prefixes first, then the file's own, then ns1, ns2, ..."""
    mapping = {uri: prefix for prefix, uri in PREFIXES.items()}
    taken = set(mapping.values()) | {"xml", "xmlns"}
    used = set()
    for element in meta.iter():
        used |= _uris(element)
    counter = 0
    for uri in sorted(used - set(mapping)):
        prefix = file_prefixes.get(uri, "")
        if not re.fullmatch(r"[A-Za-z_][\w.-]*", prefix) or prefix in taken or prefix.lower().startswith("xml"):
            while True:
                counter += 1
                prefix = f"ns{counter}"
                if prefix not in taken:
                    break
        mapping[uri] = prefix
        taken.add(prefix)
    return mapping


def _serialize(meta: ET.Element, file_prefixes: dict[str, str]) -> bytes:
    """x:xmpmeta as an XMP packet: namespaces declared where they are first needed, one space per level."""
    prefixes = _prefix_map(meta, file_prefixes)

    def name(qname: str) -> str:
        if qname.startswith("{"):
            uri, local = qname[1:].split("}", 1)
            return f"xml:{local}" if uri == _XML_NS else f"{prefixes[uri]}:{local}"
        return qname

    def order(uri: str) -> tuple[int, str]:
        standard = list(PREFIXES.values())
        return (standard.index(uri), "") if uri in standard else (len(standard), prefixes[uri])

    out: list[str] = []

    def write(element: ET.Element, level: int, declared: frozenset, literal: bool) -> None:
        if level == 2 and not literal:  # a top-level rdf:Description declares what its subtree uses
            needed = set().union(*(_uris(node) for node in element.iter()))
        else:
            needed = _uris(element) | ({PREFIXES["rdf"]} if level == 0 else set())
        new = sorted(needed - declared, key=order)
        declared = declared | set(new)
        attrs = [f' xmlns:{prefixes[uri]}="{_escape(uri, True)}"' for uri in new]
        attrs += [f' {name(key)}="{_escape(value, True)}"' for key, value in sorted(element.attrib.items(), key=lambda kv: name(kv[0]))]
        pad = "" if literal else "\n" + " " * level
        out.append(f"{pad}<{name(element.tag)}{''.join(attrs)}")
        is_literal = literal or element.get(RDF_PARSETYPE) == "Literal"
        children = list(element)
        text = element.text or ""
        if not children:
            out.append(f">{_escape(text)}</{name(element.tag)}>" if text else "/>")
        else:
            out.append(">")
            if is_literal or text.strip():
                out.append(_escape(text))
            for child in children:
                write(child, level + 1, declared, is_literal)
                tail = child.tail or ""
                if is_literal or tail.strip():
                    out.append(_escape(tail))
            out.append(f"{'' if is_literal else chr(10) + ' ' * level}</{name(element.tag)}>")

    write(meta, 0, frozenset(), False)
    body = "".join(out).lstrip("\n")
    packet = f'<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n{body}\n<?xpacket end="w"?>\n'
    return packet.encode("utf-8")
