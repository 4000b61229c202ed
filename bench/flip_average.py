"""Would averaging each face's embedding with its mirror image's help?  (A lever for issue 8.)

On the held-out part of the calibration data (tools/calibration_data.py): the celebrity `val`
photos against the `train` photos, and the held-out strangers.  For plain and flip-averaged
embeddings: verify pairs (held-out x enrollment photos) at 1.05, and annotate with the centroid
rule, galleries of 1 photo per person (5 draws) and of all photos, at 1.05.
Usage: python bench/flip_average.py
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from facebatch.config import ExecutionSettings, Settings  # noqa: E402
from facebatch.detect import largest  # noqa: E402
from facebatch.engines import get_engine  # noqa: E402
from facebatch.images import load_image  # noqa: E402
from facebatch.match import KnownPeople, name_photo  # noqa: E402
from tools import calibration_data as data  # noqa: E402
from tools.sample_data import cache_dir  # noqa: E402

THRESHOLD = 1.05


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def main() -> None:
    engine = get_engine(Settings(execution=ExecutionSettings(models_root=cache_dir() / "Model")))
    held = data.held_out_part()
    rows = [(person, path, "enroll") for person, paths in held.enroll.items() for path in paths]
    rows += [(person, path, "probe") for person, paths in held.probes.items() for path in paths]
    rows += [(person, path, "stranger") for person, paths in held.strangers.items() for path in paths]
    crops, kept = [], []
    for person, path, kind in rows:
        image = load_image(path)
        face = largest(engine.detector.detect(image, tight_crop_retry=True))
        if face is not None:
            crops.append(engine.crop(image, face))
            kept.append((person, kind))
    crops = np.stack(crops)
    plain = engine.embedder.embed(crops)
    flipped = engine.embedder.embed(crops[:, :, ::-1].copy())
    person = np.array([p for p, _ in kept])
    kind = np.array([k for _, k in kept])
    for label, emb in (("plain", plain), ("flip-averaged", unit(plain + flipped))):
        enroll, probe = kind == "enroll", kind != "enroll"
        d = np.sqrt(np.maximum(2 - 2 * emb[probe] @ emb[enroll].T, 0))
        same = person[probe][:, None] == person[enroll][None, :]
        said = d <= THRESHOLD
        print(f"{label:14s} verify held-out x enrollment at {THRESHOLD}: accuracy {np.mean(said == same):.4f}, "
              f"false SAME {int(np.sum(said & ~same))}, false DIFFERENT {int(np.sum(~said & same))} of {d.size}")
        enrolled = sorted(set(person[enroll]))
        for shape in ("1 photo", "all photos"):
            draws = range(5) if shape == "1 photo" else range(1)
            right = strangers_named = known = strangers = 0
            for draw in draws:
                names, vectors = [], []
                for name in enrolled:
                    own = emb[enroll & (person == name)]
                    chosen = own[draw % len(own):draw % len(own) + 1] if shape == "1 photo" else own
                    names.append(name)
                    vectors.append(chosen)
                starts = np.cumsum([0] + [len(v) for v in vectors[:-1]])
                people = KnownPeople.from_matrix(names, np.asfortranarray(np.concatenate(vectors)), starts)
                for i in np.flatnonzero(probe):
                    got = name_photo(emb[i:i + 1], people, THRESHOLD)[0][0]
                    if person[i] in enrolled:
                        known += 1
                        right += got == person[i]
                    else:
                        strangers += 1
                        strangers_named += got != "UNKNOWN"
            print(f"{'':14s} annotate, {shape}: {right}/{known} named right, {strangers_named}/{strangers} strangers "
                  "named")


if __name__ == "__main__":
    main()
