"""Boxes and labels on a copy of an image: pure Pillow, no I/O."""
from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont

from .results import UNKNOWN, LabelledFace

KNOWN_COLOUR = (0, 200, 80)
UNKNOWN_COLOUR = (235, 40, 40)
_font_cache: dict[int, ImageFont.ImageFont] = {}


def _font(size: int) -> ImageFont.ImageFont:
    if size not in _font_cache:
        _font_cache[size] = ImageFont.load_default(size=size)  # Pillow's bundled scalable font
    return _font_cache[size]


def style_for(width: int, height: int) -> tuple[int, int]:
    """(line width, font size) that stay legible from a 300 px thumbnail to a 6000 px photo."""
    longest = max(width, height)
    return max(2, round(longest / 300)), max(12, round(longest / 45))


def label_text(face: LabelledFace) -> str:
    return face.name if face.name == UNKNOWN and face.distance == float("inf") else f"{face.name} {face.distance:.2f}"


def draw_faces(image: Image.Image, faces: list[LabelledFace] | tuple[LabelledFace, ...]) -> Image.Image:
    """A copy of `image` with each face boxed and labelled; UNKNOWN faces in a distinct colour."""
    return draw_faces_onto(image.copy(), faces)


def draw_faces_onto(out: Image.Image, faces: list[LabelledFace] | tuple[LabelledFace, ...]) -> Image.Image:
    """Like draw_faces, but on `out` itself: saves a copy of a 12 MP photo when the original is done with."""
    canvas = ImageDraw.Draw(out)
    line, font_size = style_for(*out.size)
    font = _font(font_size)
    for face in faces:
        box = face.face
        colour = UNKNOWN_COLOUR if face.name == UNKNOWN else KNOWN_COLOUR
        canvas.rectangle((box.left, box.top, box.right, box.bottom), outline=colour, width=line)
        text = label_text(face)
        left, top, right, bottom = canvas.textbbox((0, 0), text, font=font)
        text_w, text_h = right - left, bottom - top
        pad = max(2, font_size // 5)
        # Above the box when there is room, else inside its top edge; kept within the image.
        y = box.top - text_h - 2 * pad if box.top - text_h - 2 * pad >= 0 else box.top
        x = min(max(0, box.left), max(0, out.width - text_w - 2 * pad))
        canvas.rectangle((x, y, x + text_w + 2 * pad, y + text_h + 2 * pad), fill=colour)
        canvas.text((x + pad - left, y + pad - top), text, fill=(255, 255, 255), font=font)
    return out
