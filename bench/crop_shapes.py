"""Which face crop should feed FaceNet?  (Issue 8: the crop behind facebatch.embed.FaceCrop.)

Each crop shape is compared on the CALIBRATION part (tools/calibration_data.py: the celebrity
`train` photos and t1.jpg's strangers), where the choice is made, by threshold-free figures: the
area under the ROC curve of all pairs, the nearest different-people pair, and the share of
same-person pairs nearer than it.  The HELD-OUT part (`val` photos against the enrollment photos,
and the held-out strangers) is printed for information, with bench/held_out.report at each crop's
own threshold (the 1st percentile of its calibration different-people distances).

Usage: python bench/crop_shapes.py
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import bench.held_out as held_out  # noqa: E402
from facebatch.detect import largest  # noqa: E402
from facebatch.embed import FaceCrop, face_crop  # noqa: E402
from facebatch.images import load_image  # noqa: E402
from tools import calibration_data as data  # noqa: E402


def per_axis(image, face, margin):
    """The box grown by `margin` of its width horizontally and of its height vertically."""
    dx, dy = face.width * margin / 2, face.height * margin / 2
    box = tuple(int(round(v)) for v in (face.left - dx, face.top - dy, face.right + dx, face.bottom + dy))
    return np.asarray(image.crop(box).resize((160, 160), Image.BILINEAR), np.uint8)


def of(crop: FaceCrop):
    return lambda image, face: face_crop(image, face, crop)


SHAPES = {
    "square 0.10 (before)": of(FaceCrop("square", 0.1)),
    "square 0.20": of(FaceCrop("square", 0.2)),
    "square 0.30": of(FaceCrop("square", 0.3)),
    "per-axis 0.05": lambda i, f: per_axis(i, f, 0.05),
    "per-axis 0.10": lambda i, f: per_axis(i, f, 0.1),
    "per-axis 0.20": lambda i, f: per_axis(i, f, 0.2),
    "per-axis 0.30": lambda i, f: per_axis(i, f, 0.3),
    "stretched 0.15": of(FaceCrop("stretched", 0.15)),
    "stretched 0.20": of(FaceCrop("stretched", 0.2)),
    "stretched 0.25": of(FaceCrop("stretched", 0.25)),
    "stretched 0.30": of(FaceCrop("stretched", 0.3)),
    "stretched 0.35": of(FaceCrop("stretched", 0.35)),
    "stretched 0.30 clamped (now)": of(FaceCrop("stretched", 0.3, "clamp")),
    "stretched 0.30 mirror": of(FaceCrop("stretched", 0.3, "mirror")),
}


def auc(same: np.ndarray, different: np.ndarray) -> float:
    """P(a different-people pair is farther apart than a same-person pair)."""
    ranks = np.concatenate([same, different]).argsort().argsort() + 1
    return float((ranks[len(same):].sum() - len(different) * (len(different) + 1) / 2) / (len(same) * len(different)))


def calibration_faces(model):
    part = data.calibration_part()
    found, person = [], []
    for name, paths in part.enroll.items():
        for path in paths:
            image = load_image(path)
            face = largest(model.detector.detect(image, tight_crop_retry=True))
            if face is not None:
                found.append((image, face))
                person.append(name)
    for path in part.group_strangers:
        image = load_image(path)
        for i, face in enumerate(model.detector.detect(image)):
            found.append((image, face))
            person.append(f"stranger {i}")
    return found, np.array(person)


def main() -> None:
    model = held_out.engine()
    cal_found, cal_person = calibration_faces(model)
    held_found, held_person, held_kind = held_out.held_out_faces(model)
    upper = np.triu_indices(len(cal_found), 1)
    same = (cal_person[:, None] == cal_person[None, :])[upper]
    both_strangers = np.char.startswith(cal_person, "stranger")
    both_strangers = (both_strangers[:, None] & both_strangers[None, :])[upper]  # unknown relation: left out
    for name, cut in SHAPES.items():
        emb = model.embedder.embed(np.stack([cut(image, face) for image, face in cal_found]))
        distance = np.sqrt(np.maximum(2 - 2 * emb @ emb.T, 0))[upper]
        pos, neg = distance[same & ~both_strangers], distance[~same & ~both_strangers]
        print(f"{name:28s} calibration: AUC {auc(pos, neg):.4f}, nearest different-people pair {neg.min():.3f}, "
              f"same-person pairs nearer than that {np.mean(pos < neg.min()):.3f}, "
              f"different 1% {np.quantile(neg, .01):.3f}")
        held = model.embedder.embed(np.stack([cut(image, face) for image, face in held_found]))
        held_out.report(name[:14], held, held_person, held_kind, round(float(np.quantile(neg, 0.01)), 3))


if __name__ == "__main__":
    main()
