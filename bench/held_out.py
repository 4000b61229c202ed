"""The held-out comparison that bench/flip_average.py and bench/align_faces.py share.

`held_out_faces` detects the largest face of every held-out photo (tools/calibration_data.py:
the celebrity `val` photos, the `train` photos they are enrolled from, and the held-out
strangers).  `report` prints verify pairs (held-out x enrollment photos) at `threshold`, and
annotate with the centroid rule for galleries of 1 photo per person (5 draws) and of all photos.
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

THRESHOLD = 1.12  # annotate's default; bench/crop_shapes.py passes each crop's own


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def engine():
    return get_engine(Settings(execution=ExecutionSettings(models_root=cache_dir() / "Model")))


def held_out_faces(engine):
    """[(image, face)] and the person and kind ("enroll", "probe", "stranger") of each, as arrays."""
    held = data.held_out_part()
    rows = [(p, path, "enroll") for p, paths in held.enroll.items() for path in paths]
    rows += [(p, path, "probe") for p, paths in held.probes.items() for path in paths]
    rows += [(p, path, "stranger") for p, paths in held.strangers.items() for path in paths]
    found, kept = [], []
    for person, path, kind in rows:
        image = load_image(path)
        face = largest(engine.detector.detect(image, tight_crop_retry=True))
        if face is not None:
            found.append((image, face))
            kept.append((person, kind))
    return found, np.array([p for p, _ in kept]), np.array([k for _, k in kept])


def report(label: str, emb: np.ndarray, person: np.ndarray, kind: np.ndarray,
           threshold: float = THRESHOLD, verify_threshold: float | None = None) -> None:
    """Verify pairs at `verify_threshold` (`threshold` when not given) and annotate at `threshold`."""
    verify_threshold = threshold if verify_threshold is None else verify_threshold
    enroll, probe = kind == "enroll", kind != "enroll"
    d = np.sqrt(np.maximum(2 - 2 * emb[probe] @ emb[enroll].T, 0))
    same = person[probe][:, None] == person[enroll][None, :]
    said = d <= verify_threshold
    print(f"{label:14s} verify held-out x enrollment at {verify_threshold}: accuracy {np.mean(said == same):.4f}, "
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
                got = name_photo(emb[i:i + 1], people, threshold)[0][0]
                if person[i] in enrolled:
                    known, right = known + 1, right + (got == person[i])
                else:
                    strangers, named = strangers + 1, named + (got != "UNKNOWN")
        print(f"{'':14s} annotate, {shape}: {right}/{known} named right, {named}/{strangers} strangers named")
