"""enroll's retry for photos cut tight to the face: bounded in memory, and right in its coordinates.

The retry pads the photo with a border so MTCNN sees context around a face that fills it.  It
runs on a copy whose longer side is at most detect._TIGHT_CROP_RETRY_SIDE: at full size one
100 MP photo with no face made MTCNN take 24 GB.
"""
from __future__ import annotations

import pytest
from PIL import Image

from facebatch import detect
from facebatch.detect import largest


@pytest.fixture(scope="module")
def tight_crop(engine, celebrity) -> Image.Image:
    """A real face cut to its detector box, as a user cutting faces out would do (the largest
    face of the validation photos of Madonna)."""
    faces = []
    for path in sorted((celebrity / "val" / "madonna").glob("*.jpg")):
        photo = Image.open(path).convert("RGB")
        face = largest(engine.detector.detect(photo))
        if face is not None:
            faces.append((face.width, photo.crop((face.left, face.top, face.right, face.bottom))))
    return max(faces, key=lambda pair: pair[0])[1]


def test_the_retry_sees_a_bounded_copy_of_a_huge_photo(engine, monkeypatch):
    seen = []
    monkeypatch.setattr(engine.detector, "_run", lambda pixels: seen.append(pixels.shape) or [])
    assert engine.detector.detect(Image.new("RGB", (12000, 9000), (200, 200, 200)), tight_crop_retry=True) == []
    retry = seen[-1]  # the second call: the padded copy
    assert len(seen) == 2
    assert max(retry[:2]) <= detect._TIGHT_CROP_RETRY_SIDE * (1 + 2 * detect._TIGHT_CROP_BORDER) + 2


@pytest.mark.parametrize("side", [None, 1600])
def test_the_retry_finds_a_tight_crop_at_any_size_and_its_box_lands_on_the_photo(engine, tight_crop, side):
    photo = tight_crop
    if side:  # larger than the retry's copy, so the box found there is scaled back
        photo = tight_crop.resize((round(tight_crop.width * side / tight_crop.height), side), Image.BICUBIC)
        assert max(photo.size) > detect._TIGHT_CROP_RETRY_SIDE
    faces = engine.detector._detect_with_border(photo)  # what detect(..., tight_crop_retry=True) falls back to
    face = largest(faces)
    assert face is not None
    # the box covers most of the photo and stays inside it
    assert 0 <= face.left < face.right <= photo.width and 0 <= face.top < face.bottom <= photo.height
    assert face.width > 0.7 * photo.width and face.height > 0.7 * photo.height
    for x, y in face.landmarks.values():
        assert 0 < x < photo.width and 0 < y < photo.height


def test_enroll_notes_photos_cut_tight_to_the_face_and_not_whole_photos(tmp_path, tight_crop, celebrity, models_root):
    from cli_helpers import run

    people = tmp_path / "People"
    (people / "madonna").mkdir(parents=True)
    tight_crop.save(people / "madonna" / "crop.png")
    whole = sorted((celebrity / "val" / "madonna").glob("*.jpg"))
    for photo in whole[:2]:
        Image.open(photo).save(people / "madonna" / photo.name)
    result = run("enroll", people, "--db", tmp_path / "db.json", "--model-dir", models_root, "-q")
    assert result.exit_code == 0, result.output
    assert "note: 1 of the photos enrolled now are cut tight to the face" in result.output, result.output


@pytest.mark.parametrize("photo_box, tight", [
    ((0, 0, 100, 120), True),  # cut at the detector's box
    ((-5, -5, 105, 125), True),  # a little room on every side: still less than half of what the crop takes
    ((-15, 0, 115, 120), False),  # room at the sides
    ((0, -40, 100, 200), False),  # a portrait: room above and below
])
def test_cut_tight_asks_for_room_on_some_side(photo_box, tight):
    from facebatch.detect import Face
    from facebatch.embed import FaceCrop, cut_tight

    left, top, right, bottom = photo_box  # the photo around a face at (0, 0, 100, 120)
    face = Face(-left, -top, 100 - left, 120 - top, 0.99)
    assert cut_tight(face, FaceCrop("stretched", 0.3, "clamp"), (right - left, bottom - top)) is tight
