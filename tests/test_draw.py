import numpy as np
from PIL import Image

from facebatch.detect import Face
from facebatch.draw import KNOWN_COLOUR, UNKNOWN_COLOUR, draw_faces, label_text, style_for
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
    # The label's white text, counted on a face in the open, is all there on faces in the top-right
    # and top-left corners: no room above or to the right, so the label is moved inside, not cut off.
    image = Image.new("RGB", (300, 300))

    def drawn(box):
        return draw_faces(image, [LabelledFace(Face(*box, 0.9), "a_long_name_here", 0.3)])

    def text_pixels(out):  # the only red in the picture is the white text, anti-aliased onto green
        return int((np.asarray(out)[..., 0] > 0).sum())

    in_the_open = text_pixels(drawn((100, 150, 150, 190)))
    assert in_the_open > 200
    corner = drawn((250, 0, 300, 40))
    assert corner.size == image.size and text_pixels(corner) == in_the_open
    # moved left of the box (which starts at x = 250), and down into it rather than above row 0
    label = np.all(np.asarray(corner) == KNOWN_COLOUR, axis=2)
    assert label[:, :240].any() and label[1:20, 200:240].all(axis=1).any()
    assert text_pixels(drawn((0, 0, 50, 40))) == in_the_open


def test_labels_show_the_name_and_distance_and_unknown_keeps_its_distance():
    # README: "known faces in green, UNKNOWN in red, each with its name and distance"; with nobody
    # enrolled there is no distance (inf) and the label is the bare name
    face = Face(0, 0, 10, 10, 0.9)
    assert label_text(LabelledFace(face, "ada", 0.5)) == "ada 0.50"
    assert label_text(LabelledFace(face, UNKNOWN, 1.3)) == "UNKNOWN 1.30"
    assert label_text(LabelledFace(face, UNKNOWN, float("inf"))) == "UNKNOWN"
