"""Naming faces against the enrolled gallery: pure numpy, no I/O.

The rule (issue 8, docs/calibration.md): a face is compared with each person's centroid, the
mean of that person's unit embeddings renormalised to unit length, and named after the nearest
centroid when it is within the threshold.  Unlike the nearest of a person's N photos, the
distance from a stranger to a centroid does not shrink as N grows, so one threshold serves
galleries of 1 photo per person and of 20; with 1 photo the centroid is that photo, and the
distance is the one `verify` compares.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .assignment import assign_names
from .results import UNKNOWN, LabelledFace

if TYPE_CHECKING:
    from .config import LabelSettings
    from .detect import Face

# Bump when label_image would name the same stored faces differently, so that manifests made
# by an older facebatch are relabelled (annotation.labels_key includes it).
LABEL_RULE = "nearest centroid, one name per photo/1"


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
    # The nearest person owns the nearest embedding, and for unit vectors the nearest embedding
    # is the one with the largest dot product: one matrix product and one argmax over (F, G),
    # with no per-element square roots.  That keeps a 50,000-embedding gallery under 1 ms a face.
    similarity = faces @ known.T
    nearest = np.argmax(similarity, axis=1)
    best_similarity = similarity[np.arange(len(faces)), nearest]
    distance = np.sqrt(np.maximum(2.0 - 2.0 * best_similarity, 0.0)).astype(np.float32)
    person = np.searchsorted(person_starts, nearest, side="right") - 1
    return person, distance


def person_centroids(known: np.ndarray, person_starts: np.ndarray) -> np.ndarray:
    """(P, D) unit-length centroids: each person's embeddings summed and renormalised."""
    if len(known) == 0 or len(person_starts) == 0:
        return np.zeros((0, known.shape[1] if known.ndim == 2 else 0), np.float32)
    # float32 sums of unit vectors are exact enough, and summing the column-major matrix that
    # Gallery.matrix() returns in place is 3x faster than converting it first.
    sums = np.add.reduceat(np.asarray(known, np.float32), np.asarray(person_starts, np.int64), axis=0)
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    # Column-major for `faces @ centroids.T`, as Gallery.matrix() lays out the embeddings.
    return np.asfortranarray(sums / np.maximum(norms, 1e-12), dtype=np.float32)


@dataclass(frozen=True)
class KnownPeople:
    """The enrolled people as annotate matches against them: built once per run, in the parent,
    and sent to each worker once.  Centroids are float64, so that a face's distances do not
    depend on how many other faces share its matrix product.

    A person may have several centroids (Gallery.matrix: their enrolled photos, and each group
    of faces named as them); a face's distance to the person is to the nearest of them."""

    names: tuple[str, ...]  # one per person, in order
    centroids: np.ndarray = field(compare=False)  # (C, D) float64, unit length, each person's consecutive
    first_centroid: np.ndarray = field(compare=False, default=None)  # (P,) index of each person's first

    @classmethod
    def from_matrix(cls, names: list[str], known: np.ndarray, starts: np.ndarray) -> "KnownPeople":
        """From Gallery.matrix(): the name of each appearance (a person's are consecutive), the
        embeddings grouped by appearance, and the start row of each appearance."""
        centroids = person_centroids(known, starts).astype(np.float64)
        firsts = [i for i, name in enumerate(names) if i == 0 or names[i - 1] != name]
        return cls(tuple(names[i] for i in firsts), centroids, np.asarray(firsts, np.int64))


def person_distances(faces: np.ndarray, people: KnownPeople) -> np.ndarray:
    """(F, P) distance from each face to each person's nearest centroid, float64."""
    if len(faces) == 0 or len(people.names) == 0:
        return np.zeros((len(faces), len(people.names)), np.float64)
    similarity = np.asarray(faces, np.float64) @ people.centroids.T
    distances = np.sqrt(np.maximum(2.0 - 2.0 * similarity, 0.0))
    if len(people.centroids) == len(people.names):
        return distances  # one centroid each, the usual case
    return np.minimum.reduceat(distances, people.first_centroid, axis=1)


def name_photo(faces: np.ndarray, people: KnownPeople, threshold: float) -> list[tuple[str, float]]:
    """(name, distance) for the faces of ONE photo: the nearest centroid within `threshold`, and
    never one name for two faces of the photo (the nearer face keeps it; assignment.py)."""
    return assign_names(person_distances(faces, people), people.names, threshold)


@dataclass(frozen=True)
class FaceChoice:
    """Which face of a photo with several faces is the person's it is filed under (enroll)."""

    index: int | None  # into the photo's faces, largest first; None: refused
    likeness: float | None = None  # distance to the person's other photos, when it decided
    looks_like: str = ""  # refused: the enrolled person the largest face is


def face_of_person(distances: np.ndarray, names: tuple[str, ...], person: str, threshold: float) -> FaceChoice:
    """Choose `person`'s face among a photo's faces, from `distances` (K, P): each face, largest
    first, to each enrolled person (`names`, person_distances).

    A photo filed under a person with other faces in it (a party, a stranger behind) is that
    person's by label, but which face is theirs is a guess when it goes by size alone, and a
    wrong guess enrolls a stranger under their name, or a second face of someone enrolled.  So:
    - the face nearest the person's other photos, when one is within `threshold` (annotate
      would name it so);
    - else the largest, the photo's subject, unless annotate would name it as someone else;
    - else none (refused).
    """
    others = [i for i, name in enumerate(names) if name != person]
    if person in names:
        own = distances[:, names.index(person)]
        nearest = int(np.argmin(own))
        if own[nearest] <= threshold:
            return FaceChoice(nearest, float(own[nearest]))
    if others:
        best = others[int(np.argmin(distances[0, others]))]
        if distances[0, best] <= threshold:
            return FaceChoice(None, looks_like=names[best])
    return FaceChoice(0)


def recurring_face(photos: list[np.ndarray], index: int, excluded: np.ndarray, threshold: float
                   ) -> tuple[int, float] | None:
    """For a person whose photos all hold several faces: (face, distance) of photo `index`'s face
    that recurs nearest in the person's other photos, when within `threshold`; else None.

    `photos` holds each photo's face embeddings (K_i, D); `excluded` (K_index,) marks faces not
    to take (someone else enrolled).  The person is who the photos share; a stranger beside them
    in one photo is rarely in the next.
    """
    mine = photos[index]
    others = [faces for i, faces in enumerate(photos) if i != index and len(faces)]
    if not others or not len(mine):
        return None
    distances = face_distance(mine, np.vstack(others)).min(axis=1).astype(np.float64)
    distances[np.asarray(excluded, bool)] = np.inf
    best = int(np.argmin(distances))
    return (best, float(distances[best])) if distances[best] <= threshold else None


def too_near_to_be_two_people(new: np.ndarray, new_names: list[str], known: np.ndarray, known_names: list[str],
                              below: float, rows_at_once: int = 1024) -> list[tuple[int, int, float]]:
    """(row of `new`, row of `known`, distance) for each new embedding whose nearest embedding of
    another person is nearer than `below`, nearest first: one person under two names, or a photo
    in the wrong folder, which would otherwise name that face by a hair.  `rows_at_once` bounds
    the memory: a first enroll of 10,000 photos compares them in blocks, not all at once."""
    if len(new) == 0 or len(known) == 0:
        return []
    found = []
    known_names_array = np.asarray(known_names, dtype=object)
    for start in range(0, len(new), rows_at_once):
        block = face_distance(new[start:start + rows_at_once], known).astype(np.float64)
        mine = np.asarray(new_names[start:start + rows_at_once], dtype=object)
        block[mine[:, None] == known_names_array[None, :]] = np.inf  # the same person's own photos
        nearest = np.argmin(block, axis=1)
        distance = block[np.arange(len(block)), nearest]
        found += [(start + int(row), int(nearest[row]), float(distance[row])) for row in np.flatnonzero(distance < below)]
    return sorted(found, key=lambda row: row[2])


def median_pair_distance(vectors: np.ndarray, at_most: int = 1000) -> float:
    """The median distance between two of `vectors` (unit embeddings, at least two): about 0.85
    for photos of one person, 1.3 and more for different people, however many there are
    (docs/calibration.md).  Above `at_most` rows, a fixed sample of them stands for all."""
    if len(vectors) > at_most:
        vectors = vectors[np.random.default_rng(0).choice(len(vectors), at_most, replace=False)]
    distances = face_distance(np.asarray(vectors, np.float32), np.asarray(vectors, np.float32))
    return float(np.median(distances[np.triu_indices(len(vectors), 1)]))


def nearest_centroid(faces: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each face: the index of the nearest centroid and the distance to it (-1 and inf if none)."""
    if len(centroids) == 0 or len(faces) == 0:
        return np.full(len(faces), -1), np.full(len(faces), np.inf, np.float32)
    person = np.argmax(faces @ centroids.T, axis=1)
    # The reported distance is recomputed for the chosen centroid alone, in float64: a float32
    # matrix product can differ in the last bit with the number of faces in the batch.
    best = np.einsum("ij,ij->i", np.asarray(faces, np.float64), np.asarray(centroids[person], np.float64))
    return person, np.sqrt(np.maximum(2.0 - 2.0 * best, 0.0)).astype(np.float32)


def label_faces(faces: np.ndarray, known: np.ndarray, person_starts: np.ndarray, names: list[str],
                threshold: float) -> list[tuple[str, float]]:
    """(name, distance to that person's centroid) for faces of many photos, each on its own;
    UNKNOWN when the nearest centroid is farther than `threshold`.  Computes the centroids on
    each call: for evaluation and benchmarks; annotate uses KnownPeople and name_photo."""
    best, distance = nearest_centroid(faces, person_centroids(known, person_starts))
    return [(names[p] if p >= 0 and d <= threshold else UNKNOWN, float(d)) for p, d in zip(best, distance)]


def label_image(faces: list[Face], embeddings: np.ndarray, labels: LabelSettings,
                known: KnownPeople) -> tuple[LabelledFace, ...]:
    """Names for one image's faces from their embeddings: the one function both the first run
    and a relabel use, always on one image at a time, so both give the same bits."""
    if not faces:
        return ()
    pairs = name_photo(np.asarray(embeddings, np.float32), known, labels.threshold)
    return tuple(LabelledFace(face, name, distance) for face, (name, distance) in zip(faces, pairs))
