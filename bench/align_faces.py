"""Would turning each face upright by its eyes before cropping help?  (A lever for issue 8.)

MTCNN gives five landmarks.  Here each face is rotated about the centre of its box so that the
line between the eyes is level, then cropped as usual.  Same held-out comparison as
bench/flip_average.py: verify pairs (held-out x enrollment photos) at 1.05, and annotate with the
centroid rule, galleries of 1 photo per person (5 draws) and of all photos.
Usage: python bench/align_faces.py
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.flip_average import THRESHOLD, unit  # noqa: E402
from facebatch.config import ExecutionSettings, Settings  # noqa: E402
from facebatch.detect import largest  # noqa: E402
from facebatch.engines import get_engine  # noqa: E402
from facebatch.images import load_image  # noqa: E402
from facebatch.match import KnownPeople, name_photo  # noqa: E402
from tools import calibration_data as data  # noqa: E402
from tools.sample_data import cache_dir  # noqa: E402


def aligned_crop(engine, image: Image.Image, face) -> np.ndarray:
    (lx, ly), (rx, ry) = face.landmarks["left_eye"], face.landmarks["right_eye"]
    angle = math.degrees(math.atan2(ry - ly, rx - lx))
    centre = ((face.left + face.right) / 2, (face.top + face.bottom) / 2)
    turned = image.rotate(angle, resample=Image.BILINEAR, center=centre)
    return engine.crop(turned, face)


def report(label, emb, person, kind):
    enroll, probe = kind == "enroll", kind != "enroll"
    d = np.sqrt(np.maximum(2 - 2 * emb[probe] @ emb[enroll].T, 0))
    same = person[probe][:, None] == person[enroll][None, :]
    said = d <= THRESHOLD
    print(f"{label:10s} verify held-out x enrollment at {THRESHOLD}: accuracy {np.mean(said == same):.4f}, "
          f"false SAME {int(np.sum(said & ~same))}, false DIFFERENT {int(np.sum(~said & same))} of {d.size}; "
          f"nearest different-people pair {d[~same].min():.3f}")
    enrolled = sorted(set(person[enroll]))
    for shape in ("1 photo", "all photos"):
        right = named = known = strangers = 0
        for draw in (range(5) if shape == "1 photo" else range(1)):
            vectors = [emb[enroll & (person == n)] for n in enrolled]
            if shape == "1 photo":
                vectors = [v[draw % len(v):draw % len(v) + 1] for v in vectors]
            starts = np.cumsum([0] + [len(v) for v in vectors[:-1]])
            people = KnownPeople.from_matrix(enrolled, np.asfortranarray(np.concatenate(vectors)), starts)
            for i in np.flatnonzero(probe):
                got = name_photo(emb[i:i + 1], people, THRESHOLD)[0][0]
                if person[i] in enrolled:
                    known, right = known + 1, right + (got == person[i])
                else:
                    strangers, named = strangers + 1, named + (got != "UNKNOWN")
        print(f"{'':10s} annotate, {shape}: {right}/{known} named right, {named}/{strangers} strangers named")


def main() -> None:
    engine = get_engine(Settings(execution=ExecutionSettings(models_root=cache_dir() / "Model")))
    held = data.held_out_part()
    rows = [(p, path, "enroll") for p, paths in held.enroll.items() for path in paths]
    rows += [(p, path, "probe") for p, paths in held.probes.items() for path in paths]
    rows += [(p, path, "stranger") for p, paths in held.strangers.items() for path in paths]
    plain, aligned, kept = [], [], []
    for person, path, kind in rows:
        image = load_image(path)
        face = largest(engine.detector.detect(image, tight_crop_retry=True))
        if face is not None and {"left_eye", "right_eye"} <= set(face.landmarks):
            plain.append(engine.crop(image, face))
            aligned.append(aligned_crop(engine, image, face))
            kept.append((person, kind))
    person = np.array([p for p, _ in kept])
    kind = np.array([k for _, k in kept])
    report("plain", unit(engine.embedder.embed(np.stack(plain))), person, kind)
    report("aligned", unit(engine.embedder.embed(np.stack(aligned))), person, kind)


if __name__ == "__main__":
    main()
