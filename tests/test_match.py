import numpy as np
import pytest

from facebatch.match import (KnownPeople, face_distance, face_of_person, label_faces, name_photo, nearest_centroid,
                             nearest_person, person_centroids, person_distances)
from facebatch.results import UNKNOWN


def unit(*values):
    v = np.array(values, np.float32)
    return v / np.linalg.norm(v)


def test_face_distance_is_euclidean_between_unit_vectors():
    a = np.stack([unit(1, 0, 0), unit(0, 1, 0)])
    b = np.stack([unit(1, 0, 0), unit(0, 0, 1), unit(1, 1, 0)])
    expected = np.linalg.norm(a[:, None] - b[None], axis=2)
    np.testing.assert_allclose(face_distance(a, b), expected, atol=1e-6)


def test_nearest_person_takes_the_closest_of_each_persons_embeddings():
    # person 0 has two embeddings, person 1 one; the probe is nearest to person 0's second one
    known = np.stack([unit(1, 0, 0), unit(0, 0, 1), unit(0, 1, 0)])
    starts = np.array([0, 2])
    probe = np.stack([unit(0, 0.1, 1)])
    person, distance = nearest_person(probe, known, starts)
    assert person.tolist() == [0]
    np.testing.assert_allclose(distance, [np.linalg.norm(probe[0] - known[1])], atol=1e-6)


def test_label_faces_applies_the_threshold():
    known = np.stack([unit(1, 0), unit(0, 1)])
    probes = np.stack([unit(1, 0.05), unit(1, 1)])
    labels = label_faces(probes, known, np.array([0, 1]), ["ada", "bob"], threshold=0.5)
    assert labels[0][0] == "ada" and labels[0][1] < 0.1
    assert labels[1][0] == UNKNOWN and abs(labels[1][1] - 0.7654) < 1e-3


def test_empty_gallery_makes_everyone_unknown():
    labels = label_faces(np.stack([unit(1, 0)]), np.zeros((0, 2), np.float32), np.zeros(0, np.int64), [], 1.0)
    assert labels == [(UNKNOWN, float("inf"))]


def test_nearest_person_agrees_with_brute_force_on_a_large_uneven_gallery():
    rng = np.random.default_rng(7)
    counts = rng.integers(1, 6, size=300)  # 300 people with 1 to 5 embeddings each
    known = rng.standard_normal((counts.sum(), 16)).astype(np.float32)
    known /= np.linalg.norm(known, axis=1, keepdims=True)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    owners = np.repeat(np.arange(len(counts)), counts)
    probes = rng.standard_normal((50, 16)).astype(np.float32)
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    person, distance = nearest_person(probes, np.asfortranarray(known), starts)
    brute = np.linalg.norm(probes[:, None] - known[None], axis=2)
    per_person = np.array([[row[owners == p].min() for p in range(len(counts))] for row in brute])
    assert person.tolist() == per_person.argmin(axis=1).tolist()
    np.testing.assert_allclose(distance, per_person.min(axis=1), atol=1e-5)


def test_label_faces_compares_with_each_persons_centroid():
    # ada: two photos either side of the probe; bob: one photo nearer than either of ada's.
    # The nearest single photo is bob's, but ada's centroid is nearer still.
    known = np.stack([unit(1, 0.6, 0), unit(1, -0.6, 0), unit(1, 0, 0.5)])
    probe = np.stack([unit(1, 0, 0)])
    assert nearest_person(probe, known, np.array([0, 2]))[0].tolist() == [1]
    name, distance = label_faces(probe, known, np.array([0, 2]), ["ada", "bob"], threshold=1.0)[0]
    assert name == "ada" and distance < 1e-3


def test_person_centroids_are_unit_means_and_agree_with_brute_force():
    rng = np.random.default_rng(3)
    counts = rng.integers(1, 6, size=200)
    known = rng.standard_normal((counts.sum(), 16)).astype(np.float32)
    known /= np.linalg.norm(known, axis=1, keepdims=True)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    owners = np.repeat(np.arange(len(counts)), counts)
    centroids = person_centroids(np.asfortranarray(known), starts)
    expected = np.stack([known[owners == p].mean(axis=0) for p in range(len(counts))])
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(centroids, expected, atol=1e-5)
    probes = rng.standard_normal((20, 16)).astype(np.float32)
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    person, distance = nearest_centroid(probes, centroids)
    brute = np.linalg.norm(probes[:, None] - expected[None], axis=2)
    assert person.tolist() == brute.argmin(axis=1).tolist()
    np.testing.assert_allclose(distance, brute.min(axis=1), atol=1e-5)


def test_centroids_follow_a_changed_gallery():
    known = np.stack([unit(1, 0), unit(0, 1)])
    assert label_faces(np.stack([unit(1, 0)]), known, np.array([0, 1]), ["ada", "bob"], 0.5)[0][0] == "ada"
    other = np.stack([unit(0, 1), unit(1, 0)])
    assert label_faces(np.stack([unit(1, 0)]), other, np.array([0, 1]), ["ada", "bob"], 0.5)[0][0] == "bob"


def test_the_face_of_a_group_photo_enrolled_is_the_one_like_the_persons_other_photos():
    names = ("ann", "bob")
    # rows: the photo's faces, largest first; columns: distance to ann and to bob
    near_second = np.array([[1.40, 1.30], [0.70, 1.35]])
    choice = face_of_person(near_second, names, "ann", 1.1)
    assert (choice.index, choice.likeness) == (1, 0.70)
    # exactly at the threshold counts as like, as annotate names a face at the threshold
    assert face_of_person(np.array([[1.40, 1.30], [1.10, 1.35]]), names, "ann", 1.1).index == 1


def test_without_a_likeness_the_largest_is_taken_unless_it_is_someone_else():
    names = ("ann", "bob")
    unlike_anyone = np.array([[1.30, 1.25], [1.20, 1.40]])
    assert face_of_person(unlike_anyone, names, "ann", 1.1) == face_of_person(unlike_anyone, names, "cy", 1.1)
    assert face_of_person(unlike_anyone, names, "ann", 1.1).index == 0
    largest_is_bob = np.array([[1.30, 0.60], [1.20, 1.40]])
    refused = face_of_person(largest_is_bob, names, "ann", 1.1)
    assert (refused.index, refused.looks_like) == (None, "bob")
    # a new person (no photos of theirs yet): the largest, unless it is an enrolled person
    assert face_of_person(largest_is_bob, names, "cy", 1.1).looks_like == "bob"
    assert face_of_person(np.zeros((2, 0)), (), "cy", 1.1).index == 0  # an empty database


def two_appearances_of_ada_and_bob():
    # Gallery.matrix(): ada has two appearances (her photos, and a group named as her), bob one
    e = np.eye(3, dtype=np.float32)
    return KnownPeople.from_matrix(["ada", "ada", "bob"], np.asfortranarray(e), np.array([0, 1, 2])), e


def test_a_person_with_several_centroids_is_one_person_at_the_nearest_of_them():
    people, e = two_appearances_of_ada_and_bob()
    assert people.names == ("ada", "bob") and len(people.centroids) == 3
    # a face at ada's first centroid is 0 from ada (her nearest centroid), not sqrt(2) (her farthest)
    np.testing.assert_allclose(person_distances(e[:1], people), [[0.0, np.sqrt(2)]], atol=1e-6)
    np.testing.assert_allclose(person_distances(e[1:2], people), [[0.0, np.sqrt(2)]], atol=1e-6)


def test_two_faces_of_one_photo_never_share_a_name_through_two_centroids_of_one_person():
    people, e = two_appearances_of_ada_and_bob()
    # each face sits on one of ada's two centroids: only one of them may be ada
    labels = name_photo(e[:2], people, threshold=0.5)
    assert [name for name, _ in labels] == ["ada", UNKNOWN]


def test_a_distance_exactly_at_the_threshold_is_named():
    # "UNKNOWN when the nearest centroid is farther than threshold": at it, the face is named
    known = np.stack([unit(1, 0), unit(0, 1)])
    probe = np.stack([unit(1, 0.3)])
    _, distance = label_faces(probe, known, np.array([0, 1]), ["ada", "bob"], threshold=1.0)[0]
    assert 0 < distance < 1
    assert label_faces(probe, known, np.array([0, 1]), ["ada", "bob"], threshold=distance)[0] == ("ada", distance)


def test_the_face_a_persons_group_photos_share_is_theirs():
    from facebatch.match import recurring_face

    person, stranger_a, stranger_b, enrolled = np.eye(4, dtype=np.float32)
    photos = [np.stack([stranger_a, person]), np.stack([stranger_b, person * 0.8 + stranger_b * 0.6])]
    assert recurring_face(photos, 0, np.zeros(2, bool), 1.1) == (1, pytest.approx(0.632, abs=1e-3))
    assert recurring_face(photos, 1, np.zeros(2, bool), 1.1)[0] == 1
    # someone enrolled in both photos is never taken, and nothing recurs within the threshold: None
    both = [np.stack([enrolled, person]), np.stack([enrolled, stranger_b])]
    assert recurring_face(both, 0, np.array([True, False]), 1.1) is None
    assert recurring_face(photos[:1], 0, np.zeros(2, bool), 1.1) is None  # one photo: nothing to share


def test_photos_of_two_people_too_near_to_be_two_are_found_in_blocks_nearest_first():
    from facebatch.match import too_near_to_be_two_people

    ada, bob, cy = np.eye(3, dtype=np.float32)
    near_ada = np.array([0.96, 0.28, 0], np.float32)  # 0.283 from ada
    known = np.stack([ada, bob, cy, near_ada])
    names = ["ada", "bob", "cy", "dee"]
    new = np.stack([near_ada, bob])
    for rows_at_once in (1, 1024):
        found = too_near_to_be_two_people(new, ["dee", "bob"], known, names, 0.5, rows_at_once)
        # dee's photo is near ada's; bob's own photo does not count for bob
        assert [(row, column) for row, column, _ in found] == [(0, 0)]
        assert found[0][2] == pytest.approx(0.283, abs=1e-3)
    assert too_near_to_be_two_people(new[:0], [], known, names, 0.5) == []
