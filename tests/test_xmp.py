"""XMP face-region sidecars: the pure merge (xmp.py), the file handling (sidecar.py), and read-back by exiftool.

exiftool is the real reader here (Debian package libimage-exiftool-perl).  Its absence fails the
exiftool tests with an instruction instead of skipping them.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np
import pytest
from PIL import Image, ImageOps

from facebatch import sidecar, xmp
from facebatch.errors import ImageError, SidecarError
from facebatch.images import load_image
from facebatch.xmp import FaceRegion

NS = {prefix: uri for prefix, uri in xmp.PREFIXES.items()}
NS["dc"] = "http://purl.org/dc/elements/1.1/"
NS["darktable"] = "http://darktable.sf.net/"

FOREIGN = b"""<?xml version="1.0" encoding="UTF-8"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:darktable="http://darktable.sf.net/"
    xmlns:mwg-rs="http://www.metadataworkinggroup.com/schemas/regions/"
    xmlns:stArea="http://ns.adobe.com/xmp/sType/Area#"
    xmlns:stDim="http://ns.adobe.com/xap/1.0/sType/Dimensions#"
    xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
    xmp:Rating="4"
    darktable:xmp_version="5">
   <dc:subject><rdf:Bag><rdf:li>holiday</rdf:li><rdf:li>beach</rdf:li></rdf:Bag></dc:subject>
   <darktable:history><rdf:Seq><rdf:li darktable:operation="exposure" darktable:enabled="1"/></rdf:Seq></darktable:history>
   <mwg-rs:Regions>
    <rdf:Description>
     <mwg-rs:AppliedToDimensions stDim:w="400" stDim:h="300" stDim:unit="pixel"/>
     <mwg-rs:RegionList>
      <rdf:Bag>
       <rdf:li>
        <rdf:Description mwg-rs:Name="Carol" mwg-rs:Type="Face">
         <mwg-rs:Area stArea:x="0.5" stArea:y="0.5" stArea:w="0.1" stArea:h="0.1" stArea:unit="normalized"/>
        </rdf:Description>
       </rdf:li>
       <rdf:li>
        <rdf:Description mwg-rs:Name="Alice" mwg-rs:Type="Face">
         <mwg-rs:Area stArea:x="0.9" stArea:y="0.9" stArea:w="0.1" stArea:h="0.1" stArea:unit="normalized"/>
        </rdf:Description>
       </rdf:li>
      </rdf:Bag>
     </mwg-rs:RegionList>
    </rdf:Description>
   </mwg-rs:Regions>
   <Iptc4xmpExt:PersonInImage><rdf:Bag><rdf:li>Alice</rdf:li><rdf:li>Carol</rdf:li></rdf:Bag></Iptc4xmpExt:PersonInImage>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
"""

ALICE = FaceRegion("Alice", 40, 30, 120, 130)
BOB = FaceRegion("Bob", 200, 100, 260, 180)
STRANGER = FaceRegion("UNKNOWN", 300, 200, 340, 250)
SIZE = (400, 300)


# --------------------------------------------------------------------------- reading helpers (ElementTree, our tests only)

def _field(node: ET.Element, tag: str) -> str | None:
    if tag in node.attrib:
        return node.attrib[tag]
    child = node.find(tag)
    return None if child is None else (child.text or "")


def _struct(node: ET.Element) -> ET.Element:
    inner = node.find(xmp.RDF_DESC)
    return inner if inner is not None else node


def regions(data: bytes) -> list[dict]:
    root = ET.fromstring(data)
    found = []
    for item in root.iter(xmp.RDF_LI):
        node = _struct(item)
        area = node.find(f"{{{NS['mwg-rs']}}}Area")
        if area is None:
            continue
        area = _struct(area)
        found.append({
            "name": _field(node, f"{{{NS['mwg-rs']}}}Name"),
            "type": _field(node, f"{{{NS['mwg-rs']}}}Type"),
            "ours": _field(node, xmp.OUR_MARKER) == "True",
            **{key: float(_field(area, f"{{{NS['stArea']}}}{key}")) for key in "xywh"},
        })
    return found


def bag(data: bytes, tag: str) -> list[str]:
    root = ET.fromstring(data)
    return [li.text for prop in root.iter(tag) for li in prop.iter(xmp.RDF_LI)]


def names(data: bytes, ours: bool | None = None) -> list[str]:
    return sorted(r["name"] for r in regions(data) if ours is None or r["ours"] == ours)


# --------------------------------------------------------------------------- the pure merge

def test_new_sidecar_holds_named_faces_only_and_is_stable():
    data = xmp.update_sidecar(None, SIZE, [ALICE, STRANGER, BOB])
    assert data.startswith(b"<?xpacket begin=") and b"<x:xmpmeta" in data and data.rstrip().endswith(b'<?xpacket end="w"?>')
    for prefix in ("x", "rdf", "mwg-rs", "stDim", "stArea", "Iptc4xmpExt"):
        assert f'xmlns:{prefix}="{NS[prefix]}"'.encode() in data
    assert names(data, ours=True) == ["Alice", "Bob"]  # UNKNOWN gets no region
    alice = next(r for r in regions(data) if r["name"] == "Alice")
    assert alice["type"] == "Face"
    assert alice == pytest.approx({**alice, "x": 80 / 400, "y": 80 / 300, "w": 80 / 400, "h": 100 / 300}, abs=1e-6)
    assert bag(data, xmp.PERSON_IN_IMAGE) == ["Alice", "Bob"]
    dims = ET.fromstring(data).find(f".//{xmp.APPLIED_TO}")
    assert [dims.find(f"{{{NS['stDim']}}}{k}").text for k in ("w", "h", "unit")] == ["400", "300", "pixel"]
    assert xmp.update_sidecar(data, SIZE, [ALICE, STRANGER, BOB]) == data  # byte-identical on a rerun


def test_no_named_face_and_no_sidecar_writes_nothing():
    assert xmp.update_sidecar(None, SIZE, [STRANGER]) is None
    assert xmp.update_sidecar(None, SIZE, []) is None


def test_merge_keeps_every_foreign_field_and_region():
    data = xmp.update_sidecar(FOREIGN, SIZE, [ALICE, BOB])
    root = ET.fromstring(data)
    desc = root.find(f".//{xmp.RDF_DESC}")
    assert desc.get(f"{{{NS['xmp']}}}Rating") == "4"
    assert desc.get(f"{{{NS['darktable']}}}xmp_version") == "5"
    assert root.get(f"{{{NS['x']}}}xmptk") == "XMP Core 4.4.0-Exiv2"
    assert bag(data, f"{{{NS['dc']}}}subject") == ["holiday", "beach"]
    history = root.find(f".//{{{NS['darktable']}}}history")
    assert history.find(f".//{xmp.RDF_LI}").get(f"{{{NS['darktable']}}}operation") == "exposure"
    assert names(data, ours=False) == ["Alice", "Carol"]  # the user's regions, untouched
    assert names(data, ours=True) == ["Alice", "Bob"]
    # Alice was already a PersonInImage entry of the user's: not added twice, not recorded as ours.
    assert bag(data, xmp.PERSON_IN_IMAGE) == ["Alice", "Carol", "Bob"]
    assert bag(data, xmp.OUR_PERSONS) == ["Bob"]
    assert b"xmlns:darktable=" in data and b"xmlns:dc=" in data  # the file's own prefixes are kept
    assert xmp.update_sidecar(data, SIZE, [ALICE, BOB]) == data


def test_rerun_replaces_only_our_regions_and_names():
    first = xmp.update_sidecar(FOREIGN, SIZE, [ALICE, BOB])
    second = xmp.update_sidecar(first, SIZE, [FaceRegion("Alice", 10, 10, 50, 60)])  # Bob left the database
    assert names(second, ours=True) == ["Alice"]
    assert names(second, ours=False) == ["Alice", "Carol"]
    ours = [r for r in regions(second) if r["ours"]]
    assert ours[0]["x"] == pytest.approx(30 / 400)
    assert bag(second, xmp.PERSON_IN_IMAGE) == ["Alice", "Carol"]
    assert bag(second, xmp.OUR_PERSONS) == []


def test_removing_ours_leaves_the_users_entries_of_the_same_name():
    merged = xmp.update_sidecar(FOREIGN, SIZE, [ALICE, BOB])
    cleaned = xmp.remove_our_data(merged)
    assert names(cleaned) == ["Alice", "Carol"]
    assert bag(cleaned, xmp.PERSON_IN_IMAGE) == ["Alice", "Carol"]
    assert xmp.OUR_NS.encode() not in cleaned
    assert bag(cleaned, f"{{{NS['dc']}}}subject") == ["holiday", "beach"]


def test_a_new_sidecar_starts_from_the_photos_embedded_xmp_and_goes_when_only_that_is_left():
    data = xmp.update_sidecar(None, SIZE, [ALICE, BOB], embedded=FOREIGN)
    assert bag(data, f"{{{NS['dc']}}}subject") == ["holiday", "beach"]  # the photo's keywords, which digiKam
    assert names(data, ours=False) == ["Alice", "Carol"]                # would no longer read in the photo
    assert names(data, ours=True) == ["Alice", "Bob"]
    assert bag(data, xmp.OUR_PERSONS) == ["Bob"]
    assert xmp.update_sidecar(data, SIZE, [ALICE, BOB]) == data
    assert xmp.remove_our_data(data) is None  # nothing but the copy of the photo's XMP it started as
    edited = data.replace(b"<rdf:li>beach</rdf:li>", b"<rdf:li>beach</rdf:li><rdf:li>sunset</rdf:li>")
    assert b"sunset" in xmp.remove_our_data(edited)  # edited in a photo manager since: kept
    assert xmp.update_sidecar(None, SIZE, [], embedded=FOREIGN) is None  # no named face: no sidecar
    # a face already named in the photo (Alice's region there is not on our Alice's face, Carol's is):
    # nothing of ours would be in the sidecar but a copy of the photo's XMP, so there is none
    on_carol = FaceRegion("Carol", 170, 120, 235, 185)
    assert xmp.update_sidecar(None, SIZE, [on_carol], embedded=FOREIGN) is None
    # the photo's regions with another AppliedToDimensions (we set ours): still a plain copy once we leave
    other_size = FOREIGN.replace(b'stDim:w="400"', b'stDim:w="800"')
    assert xmp.remove_our_data(xmp.update_sidecar(None, SIZE, [BOB], embedded=other_size)) is None
    for unusable in (b"", b"not xml", HOSTILE["external entity"]):  # the sidecar starts empty, as without
        assert bag(xmp.update_sidecar(None, SIZE, [ALICE], embedded=unusable), xmp.PERSON_IN_IMAGE) == ["Alice"]


def test_a_sidecar_we_created_disappears_when_our_faces_do():
    ours = xmp.update_sidecar(None, SIZE, [ALICE])
    assert xmp.remove_our_data(ours) is None
    assert xmp.update_sidecar(ours, SIZE, [STRANGER]) is None
    # ... but not once someone else has added something to it.
    rated = ours.replace(b'rdf:about=""', b'rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:Rating="5"')
    kept = xmp.remove_our_data(rated)
    assert kept is not None and b'xmp:Rating="5"' in kept and b"mwg-rs:" not in kept


def test_a_face_that_already_has_a_foreign_region_gets_none_of_ours():
    # Carol's region is centred at (0.5, 0.5), 0.1 wide: 180..220 x 135..165 px.  Our box on the
    # same face is larger and off-centre, as another detector draws it; a neighbour's box is not.
    same_face = FaceRegion("Dave", 170, 120, 235, 185)
    neighbour = FaceRegion("Erin", 225, 120, 290, 185)
    data = xmp.update_sidecar(FOREIGN, SIZE, [same_face, neighbour])
    assert names(data, ours=False) == ["Alice", "Carol"]
    assert names(data, ours=True) == ["Erin"]
    assert bag(data, xmp.PERSON_IN_IMAGE) == ["Alice", "Carol", "Erin"]  # no name for a face we did not mark
    assert bag(data, xmp.OUR_PERSONS) == ["Erin"]


def test_our_region_rewritten_without_our_marker_keeps_its_person_listed():
    # digiKam rewrites every region when it saves face tags, dropping fields it does not know: our
    # region comes back as a foreign one with our name.  PersonInImage must still list the person.
    ours = xmp.update_sidecar(None, SIZE, [ALICE])
    stripped = ours.replace(b"<facebatch:Generated>True</facebatch:Generated>", b"")
    assert names(stripped, ours=False) == ["Alice"]
    again = xmp.update_sidecar(stripped, SIZE, [ALICE])
    assert names(again, ours=True) == [] and names(again, ours=False) == ["Alice"]  # no second box
    assert bag(again, xmp.PERSON_IN_IMAGE) == ["Alice"]
    assert xmp.update_sidecar(again, SIZE, [ALICE]) == again
    gone = xmp.update_sidecar(stripped, SIZE, [])  # Alice left the database; the manager's region stays
    assert names(gone) == ["Alice"] and bag(gone, xmp.PERSON_IN_IMAGE) == ["Alice"]
    # the entry stays ours over later writes, so it goes once the manager's region names someone else
    twice = xmp.update_sidecar(xmp.update_sidecar(again, SIZE, [ALICE]), SIZE, [ALICE])
    assert bag(twice, xmp.OUR_PERSONS) == ["Alice"]
    relabelled = twice.replace(b"<mwg-rs:Name>Alice</mwg-rs:Name>", b"<mwg-rs:Name>Ann</mwg-rs:Name>")
    assert bag(xmp.update_sidecar(relabelled, SIZE, []), xmp.PERSON_IN_IMAGE) == []


UNNAMED = FOREIGN.replace(b'<rdf:Description mwg-rs:Name="Carol" mwg-rs:Type="Face">',
                          b'<rdf:Description mwg-rs:Type="Face">')  # found by another program, never named


def test_a_face_another_program_found_but_left_unnamed_gets_our_name_and_gets_it_back():
    assert sorted(r["name"] or "" for r in regions(UNNAMED)) == ["", "Alice"]
    on_carols_face = FaceRegion("Dave", 170, 120, 235, 185)
    data = xmp.update_sidecar(UNNAMED, SIZE, [on_carols_face])
    assert names(data, ours=True) == []  # no second box on the face
    assert names(data, ours=False) == ["Alice", "Dave"]  # the unnamed region carries the name
    assert bag(data, xmp.PERSON_IN_IMAGE) == ["Alice", "Carol", "Dave"]
    assert xmp.update_sidecar(data, SIZE, [on_carols_face]) == data
    renamed = xmp.update_sidecar(data, SIZE, [on_carols_face._replace(name="Erin")])  # the database changed
    assert names(renamed, ours=False) == ["Alice", "Erin"]
    cleaned = xmp.remove_our_data(data)  # Dave left the database: the region is unnamed again, and stays
    assert sorted(r["name"] or "" for r in regions(cleaned)) == ["", "Alice"]
    assert bag(cleaned, xmp.PERSON_IN_IMAGE) == ["Alice", "Carol"] and xmp.OUR_NS.encode() not in cleaned
    # the user renames that region in a photo manager that keeps our marker: the name is theirs now
    renamed_by_user = data.replace(b"<mwg-rs:Name>Dave</mwg-rs:Name>", b"<mwg-rs:Name>Zoe</mwg-rs:Name>")
    assert names(renamed_by_user, ours=False) == ["Alice", "Zoe"]
    assert names(xmp.remove_our_data(renamed_by_user), ours=False) == ["Alice", "Zoe"]
    assert names(xmp.update_sidecar(renamed_by_user, SIZE, [on_carols_face]), ours=False) == ["Alice", "Zoe"]


def test_same_face_needs_each_centre_inside_the_other():
    assert xmp.same_face((0.5, 0.5, 0.1, 0.1), (0.52, 0.48, 0.2, 0.2))
    assert not xmp.same_face((0.5, 0.5, 0.1, 0.1), (0.58, 0.5, 0.2, 0.2))  # a big box's centre is outside the small one
    assert not xmp.same_face((0.5, 0.5, 0.1, 0.1), (0.6, 0.5, 0.1, 0.1))
    # a centre on the other box's edge is inside it (binary fractions: the edge is exact)
    assert xmp.same_face((0.5, 0.5, 0.25, 0.25), (0.625, 0.5, 0.25, 0.25))
    assert xmp.same_face((0.5, 0.5, 0.25, 0.25), (0.5, 0.375, 0.25, 0.25))


CAROL = b'<rdf:Description mwg-rs:Name="Carol" mwg-rs:Type="Face">'
CAROLS_AREA = b'stArea:x="0.5" stArea:y="0.5" stArea:w="0.1" stArea:h="0.1" stArea:unit="normalized"'


@pytest.mark.parametrize("foreign", [
    FOREIGN.replace(CAROL, b'<rdf:Description mwg-rs:Name="Carol" mwg-rs:Type="Pet">'),  # Carol is the cat
    FOREIGN.replace(CAROLS_AREA, CAROLS_AREA.replace(b'"normalized"', b'"pixel"')),  # 0.5 px: not this face
], ids=["pet", "pixel-units"])
def test_a_foreign_region_that_is_no_normalized_face_does_not_hide_ours(foreign):
    # only foreign *face* regions in normalised units mark a face (_foreign_faces); Dave's box holds
    # Carol's centre, as in test_a_face_that_already_has_a_foreign_region_gets_none_of_ours
    on_carols_place = FaceRegion("Dave", 170, 120, 235, 185)
    assert names(xmp.update_sidecar(FOREIGN, SIZE, [on_carols_place]), ours=True) == []  # the control
    data = xmp.update_sidecar(foreign, SIZE, [on_carols_place])
    assert names(data, ours=True) == ["Dave"]
    assert names(data, ours=False) == ["Alice", "Carol"]  # the foreign region stays as it was


def test_region_info_is_dropped_only_when_no_region_is_left():
    merged = xmp.update_sidecar(FOREIGN, SIZE, [ALICE])
    assert names(xmp.remove_our_data(merged)) == ["Alice", "Carol"]  # the user's regions remain
    plain = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">' \
            b'<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:Rating="2"/></rdf:RDF></x:xmpmeta>'
    cleaned = xmp.remove_our_data(xmp.update_sidecar(plain, SIZE, [ALICE]))
    assert b"mwg-rs:Regions" not in cleaned and b"PersonInImage" not in cleaned and b'xmp:Rating="2"' in cleaned


def test_bare_rdf_and_other_struct_spellings_are_understood():
    bare = b"""<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"
      xmlns:mwg-rs="http://www.metadataworkinggroup.com/schemas/regions/"
      xmlns:stArea="http://ns.adobe.com/xmp/sType/Area#" xmlns:fb="https://ns.facebatch.invalid/xmp/1.0/">
     <rdf:Description rdf:about="">
      <mwg-rs:Regions rdf:parseType="Resource"><mwg-rs:RegionList><rdf:Bag>
       <rdf:li mwg-rs:Name="Old" fb:Generated="True"><mwg-rs:Area stArea:x="0.1" stArea:y="0.1" stArea:w="0.1" stArea:h="0.1"/></rdf:li>
      </rdf:Bag></mwg-rs:RegionList></mwg-rs:Regions>
     </rdf:Description></rdf:RDF>"""
    data = xmp.update_sidecar(bare, SIZE, [BOB])
    assert ET.fromstring(data).tag == xmp.X_XMPMETA
    assert names(data) == ["Bob"]  # our old region, spelt with attributes and another prefix, was recognised


def test_literal_content_and_odd_names_survive():
    literal = FOREIGN.replace(b"<dc:subject>", b'<dc:description rdf:parseType="Literal"><b>bold</b>  and <i>x</i></dc:description><dc:subject>')
    data = xmp.update_sidecar(literal, SIZE, [FaceRegion('Zoë "Z" <&>\x00\x1b', 1, 1, 30, 30)])
    assert b"<b>bold</b>  and <i>x</i>" in data
    assert 'Zoë "Z" <&>' in names(data, ours=True)


def test_boxes_are_clipped_and_empty_ones_dropped():
    data = xmp.update_sidecar(None, (100, 100), [FaceRegion("Edge", -20, -10, 30, 40), FaceRegion("Gone", 150, 10, 180, 40)])
    (edge,) = regions(data)
    assert (edge["x"], edge["y"], edge["w"], edge["h"]) == pytest.approx((0.15, 0.2, 0.3, 0.4))
    assert bag(data, xmp.PERSON_IN_IMAGE) == ["Edge", "Gone"]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_area_is_in_the_stored_frame_for_every_orientation(orientation):
    """Pillow's exif_transpose makes the upright image; the area must land back on the stored pixels."""
    stored = np.zeros((60, 100), np.uint8)
    stored[10:30, 55:90] = 255  # rows 10-29, columns 55-89 of the stored pixels
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.fromarray(stored).save(buffer, "PNG", exif=exif)
    upright = np.asarray(ImageOps.exif_transpose(Image.open(buffer)))
    rows, cols = np.nonzero(upright)
    box = FaceRegion("P", cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)
    size = (upright.shape[1], upright.shape[0])
    assert xmp.stored_size(size, orientation) == (100, 60)
    x, y, w, h = xmp.normalised_area(box, size, orientation)
    assert (x - w / 2) * 100 == pytest.approx(55) and (x + w / 2) * 100 == pytest.approx(90)
    assert (y - h / 2) * 60 == pytest.approx(10) and (y + h / 2) * 60 == pytest.approx(30)


HOSTILE = {
    "billion laughs": b"""<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">
        <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
        <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
        <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>
        <x:xmpmeta xmlns:x="adobe:ns:meta/">&lol9;</x:xmpmeta>""",
    "external entity": b"""<?xml version="1.0"?><!DOCTYPE x [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
        <x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
        <rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>&secret;</dc:title>
        </rdf:Description></rdf:RDF></x:xmpmeta>""",
    "external DTD": b'<?xml version="1.0"?><!DOCTYPE x:xmpmeta SYSTEM "http://example.invalid/x.dtd"><x:xmpmeta xmlns:x="adobe:ns:meta/"/>',
    "not XML": b"\xff\xd8\xff\xe0 this is a JPEG, not a sidecar",
    "empty": b"",
    "truncated": FOREIGN[: len(FOREIGN) // 2],
    "XML but not XMP": b"<html><body>hello</body></html>",
    "xmpmeta without RDF": b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><nothing/></x:xmpmeta>',
    "deep nesting": b"<a>" * 5000 + b"</a>" * 5000,
    "huge": b"<x:xmpmeta xmlns:x='adobe:ns:meta/'>" + b" " * xmp.MAX_SIDECAR_BYTES + b"</x:xmpmeta>",
    "unknown encoding": b'<?xml version="1.0" encoding="bogus-enc"?>' + FOREIGN.split(b"?>", 1)[-1],
    "multi-byte encoding": b'<?xml version="1.0" encoding="shift_jis"?>' + FOREIGN.split(b"?>", 1)[-1],
}


@pytest.mark.parametrize("kind", HOSTILE)
def test_hostile_or_broken_sidecars_raise_a_one_line_error(kind):
    with pytest.raises(SidecarError) as caught:
        xmp.update_sidecar(HOSTILE[kind], SIZE, [ALICE])
    message = str(caught.value)
    assert "\n" not in message and "sidecar" in message
    assert isinstance(caught.value, ImageError)  # caught per image like every other image problem
    assert "root:" not in message  # nothing of /etc/passwd was read into anything


# --------------------------------------------------------------------------- sidecar.py: files

def _photo(folder: Path, name: str = "photo.jpg") -> Path:
    path = folder / name
    Image.new("RGB", (40, 30), "gray").save(path)
    return path


def test_sidecar_name_prefers_existing_files(tmp_path):
    photo = _photo(tmp_path)
    assert sidecar.sidecar_path_for(photo) == tmp_path / "photo.jpg.xmp"
    (tmp_path / "photo.xmp").write_bytes(FOREIGN)
    assert sidecar.sidecar_path_for(photo) == tmp_path / "photo.xmp"
    (tmp_path / "photo.jpg.xmp").write_bytes(FOREIGN)
    assert sidecar.sidecar_path_for(photo) == tmp_path / "photo.jpg.xmp"


def test_a_short_sidecar_name_two_photos_share_is_never_used(tmp_path):
    jpg, png = tmp_path / "photo.jpg", tmp_path / "photo.png"
    for photo in (jpg, png):
        photo.write_bytes(b"")
    (tmp_path / "photo.xmp").write_text("from another program")
    # photo.xmp would belong to both, and each run would overwrite the other's faces in it
    assert sidecar.sidecar_path_for(jpg) == tmp_path / "photo.jpg.xmp"
    assert sidecar.sidecar_path_for(png) == tmp_path / "photo.png.xmp"
    (tmp_path / "photo.txt").write_text("not an image")  # only images share a sidecar
    png.unlink()
    assert sidecar.sidecar_path_for(jpg) == tmp_path / "photo.xmp"


@pytest.mark.parametrize("raw", ["IMG_0001.CR2", "IMG_0001.nef", "IMG_0001.dng", "IMG_0001.ARW"])
def test_a_raw_files_sidecar_never_takes_the_jpegs_faces(tmp_path, raw):
    # RAW+JPEG from a camera: IMG_0001.xmp is the raw file's (Lightroom's develop settings)
    jpg = _photo(tmp_path, "IMG_0001.JPG")
    (tmp_path / raw).write_bytes(b"raw data")
    (tmp_path / "IMG_0001.xmp").write_bytes(FOREIGN)
    assert sidecar.sidecar_path_for(jpg) == tmp_path / "IMG_0001.JPG.xmp"


def test_our_faces_written_into_a_raw_files_sidecar_by_an_older_facebatch_are_taken_out(tmp_path):
    jpg = _photo(tmp_path, "IMG_0001.JPG")
    (tmp_path / "IMG_0001.CR2").write_bytes(b"raw data")
    shared = tmp_path / "IMG_0001.xmp"
    shared.write_bytes(xmp.update_sidecar(FOREIGN, SIZE, [BOB]))  # the raw file's settings, and our Bob
    sidecar.write_sidecar(jpg, SIZE, [ALICE])
    assert names((tmp_path / "IMG_0001.JPG.xmp").read_bytes(), ours=True) == ["Alice"]
    left = shared.read_bytes()
    assert xmp.OUR_NS.encode() not in left and names(left) == ["Alice", "Carol"]  # the raw file's own regions
    assert bag(left, f"{{{NS['dc']}}}subject") == ["holiday", "beach"]
    # a raw file's sidecar that cannot be cleaned (a folder, a link, read-only) never stops the JPEG's own
    for odd in ("folder", "link", "read-only"):
        folder = tmp_path / odd
        folder.mkdir()
        jpg = _photo(folder, "IMG_0002.JPG")
        (folder / "IMG_0002.CR2").write_bytes(b"raw data")
        if odd == "folder":
            (folder / "IMG_0002.xmp").mkdir()
        elif odd == "link":
            (folder / "IMG_0002.xmp").symlink_to(shared)
        else:
            (folder / "IMG_0002.xmp").write_bytes(xmp.update_sidecar(FOREIGN, SIZE, [BOB]))
            (folder / "IMG_0002.xmp").chmod(0o444)
        sidecar.write_sidecar(jpg, SIZE, [ALICE])
        assert names((folder / "IMG_0002.JPG.xmp").read_bytes(), ours=True) == ["Alice"], odd


def test_a_read_only_sidecar_is_left_byte_for_byte(tmp_path):
    photo = _photo(tmp_path)
    path = tmp_path / "photo.jpg.xmp"
    for content, change in ((FOREIGN, lambda: sidecar.write_sidecar(photo, SIZE, [BOB])),
                            (xmp.update_sidecar(FOREIGN, SIZE, [BOB]), lambda: sidecar.remove_our_regions(photo))):
        if path.exists():
            path.chmod(0o644)
        path.write_bytes(content)
        path.chmod(0o444)
        with pytest.raises(SidecarError, match=r"read-only.*chmod u\+w"):
            change()
        assert path.read_bytes() == content and stat.S_IMODE(path.stat().st_mode) == 0o444


def test_write_follows_umask_skips_unchanged_and_never_touches_the_photo(tmp_path):
    photo = _photo(tmp_path)
    before = photo.read_bytes()
    old = os.umask(0o027)
    try:
        path = sidecar.write_sidecar(photo, SIZE, [ALICE, STRANGER])
    finally:
        os.umask(old)
    assert path == tmp_path / "photo.jpg.xmp"
    assert oct(path.stat().st_mode & 0o777) == oct(0o640)
    first = path.stat()
    assert sidecar.write_sidecar(photo, SIZE, [ALICE, STRANGER]) == path
    second = path.stat()
    assert (second.st_ino, second.st_mtime_ns) == (first.st_ino, first.st_mtime_ns)  # not rewritten
    assert photo.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.jpg", "photo.jpg.xmp"]  # no temporaries left
    assert sidecar.remove_our_regions(photo) is None
    assert not path.exists()
    assert sidecar.write_sidecar(photo, SIZE, [STRANGER]) is None and not path.exists()


def test_existing_darktable_style_sidecar_is_merged_in_place_keeping_its_mode(tmp_path):
    photo = _photo(tmp_path)
    existing = tmp_path / "photo.xmp"
    existing.write_bytes(FOREIGN)
    existing.chmod(0o604)
    assert sidecar.write_sidecar(photo, SIZE, [BOB]) == existing
    assert existing.stat().st_mode & 0o777 == 0o604
    assert names(existing.read_bytes(), ours=True) == ["Bob"]
    assert not (tmp_path / "photo.jpg.xmp").exists()
    assert sidecar.remove_our_regions(photo) == existing  # the user's file stays, without our data
    assert xmp.OUR_NS.encode() not in existing.read_bytes() and names(existing.read_bytes()) == ["Alice", "Carol"]


def test_a_bad_sidecar_is_left_byte_for_byte(tmp_path):
    photo = _photo(tmp_path)
    bad = tmp_path / "photo.jpg.xmp"
    bad.write_bytes(HOSTILE["billion laughs"])
    with pytest.raises(SidecarError, match="DTD"):
        sidecar.write_sidecar(photo, SIZE, [ALICE])
    assert sidecar.remove_our_regions(photo) == bad  # nothing of ours in it: nothing to take out, nothing to say
    assert bad.read_bytes() == HOSTILE["billion laughs"]


def test_a_sidecar_changed_during_the_merge_is_not_overwritten(tmp_path, monkeypatch):
    photo = _photo(tmp_path)
    path = tmp_path / "photo.jpg.xmp"
    path.write_bytes(FOREIGN)
    merge = xmp.update_sidecar

    def meanwhile_a_photo_manager_saves(*args):
        path.write_bytes(FOREIGN.replace(b'xmp:Rating="4"', b'xmp:Rating="5"'))
        return merge(*args)

    monkeypatch.setattr(xmp, "update_sidecar", meanwhile_a_photo_manager_saves)
    with pytest.raises(SidecarError, match="changed while"):
        sidecar.write_sidecar(photo, SIZE, [ALICE])
    assert b'xmp:Rating="5"' in path.read_bytes() and xmp.OUR_NS.encode() not in path.read_bytes()


def test_a_symlinked_sidecar_is_not_followed(tmp_path):
    photo = _photo(tmp_path)
    target = tmp_path / "elsewhere.xmp"
    target.write_bytes(FOREIGN)
    (tmp_path / "photo.jpg.xmp").symlink_to(target)
    with pytest.raises(SidecarError, match="symbolic link"):
        sidecar.write_sidecar(photo, SIZE, [ALICE])
    assert target.read_bytes() == FOREIGN


# --------------------------------------------------------------------------- read back by exiftool

def exiftool(path: Path) -> dict:
    if shutil.which("exiftool") is None:
        pytest.fail("exiftool is not installed: apt-get install libimage-exiftool-perl "
                    "(the XMP tests read sidecars back with it)")
    result = subprocess.run(["exiftool", "-j", "-struct", "-n", "-RegionInfo", "-XMP-iptcExt:PersonInImage",
                             "-XMP-xmp:Rating", "-XMP-dc:Subject", "-Orientation", str(path)],
                            capture_output=True, text=True, check=True, timeout=60)
    info = json.loads(result.stdout)[0]
    if path.suffix == ".xmp":
        # exiftool also shows an unknown struct under a made-up name; only the real MWG property
        # (mwg-rs:Regions) gives the flattened tags RegionName and RegionAreaX.
        flat = subprocess.run(["exiftool", "-j", "-n", "-RegionName", "-RegionAreaX", str(path)],
                              capture_output=True, text=True, check=True, timeout=60)
        flat_info = json.loads(flat.stdout)[0]
        names = flat_info.get("RegionName", [])
        assert sorted(names if isinstance(names, list) else [names]) == \
            sorted(region["Name"] for region in info["RegionInfo"]["RegionList"])
    return info


def _photo_with_face(folder: Path, orientation: int) -> tuple[Path, tuple[int, int, int, int]]:
    """A 160x96 landscape JPEG (as stored) with one bright 'face' and EXIF Orientation; the face's stored box."""
    stored = np.full((96, 160, 3), 20, np.uint8)
    box = (96, 16, 136, 64)  # left, top, right, bottom in stored pixels, on 8-px JPEG block edges
    stored[box[1]:box[3], box[0]:box[2]] = 235
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = folder / f"rotated-{orientation}.jpg"
    Image.fromarray(stored).save(path, "JPEG", quality=95, exif=exif)
    return path, box


def _upright_box(photo: Path) -> tuple[tuple[int, int], FaceRegion]:
    """The face box as the report has it: found in the upright image facebatch loads."""
    upright = np.asarray(load_image(photo))
    rows, cols = np.nonzero(upright[:, :, 0] > 128)
    return (upright.shape[1], upright.shape[0]), FaceRegion("Marie", cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)


def _pixels(area: dict, width: int, height: int) -> tuple[float, float, float, float]:
    x, y, w, h = (area[k] for k in ("X", "Y", "W", "H"))
    return (x - w / 2) * width, (y - h / 2) * height, (x + w / 2) * width, (y + h / 2) * height


def test_exiftool_reads_names_dimensions_and_areas(tmp_path):
    photo = _photo(tmp_path)
    path = sidecar.write_sidecar(photo, SIZE, [ALICE, BOB, STRANGER])
    info = exiftool(path)
    region_info = info["RegionInfo"]
    assert region_info["AppliedToDimensions"] == {"W": 400, "H": 300, "Unit": "pixel"}
    by_name = {region["Name"]: region for region in region_info["RegionList"]}
    assert sorted(by_name) == ["Alice", "Bob"]
    for face in (ALICE, BOB):
        region = by_name[face.name]
        assert region["Type"] == "Face" and region["Area"]["Unit"] == "normalized"
        assert _pixels(region["Area"], 400, 300) == pytest.approx((face.left, face.top, face.right, face.bottom), abs=1)
    assert info["PersonInImage"] == ["Alice", "Bob"]


def test_exiftool_sees_foreign_fields_kept_after_a_merge(tmp_path):
    photo = _photo(tmp_path)
    (tmp_path / "photo.jpg.xmp").write_bytes(FOREIGN)
    info = exiftool(sidecar.write_sidecar(photo, SIZE, [BOB]))
    assert info["Rating"] == 4 and info["Subject"] == ["holiday", "beach"]
    assert sorted(region["Name"] for region in info["RegionInfo"]["RegionList"]) == ["Alice", "Bob", "Carol"]
    assert info["PersonInImage"] == ["Alice", "Carol", "Bob"]


@pytest.mark.parametrize("orientation", [6, 8])
def test_exiftool_reads_regions_of_exif_rotated_photos_in_the_mwg_frame(tmp_path, orientation):
    photo, stored_box = _photo_with_face(tmp_path, orientation)
    assert exiftool(photo)["Orientation"] == orientation
    size, face = _upright_box(photo)
    assert size == (96, 160)  # portrait when upright
    path = sidecar.write_sidecar(photo, size, [face], orientation)
    region_info = exiftool(path)["RegionInfo"]
    # MWG: regions and AppliedToDimensions describe the stored pixels; readers apply the orientation.
    assert region_info["AppliedToDimensions"] == {"W": 160, "H": 96, "Unit": "pixel"}
    (region,) = region_info["RegionList"]
    assert region["Name"] == "Marie"
    assert _pixels(region["Area"], 160, 96) == pytest.approx(stored_box, abs=1)
    # Rotating the region as a reader does (exiftool's rotate_regions.config: 90 CW is x' = 1 - y,
    # y' = x, w and h swapped) gives back the box of the upright image the report describes.
    x, y, w, h = (region["Area"][k] for k in ("X", "Y", "W", "H"))
    upright = {"X": 1 - y, "Y": x, "W": h, "H": w} if orientation == 6 else {"X": y, "Y": 1 - x, "W": h, "H": w}
    assert _pixels(upright, *size) == pytest.approx((face.left, face.top, face.right, face.bottom), abs=1)


def test_merge_into_a_sidecar_written_by_exiftool(tmp_path):
    """exiftool's own spelling: one rdf:Description per namespace, its own region, no marker."""
    photo = _photo(tmp_path)
    path = tmp_path / "photo.jpg.xmp"
    exiftool(photo)  # fails with the install hint when exiftool is missing
    subprocess.run(["exiftool", "-q", "-o", str(path), "-XMP-xmp:Rating=3", "-XMP-iptcExt:PersonInImage=Zed",
                    "-RegionInfo={AppliedToDimensions={W=400,H=300,Unit=pixel},RegionList=[{Area={W=0.1,H=0.1,"
                    "X=0.5,Y=0.5,Unit=normalized},Name=Zed,Type=Face}]}"], check=True, timeout=60)
    assert sidecar.write_sidecar(photo, SIZE, [ALICE]) == path
    info = exiftool(path)
    assert info["Rating"] == 3 and info["PersonInImage"] == ["Zed", "Alice"]
    assert sorted(region["Name"] for region in info["RegionInfo"]["RegionList"]) == ["Alice", "Zed"]
    assert sidecar.write_sidecar(photo, SIZE, []) == path  # Alice left the database
    info = exiftool(path)
    assert [region["Name"] for region in info["RegionInfo"]["RegionList"]] == ["Zed"]
    assert info["PersonInImage"] == ["Zed"]


def test_no_sidecar_is_written_through_a_folder_swapped_for_a_link_out_of_the_photos(tmp_path):
    from facebatch.detect import Face
    from facebatch.results import LabelledFace
    from facebatch.writers import ImageOutput, XmpSidecarWriter

    folder, outside = tmp_path / "images", tmp_path / "elsewhere"
    (outside / "sub").mkdir(parents=True)
    folder.mkdir()
    _photo(outside / "sub")
    (folder / "sub").symlink_to(outside / "sub")  # after the scan, during the run
    face = LabelledFace(Face(40, 30, 120, 130, 0.99, {}), "Alice", 0.5)
    with pytest.raises(SidecarError, match="a link out of the folder"):
        XmpSidecarWriter(folder).write(ImageOutput("sub/photo.jpg", (face,), 40, 30, 1))
    assert not list(outside.rglob("*.xmp"))


def test_keeping_regions_true_creates_nothing_and_touches_only_sidecars_holding_ours(tmp_path):
    """The mode of a run without --xmp: our regions follow the names, nothing else is written."""
    photo = _photo(tmp_path)
    assert sidecar.keep_our_regions_true(photo, SIZE, [ALICE]) is None
    assert not list(tmp_path.glob("*.xmp"))  # no sidecar is created

    theirs = tmp_path / "photo.jpg.xmp"  # regions another program wrote: not ours to keep
    theirs.write_bytes(xmp.update_sidecar(None, SIZE, [ALICE]).replace(xmp.OUR_NS.encode(), b"urn:x"))
    before = theirs.read_bytes()
    assert sidecar.keep_our_regions_true(photo, SIZE, [BOB]) is None and theirs.read_bytes() == before

    theirs.unlink()
    assert sidecar.write_sidecar(photo, SIZE, [ALICE, BOB]) == theirs
    assert sidecar.keep_our_regions_true(photo, SIZE, [BOB]) == theirs  # Alice left the database
    assert [r["Name"] for r in exiftool(theirs)["RegionInfo"]["RegionList"]] == ["Bob"]
    assert sidecar.keep_our_regions_true(photo, SIZE, []) is None  # ours alone, and nobody named: it goes
    assert not theirs.exists()


def test_sidecars_that_facebatch_never_writes_are_no_concern_of_a_run_taking_regions_out(tmp_path):
    photo = _photo(tmp_path)
    elsewhere = tmp_path / "theirs.xmp"
    elsewhere.write_bytes(xmp.update_sidecar(None, SIZE, [ALICE]))  # even with our data in it
    (tmp_path / "photo.jpg.xmp").symlink_to(elsewhere)
    assert sidecar.remove_our_regions(photo) is None
    assert sidecar.keep_our_regions_true(photo, SIZE, []) is None
    assert b"Alice" in elsewhere.read_bytes()
    with pytest.raises(SidecarError, match="symbolic link"):
        sidecar.write_sidecar(photo, SIZE, [ALICE])  # asked for with --xmp: said why not


def test_taking_our_regions_out_leaves_a_sidecar_without_them_byte_for_byte(tmp_path):
    """--no-xmp, or a failed photo's clean-up in any mode, rewrote sidecars holding nothing of
    facebatch's (re-serialised: quotes, attribute order), and called one that is not XMP a
    failure to take regions out, every run."""
    photo = _photo(tmp_path)
    theirs = tmp_path / "photo.jpg.xmp"
    foreign = (b"<?xpacket begin='' id='W5M0MpCehiHzreSzNTczkc9d'?>\n<x:xmpmeta xmlns:x='adobe:ns:meta/'>"
               b"<rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'><rdf:Description rdf:about='' "
               b"xmlns:xmp='http://ns.adobe.com/xap/1.0/' xmp:Rating='5'/></rdf:RDF></x:xmpmeta>\n"
               b"<?xpacket end='w'?>")
    for content in (foreign, b"garbage, not XML"):
        theirs.write_bytes(content)
        assert sidecar.remove_our_regions(photo) == theirs and theirs.read_bytes() == content
    theirs.write_bytes(xmp.update_sidecar(None, SIZE, [ALICE]) + b" " * xmp.MAX_SIDECAR_BYTES)
    with pytest.raises(SidecarError, match="over facebatch's limit"):
        sidecar.remove_our_regions(photo)  # grown past the limit, it may still hold our regions: said
