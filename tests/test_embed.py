"""Face crops (pure): the box each crop shape cuts, and what fills it past the image edge."""
from __future__ import annotations

import numpy as np
from PIL import Image

from facebatch.detect import Face
from facebatch.embed import FaceCrop, face_crop
from facebatch.weights import get_spec

FACE = Face(10, 20, 50, 70, 0.99)  # 40 wide, 50 high, centre (30, 45)


def test_stretched_box_grows_by_the_same_pixels_on_every_side():
    # 0.3 of the width (12 px) in all, 6 on each side, in both directions: FaceNet's alignment
    assert FaceCrop("stretched", 0.3).box(FACE) == (4, 14, 56, 76)


def test_square_box_keeps_the_aspect():
    assert FaceCrop("square", 0.1).box(FACE) == (2, 17, 58, 72)  # a 55 px square about the centre


def test_keys_name_every_part_of_the_crop():
    assert FaceCrop("square", 0.1).key == "square-0.10"
    assert FaceCrop("stretched", 0.3, "mirror").key == "stretched-0.30-mirror"
    assert FaceCrop("stretched", 0.3, "clamp").key == "stretched-0.30-clamp"
    assert get_spec("facenet").crop.key != get_spec("facenet").version1_crop.key


def test_mirror_fills_past_the_edge_with_the_image_reflected():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(60, 45, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    face = Face(0, 5, 40, 60, 0.99)  # at the edges: the crop reaches past all four
    crop = FaceCrop("stretched", 0.3, "mirror")
    left, top, right, bottom = crop.box(face)
    assert left < 0 and top < 0 and right > 45 and bottom > 60
    padded = np.pad(pixels, ((-top, bottom - 60), (-left, right - 45), (0, 0)), mode="symmetric")
    expected = np.asarray(Image.fromarray(padded).resize((160, 160), Image.BILINEAR))
    np.testing.assert_array_equal(face_crop(image, face, crop), expected)
    black = face_crop(image, face, FaceCrop("stretched", 0.3))
    assert black[:, 0].max() == 0 and face_crop(image, face, crop)[:, 0].max() > 0


def test_clamp_keeps_only_the_part_inside_the_image_and_stretches_it():
    rng = np.random.default_rng(2)
    image = Image.fromarray(rng.integers(0, 256, size=(60, 45, 3), dtype=np.uint8))
    face = Face(0, 5, 40, 60, 0.99)  # the grown box reaches past all four edges
    expected = np.asarray(image.resize((160, 160), Image.BILINEAR))  # so the part inside is the whole image
    np.testing.assert_array_equal(face_crop(image, face, FaceCrop("stretched", 0.3, "clamp")), expected)


def test_mirror_pads_again_when_the_margin_is_wider_than_the_image():
    image = Image.fromarray(np.full((8, 6, 3), 200, np.uint8))
    out = face_crop(image, Face(0, 0, 6, 8, 0.99), FaceCrop("stretched", 3.0, "mirror"))
    assert out.shape == (160, 160, 3) and (out == 200).all()


def test_a_crop_inside_the_image_is_the_same_whatever_the_edge_rule():
    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, (200, 200, 3), dtype=np.uint8))
    for edge in ("mirror", "clamp"):
        np.testing.assert_array_equal(face_crop(image, FACE, FaceCrop("stretched", 0.3, edge)),
                                      face_crop(image, FACE, FaceCrop("stretched", 0.3)))
