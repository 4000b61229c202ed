import numpy as np
import pytest
from PIL import Image

from facebatch.detect import Face, unrotate
from facebatch.pipeline import _detect_with_turns


@pytest.mark.parametrize("turns,transpose", [(1, Image.Transpose.ROTATE_90), (2, Image.Transpose.ROTATE_180),
                                             (3, Image.Transpose.ROTATE_270)])
def test_unrotate_maps_a_box_back_to_the_stored_image(turns, transpose):
    original = Image.new("L", (100, 60))
    original.paste(255, (10, 20, 30, 50))  # a white block where the "face" is
    turned = original.transpose(transpose)
    left, top, right, bottom = turned.getbbox()
    back = unrotate(Face(left, top, right, bottom, 1.0), turns, original.size)
    assert (back.left, back.top, back.right, back.bottom) == (10, 20, 30, 50)


def test_sideways_photo_without_exif_needs_try_rotations(engine, celebrity):
    photo = Image.open(sorted((celebrity / "val" / "madonna").glob("*.jpg"))[0]).convert("RGB")
    upright = engine.detector.detect(photo)
    sideways = photo.transpose(Image.Transpose.ROTATE_270)  # turned 90 degrees clockwise, no EXIF tag
    assert engine.detector.detect(sideways) == [] or len(engine.detector.detect(sideways)) < len(upright)
    faces, source, crop_faces = _detect_with_turns(engine, sideways, try_rotations=True)
    assert len(faces) == len(upright) >= 1
    # boxes are in the stored (sideways) image; crops come from the turned-upright copy
    assert all(0 <= f.left < f.right <= sideways.width and 0 <= f.top < f.bottom <= sideways.height for f in faces)
    assert source.size == photo.size and len(crop_faces) == len(faces)


@pytest.mark.parametrize("person", ["ben_afflek", "elton_john", "jerry_seinfeld", "madonna", "mindy_kaling"])
def test_try_rotations_turns_the_photo_upright_not_just_to_any_face(engine, celebrity, person):
    # MTCNN finds some faces lying on their side too (less surely); the turn taken must be upright.
    # (Web-size photos: the second look for photos with no face must not pre-empt the turns.)
    for path in sorted((celebrity / "val" / person).glob("*.jpg")):
        photo = Image.open(path).convert("RGB")
        if not engine.detector.detect(photo):
            continue
        for stored in (Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270):
            turned = photo.transpose(stored)
            if engine.detector.detect(turned):
                continue  # found without turning: try_rotations is not asked
            _, source, _ = _detect_with_turns(engine, turned, try_rotations=True)
            assert np.array_equal(np.asarray(source), np.asarray(photo)), (path.name, stored)
