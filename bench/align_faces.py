"""Would turning each face upright by its eyes before cropping help?  (A lever for issue 8.)

MTCNN gives five landmarks.  Each face is rotated about the centre of its box so that the line
between the eyes is level, then cropped as usual; the held-out comparison of bench/held_out.py.
Usage: python bench/align_faces.py
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.held_out import engine, held_out_faces, report  # noqa: E402


def aligned_crop(model, image: Image.Image, face) -> np.ndarray:
    (lx, ly), (rx, ry) = face.landmarks["left_eye"], face.landmarks["right_eye"]
    angle = math.degrees(math.atan2(ry - ly, rx - lx))
    centre = ((face.left + face.right) / 2, (face.top + face.bottom) / 2)
    return model.crop(image.rotate(angle, resample=Image.BILINEAR, center=centre), face)


def main() -> None:
    model = engine()
    found, person, kind = held_out_faces(model)
    report("plain", model.embedder.embed(np.stack([model.crop(im, f) for im, f in found])), person, kind)
    report("aligned", model.embedder.embed(np.stack([aligned_crop(model, im, f) for im, f in found])), person, kind)


if __name__ == "__main__":
    main()
