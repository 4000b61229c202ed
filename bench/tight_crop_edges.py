"""What should fill a face crop past the image edge?  (Issue 8, tight crops: facebatch.embed.FaceCrop.edge.)

A photo cut tight to the face (as users were once asked to enroll) has no pixels around the face,
and FaceNet's crop wants 15 % of the face's width on every side.  On the CALIBRATION part
(tools/calibration_data.py), each `train` photo is cut to its detector box, detected again as
enroll does, and cut out with each filling; then each person is enrolled from ONE tight crop
(5 draws, each person left out in turn as a stranger) and the whole photos are named at the
annotate threshold.  "whole photos" enrolls the whole photos instead, for reference.

Usage: python bench/tight_crop_edges.py
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.held_out import engine  # noqa: E402
from facebatch import weights  # noqa: E402
from facebatch.detect import largest  # noqa: E402
from facebatch.embed import FaceCrop, face_crop  # noqa: E402
from facebatch.images import load_image  # noqa: E402
from tools import calibration_data as data  # noqa: E402

SHAPE = FaceCrop("stretched", 0.3)


def padded_crop(image: Image.Image, face, mode: str) -> np.ndarray:
    """The crop with the part past the edge filled by np.pad's `mode` ("constant" is grey here)."""
    left, top, right, bottom = SHAPE.box(face)
    pixels = np.asarray(image.convert("RGB"))
    pads = ((max(0, -top), max(0, bottom - image.height)), (max(0, -left), max(0, right - image.width)), (0, 0))
    pixels = np.pad(pixels, pads, constant_values=128) if mode == "constant" else np.pad(pixels, pads, mode=mode)
    x, y = left + pads[1][0], top + pads[0][0]
    return np.asarray(Image.fromarray(pixels).crop((x, y, x + right - left, y + bottom - top))
                      .resize((160, 160), Image.BILINEAR), np.uint8)


FILLINGS = {
    "black": lambda im, f: face_crop(im, f, SHAPE),
    "grey": lambda im, f: padded_crop(im, f, "constant"),
    "edge pixel repeated": lambda im, f: padded_crop(im, f, "edge"),
    "mirror": lambda im, f: face_crop(im, f, FaceCrop("stretched", 0.3, "mirror")),
    "clamped, no filling (now)": lambda im, f: face_crop(im, f, FaceCrop("stretched", 0.3, "clamp")),
}


def main() -> None:
    model = engine()
    threshold = weights.get_spec("facenet").default_threshold
    part = data.calibration_part()
    rows = []
    for person, paths in part.enroll.items():
        for path in paths:
            image = load_image(path)
            face = largest(model.detector.detect(image, tight_crop_retry=True))
            if face is None:
                continue
            tight = image.crop((face.left, face.top, face.right, face.bottom))
            tight_face = largest(model.detector.detect(tight, tight_crop_retry=True))
            if tight_face is not None:
                rows.append((person, model.crop(image, face), tight, tight_face))
    whole = model.embedder.embed(np.stack([crop for _, crop, _, _ in rows]))
    people = np.array([p for p, *_ in rows])
    strangers = []
    for path in part.group_strangers:
        image = load_image(path)
        strangers += [model.crop(image, f) for f in model.detector.detect(image)]
    stranger_emb = model.embedder.embed(np.stack(strangers))
    names = sorted(set(people))
    print(f"{len(rows)} calibration photos with a tight crop found; threshold {threshold}")
    for label in ["whole photos", *FILLINGS]:
        enrolled = whole if label == "whole photos" else \
            model.embedder.embed(np.stack([FILLINGS[label](tight, f) for _, _, tight, f in rows]))
        distance_to_whole = np.linalg.norm(enrolled - whole, axis=1)
        right = known = named = offered = 0
        for draw in range(5):
            chosen = [np.flatnonzero(people == n)[draw % np.sum(people == n)] for n in names]
            probes = [i for i in range(len(rows)) if i not in chosen]
            for left_out in [None, *names]:
                keep = [k for k, n in enumerate(names) if n != left_out]
                gallery = enrolled[[chosen[k] for k in keep]]
                d = np.sqrt(np.maximum(2 - 2 * whole[probes] @ gallery.T, 0))
                for row, i in enumerate(probes):
                    got = names[keep[int(d[row].argmin())]] if d[row].min() <= threshold else None
                    if people[i] == left_out:
                        offered, named = offered + 1, named + (got is not None)
                    else:
                        known, right = known + 1, right + (got == people[i])
                nearest = np.sqrt(np.maximum(2 - 2 * stranger_emb @ gallery.T, 0)).min(axis=1)
                offered, named = offered + len(nearest), named + int(np.sum(nearest <= threshold))
        print(f"{label:22s} tight vs whole: median {np.median(distance_to_whole):.3f}, 90th percentile "
              f"{np.quantile(distance_to_whole, 0.9):.3f} | one per person: {right}/{known} named right, "
              f"{named}/{offered} strangers named")


if __name__ == "__main__":
    main()
