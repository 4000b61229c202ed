"""The held-out portraits (tools/calibration_data.portrait_photos): verify on every pair, and annotate
with each person enrolled from one photo, at the default thresholds.

Added after the thresholds were chosen, so these photos played no part in choosing them.
Usage: python bench/portraits.py
"""
from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.held_out import engine  # noqa: E402
from facebatch import weights  # noqa: E402
from facebatch.detect import largest  # noqa: E402
from facebatch.images import load_image  # noqa: E402
from facebatch.match import KnownPeople, name_photo  # noqa: E402
from tools import calibration_data as data  # noqa: E402


def portrait_embeddings(model) -> tuple[list[Path], np.ndarray]:
    paths = data.portrait_photos()
    # Two more strangers for annotate.  Not paired with each other: they may be one man decades
    # apart (docs/calibration.md), so no label of that pair can be trusted.
    paths += sorted(data.facexlib_photos().glob("*/*.jpg"))
    crops, kept = [], []
    for path in paths:
        image = load_image(path)
        face = largest(model.detector.detect(image, tight_crop_retry=True))
        if face is not None:
            crops.append(model.crop(image, face))
            kept.append(path)
    return kept, model.embedder.embed(np.stack(crops))


def main() -> None:
    spec = weights.get_spec("facenet")
    paths, emb = portrait_embeddings(engine())
    person = [p.parent.name for p in paths]
    print(f"{len(paths)} photos of {len(set(person))} people")
    same_d, diff_d = [], []
    for i, j in itertools.combinations(range(len(paths)), 2):
        if person[i].startswith("facexlib") and person[j].startswith("facexlib"):
            continue
        d = float(np.linalg.norm(emb[i] - emb[j]))
        (same_d if person[i] == person[j] else diff_d).append(d)
        if person[i] == person[j]:
            print(f"  same  {paths[i].name:18s} {paths[j].name:18s} {d:.3f}")
    same_d, diff_d = np.array(same_d), np.array(diff_d)
    t = spec.verify_threshold
    print(f"verify at {t}: {len(same_d) + len(diff_d)} pairs, accuracy "
          f"{(np.sum(same_d <= t) + np.sum(diff_d > t)) / (len(same_d) + len(diff_d)):.4f}, false SAME "
          f"{int(np.sum(diff_d <= t))}, false DIFFERENT {int(np.sum(same_d > t))}; farthest same-person pair "
          f"{same_d.max():.3f}, nearest different-people pair {diff_d.min():.3f}")
    enrolled = sorted({p for p in person if person.count(p) > 1})
    first = {p: person.index(p) for p in enrolled}
    people = KnownPeople.from_matrix(enrolled, np.asfortranarray(emb[[first[p] for p in enrolled]]),
                                     np.arange(len(enrolled)))
    right = known = named = strangers = 0
    for i in range(len(paths)):
        if i in first.values():
            continue
        got, distance = name_photo(emb[i:i + 1], people, spec.default_threshold)[0]
        if person[i] in enrolled:
            known, right = known + 1, right + (got == person[i])
        else:
            strangers, named = strangers + 1, named + (got != "UNKNOWN")
        print(f"  annotate {paths[i].name:18s} -> {got} ({distance:.3f})")
    print(f"annotate at {spec.default_threshold}, each of {len(enrolled)} people enrolled from their first photo: "
          f"{right}/{known} named right, {named}/{strangers} strangers named")


if __name__ == "__main__":
    main()
