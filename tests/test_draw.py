import numpy as np
from PIL import Image

from facebatch.detect import Face
from facebatch.draw import KNOWN_COLOUR, UNKNOWN_COLOUR, draw_faces, style_for
from facebatch.results import LabelledFace, UNKNOWN


def colour_count(image, colour):
    return int(np.all(np.asarray(image) == colour, axis=2).sum())


def test_known_and_unknown_faces_get_distinct_colours_and_the_original_is_untouched():
    image = Image.new("RGB", (300, 200), (40, 40, 40))
    faces = [LabelledFace(Face(20, 60, 100, 160, 0.99), "ada", 0.5), LabelledFace(Face(180, 60, 260, 160, 0.99), UNKNOWN, 1.4)]
    out = draw_faces(image, faces)
    assert colour_count(image, KNOWN_COLOUR) == 0
    assert colour_count(out, KNOWN_COLOUR) > 200 and colour_count(out, UNKNOWN_COLOUR) > 200
    # the known face's label sits above its box, on the left half
    known = np.all(np.asarray(out) == KNOWN_COLOUR, axis=2)
    assert known[:60, :150].any() and not known[:, 170:].any()


def test_lines_and_text_scale_with_the_image():
    small_line, small_font = style_for(300, 200)
    big_line, big_font = style_for(6000, 4000)
    assert small_font >= 12 and small_line >= 2
    assert big_font >= 100 and big_line >= 15  # a 6000 px photo viewed to fit a screen shrinks about 5x


def test_labels_stay_inside_the_image_for_faces_at_the_edge():
    image = Image.new("RGB", (300, 300))
    out = draw_faces(image, [LabelledFace(Face(250, 0, 300, 40, 0.9), "a_long_name_here", 0.3)])
    assert out.size == image.size and colour_count(out, KNOWN_COLOUR) > 0
