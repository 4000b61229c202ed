"""Nearest enrolled person for many faces at once: pure numpy, no I/O."""
from __future__ import annotations

import numpy as np

from .results import UNKNOWN


def face_distance(faces: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Euclidean distances (F, G) between unit-length face embeddings (F, D) and known ones (G, D)."""
    if len(faces) == 0 or len(known) == 0:
        return np.zeros((len(faces), len(known)), np.float32)
    # |a - b|^2 = 2 - 2 a.b for unit vectors: one matrix product instead of F*G subtractions.
    squared = 2.0 - 2.0 * (faces @ known.T)
    return np.sqrt(np.maximum(squared, 0.0)).astype(np.float32)


def nearest_person(faces: np.ndarray, known: np.ndarray, person_starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each face: the index of the nearest person and the distance to that person's closest embedding.

    `known` holds each person's embeddings in one contiguous run; `person_starts[p]` is where
    person p's run begins.  With no known embeddings the person is -1 and the distance inf.
    """
    if len(known) == 0 or len(faces) == 0:
        return np.full(len(faces), -1), np.full(len(faces), np.inf, np.float32)
    per_embedding = face_distance(faces, known)
    per_person = np.minimum.reduceat(per_embedding, person_starts, axis=1)
    best = np.argmin(per_person, axis=1)
    return best, per_person[np.arange(len(faces)), best]


def label_faces(faces: np.ndarray, known: np.ndarray, person_starts: np.ndarray, names: list[str],
                threshold: float) -> list[tuple[str, float]]:
    """(name, distance) per face; UNKNOWN when the nearest person is farther than `threshold`."""
    best, distance = nearest_person(faces, known, person_starts)
    return [(names[p] if p >= 0 and d <= threshold else UNKNOWN, float(d)) for p, d in zip(best, distance)]
