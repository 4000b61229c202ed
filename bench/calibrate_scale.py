"""How `facebatch calibrate`'s analysis scales with the number of photos and people.

Synthetic unit embeddings (people x photos, each person a random direction plus noise; no photos,
no TensorFlow), through what calibrate runs after embedding: `calibration.pair_distances`,
`suspect_pairs` and `recommend`.  Prints the wall time and the process's peak RSS.
Usage: python bench/calibrate_scale.py PEOPLE PHOTOS_PER_PERSON
"""
from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from facebatch import calibration  # noqa: E402


def main() -> None:
    people, per_person = int(sys.argv[1]), int(sys.argv[2])
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(people, 128))
    embeddings = np.repeat(centres, per_person, axis=0) + 0.9 * rng.normal(size=(people * per_person, 128))
    embeddings = (embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)).astype(np.float32)
    labels = np.repeat([f"p{i:05d}" for i in range(people)], per_person)
    start = time.perf_counter()
    distances, same = calibration.pair_distances(embeddings, labels)
    calibration.suspect_pairs(distances, same, len(labels))
    calibration.recommend(embeddings, labels, current_verify=1.11, current_annotate=1.12)
    print(f"{people} people x {per_person} photos: {time.perf_counter() - start:.1f} s, "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB")


if __name__ == "__main__":
    main()
