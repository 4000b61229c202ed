"""One name per face within a photo: pure numpy, no I/O.

Two faces in one photo are never the same person.  Given the distances from each face of ONE
photo to each enrolled person (under whatever rule matching uses, e.g. the nearest of the person's
embeddings: match.person_distances), the names are handed out greedily by ascending distance over all
(face, person) pairs within the threshold: the nearest pair is settled first, so the nearer face
keeps a contested name, and the other face takes its next-best person still free within the
threshold, or UNKNOWN.

Ties are broken deterministically: pairs at exactly the same distance are taken in order of face
index (the report's face order), then person index (the order of `names`).

Greedy is not the assignment that minimises the total distance (the Hungarian method would), and
that is on purpose: the issue's rule is "the nearer face keeps it", which greedy is, pair by pair.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .results import UNKNOWN


def assign(distances: np.ndarray, threshold: float) -> np.ndarray:
    """The person index given to each face (-1: UNKNOWN), each person to at most one face."""
    distances = np.asarray(distances, np.float64)
    faces, people = distances.shape if distances.ndim == 2 else (len(distances), 0)
    chosen = np.full(faces, -1, np.int64)
    if faces == 0 or people == 0:
        return chosen
    f, p = np.nonzero(distances <= threshold)  # NaN and inf are never within
    d = distances[f, p]
    # np.lexsort sorts by its last key first: distance, then face index, then person index.
    taken: set[int] = set()
    for k in np.lexsort((p, f, d)):
        if chosen[f[k]] < 0 and p[k] not in taken:
            chosen[f[k]] = p[k]
            taken.add(int(p[k]))
    return chosen


def assign_names(distances: np.ndarray, names: Sequence[str], threshold: float) -> list[tuple[str, float]]:
    """(name, distance) per face of one photo, no name twice.

    The distance is to the person given, or for UNKNOWN to the nearest person (inf with nobody
    enrolled), as the report shows it today.
    """
    distances = np.asarray(distances, np.float32).reshape(len(distances), len(names))
    chosen = assign(distances, threshold)
    out = []
    for face, person in enumerate(chosen):
        if person >= 0:
            out.append((names[person], float(distances[face, person])))
        else:
            out.append((UNKNOWN, float(distances[face].min()) if len(names) else float("inf")))
    return out
