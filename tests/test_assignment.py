import numpy as np

from facebatch.assignment import assign, assign_names
from facebatch.match import KnownPeople, name_photo, person_distances
from facebatch.results import UNKNOWN

NAMES = ["Ada", "Bob", "Cy"]
INF = float("inf")


def test_distinct_nearest_people_are_kept():
    d = np.array([[0.3, 1.2, 1.3], [1.1, 0.5, 1.4]])
    assert assign_names(d, NAMES, 0.9) == [("Ada", 0.30000001192092896), ("Bob", 0.5)]


def test_the_nearer_face_keeps_a_contested_name_and_the_other_takes_its_next_best():
    d = np.array([[0.6, 0.8, 1.3],   # face 0: Ada 0.6, next Bob 0.8
                  [0.4, 1.2, 1.4]])  # face 1: Ada 0.4 (nearer)
    assert assign(d, 0.9).tolist() == [1, 0]
    names = assign_names(d, NAMES, 0.9)
    assert [n for n, _ in names] == ["Bob", "Ada"]


def test_the_loser_is_unknown_when_its_next_best_is_beyond_the_threshold():
    d = np.array([[0.6, 0.95, 1.3], [0.4, 1.2, 1.4]])
    names = assign_names(d, NAMES, 0.9)
    assert [n for n, _ in names] == [UNKNOWN, "Ada"]
    assert abs(names[0][1] - 0.6) < 1e-6  # UNKNOWN keeps the distance to its nearest person


def test_chains_resolve_greedily_by_ascending_distance():
    # face 2 takes Bob (0.2); face 0 then wants Bob but Ada is next; face 1 wants Ada but face 0 holds it at 0.5
    d = np.array([[0.5, 0.3, 1.5], [0.6, 1.5, 0.85], [1.5, 0.2, 1.5]])
    assert assign(d, 0.9).tolist() == [0, 2, 1]


def test_ties_go_to_the_lower_face_index_then_the_lower_person_index():
    d = np.array([[0.5, 0.5, 1.5], [0.5, 0.5, 1.5]])
    assert assign(d, 0.9).tolist() == [0, 1]
    d = np.array([[0.5, 1.5, 1.5], [0.5, 1.5, 1.5]])
    assert assign(d, 0.9).tolist() == [0, -1]


def test_threshold_is_inclusive_and_nan_or_inf_never_match():
    d = np.array([[0.9, np.nan, INF]])
    assert assign(d, 0.9).tolist() == [0]
    assert assign(np.array([[np.nan, INF, 0.91]]), 0.9).tolist() == [-1]


def test_no_faces_or_no_people():
    assert assign(np.zeros((0, 3)), 0.9).tolist() == []
    assert assign_names(np.zeros((2, 0)), [], 0.9) == [(UNKNOWN, INF), (UNKNOWN, INF)]


def test_many_faces_each_name_at_most_once():
    rng = np.random.default_rng(0)
    d = rng.uniform(0.2, 1.2, size=(40, 15))
    chosen = assign(d, 0.9)
    named = chosen[chosen >= 0]
    assert len(named) == len(set(named.tolist()))
    assert all(d[f, p] <= 0.9 for f, p in enumerate(chosen) if p >= 0)


def test_person_distances_are_to_each_persons_centroid():
    rng = np.random.default_rng(1)
    known = rng.normal(size=(5, 8)).astype(np.float32)
    known /= np.linalg.norm(known, axis=1, keepdims=True)
    faces = rng.normal(size=(3, 8)).astype(np.float32)
    faces /= np.linalg.norm(faces, axis=1, keepdims=True)
    starts = np.array([0, 2, 3])  # person 0: rows 0-1, person 1: row 2, person 2: rows 3-4
    centroids = np.stack([known[0:2].sum(0), known[2:3].sum(0), known[3:5].sum(0)])
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    expected = np.linalg.norm(faces[:, None] - centroids[None], axis=2)
    people = KnownPeople.from_matrix(["a", "b", "c"], np.asfortranarray(known), starts)
    np.testing.assert_allclose(person_distances(faces, people), expected, atol=1e-5)
    assert person_distances(faces[:0], people).shape == (0, 3)


def test_name_photo_gives_a_contested_name_to_the_nearer_face():
    ada = np.array([1.0, 0.0, 0.0], np.float32)
    bob = np.array([0.0, 1.0, 0.0], np.float32)
    people = KnownPeople.from_matrix(["ada", "bob"], np.asfortranarray(np.stack([ada, bob])), np.array([0, 1]))
    near = np.array([0.99, 0.14, 0.0], np.float32)
    nearer = np.array([1.0, 0.02, 0.0], np.float32)
    faces = np.stack([near / np.linalg.norm(near), nearer / np.linalg.norm(nearer)])
    names = [name for name, _ in name_photo(faces, people, threshold=0.5)]
    assert names == ["UNKNOWN", "ada"]  # bob is too far for the first face
