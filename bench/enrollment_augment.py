"""Would enrolling each photo as several views help?  (A lever for issue 8 that costs annotate nothing.)

Only the enrollment side is augmented: each enrollment photo's embedding is replaced by the
normalised sum of the embeddings of several views of its face (its mirror image, crops 0.2 and
0.4 of the box's width larger instead of 0.3), while the faces being named stay plain, so the
annotate hot path is unchanged.  The held-out comparison of bench/held_out.py at verify's and
annotate's defaults.
Usage: python bench/enrollment_augment.py
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.held_out import engine, held_out_faces, report, unit  # noqa: E402
from facebatch.embed import face_crop  # noqa: E402


def main() -> None:
    model = engine()
    found, person, kind = held_out_faces(model)
    base = model.spec.crop

    def embed(margin: float = base.margin, mirrored: bool = False) -> np.ndarray:
        crop = type(base)(base.shape, margin, base.edge)
        crops = np.stack([face_crop(image, face, crop) for image, face in found])
        return model.embedder.embed(crops[:, :, ::-1].copy() if mirrored else crops)

    plain, mirrored, smaller, larger = embed(), embed(mirrored=True), embed(0.2), embed(0.4)
    enrolled = kind == "enroll"

    def enrolled_as(views: np.ndarray) -> np.ndarray:
        out = plain.copy()
        out[enrolled] = unit(views[enrolled])
        return out

    for threshold in (model.spec.verify_threshold, model.spec.default_threshold):
        report("plain", plain, person, kind, threshold)
        report("+ mirror", enrolled_as(plain + mirrored), person, kind, threshold)
        report("+ margins", enrolled_as(plain + smaller + larger), person, kind, threshold)
        report("+ both", enrolled_as(plain + mirrored + smaller + larger), person, kind, threshold)


if __name__ == "__main__":
    main()
