"""The real models on real photos: enroll, annotate, verify."""
from __future__ import annotations

import csv
import shutil

import pytest
from PIL import Image, ImageOps

from facebatch import gallery as gallery_db
from facebatch.annotation import annotate
from facebatch.enrollment import enroll
from facebatch.images import load_image
from facebatch.packages import sha256_of_file
from facebatch.results import UNKNOWN
from facebatch.verification import verify_pairs

from cli_helpers import report_rows

# Measured on this data (docs/calibration.md): every validation photo names its person.  The floor
# leaves room for one miss, so that a numerically different CPU does not fail the suite.
VALIDATION_ACCURACY_FLOOR = 0.96
# At verify's 1.11 with the stretched crop these 40 pairs score 0.975: no false SAME, 1 false
# DIFFERENT (with the square crop at 1.05: 0.925, 3 false DIFFERENT).  At the old 1.17 they scored
# 1.0, but 1.17 said SAME for different people elsewhere (docs/calibration.md).
VERIFY_ACCURACY_FLOOR = 0.95


@pytest.fixture(scope="module")
def celebrity_db(tmp_path_factory, celebrity, settings):
    db = tmp_path_factory.mktemp("db") / "DataBase.json"
    outcome = enroll(celebrity / "train", db, settings)
    # 3 of the 93 photos hold no face of the minimum size (two of 23-24 px, one at confidence 0.87)
    assert outcome.added == 90 and outcome.skipped == 3
    return db


def test_enroll_is_idempotent_and_replaces_changed_photos(tmp_path, celebrity, settings, celebrity_db):
    db = tmp_path / "db.json"
    shutil.copy(celebrity_db, db)
    before = db.read_bytes()
    outcome = enroll(celebrity / "train", db, settings)
    assert (outcome.added, outcome.replaced, outcome.unchanged, outcome.saved) == (0, 0, 90, False)
    assert db.read_bytes() == before

    people = tmp_path / "People"  # a folder of its own, in a database of its own
    shutil.copytree(celebrity / "train" / "madonna", people / "madonna")
    own_db = tmp_path / "own.json"
    enroll(people, own_db, settings)
    photo = sorted((people / "madonna").glob("*.jpg"))[1]  # [0] holds no face of the minimum size
    ImageOps.mirror(Image.open(photo)).save(photo)
    outcome = enroll(people, own_db, settings)
    assert (outcome.added, outcome.replaced) == (0, 1)
    entries = [e for e in gallery_db.load(own_db, "facenet").people["madonna"]
               if e.source == f"madonna/{photo.name}"]
    assert len(entries) == 1

    # The same photos in another folder, enrolled into the first database: already there, once.
    outcome = enroll(people, db, settings)
    assert (outcome.added, outcome.replaced) == (1, 0)  # only the mirrored photo is new
    assert sum(1 for w in outcome.warnings if "already enrolled for madonna" in w) == outcome.unchanged


def test_one_photo_is_enrolled_for_one_person_only(tmp_path, celebrity, settings):
    """The same bytes under two names would give that face whichever name is nearer by a hair."""
    people, db = tmp_path / "People", tmp_path / "db.json"
    madonna = sorted((celebrity / "train" / "madonna").glob("*.jpg"))[1:4]
    (people / "madonna").mkdir(parents=True)
    (people / "mindy").mkdir()
    for photo in madonna:
        shutil.copy(photo, people / "madonna" / photo.name)
    shutil.copy(madonna[0], people / "mindy" / "party.jpg")  # filed under both: neither is enrolled
    outcome = enroll(people, db, settings)
    assert (outcome.added, outcome.skipped, outcome.failed) == (2, 2, 2), outcome
    assert sum("the same photo is filed under madonna and mindy" in w for w in outcome.warnings) == 2
    assert set(gallery_db.load(db, "facenet").people) == {"madonna"}

    (people / "mindy" / "party.jpg").unlink()  # fixed: the photo is Madonna's
    outcome = enroll(people, db, settings)
    assert (outcome.added, outcome.failed) == (1, 0), outcome
    shutil.copy(madonna[0], people / "mindy" / "party.jpg")  # filed under both again, once enrolled for her
    outcome = enroll(people, db, settings)
    said = [w for w in outcome.warnings if "the same photo is filed under madonna and mindy" in w]
    assert len(said) == 2 and all(w.endswith("enroll takes one face from a photo: keep it in one person's folder, "
                                             "and put a copy cropped to each other person in theirs") for w in said)
    assert outcome.orphans == 0, outcome  # her entry's photo is still in her folder
    (people / "mindy" / "party.jpg").unlink()
    # moved to another person's folder: relabelled, not enrolled twice
    (people / "mindy" / "moved.jpg").write_bytes((people / "madonna" / madonna[1].name).read_bytes())
    (people / "madonna" / madonna[1].name).unlink()
    outcome = enroll(people, db, settings)
    assert (outcome.added, outcome.relabelled, outcome.failed) == (1, 1, 0), outcome
    stored = gallery_db.load(db, "facenet").people
    assert [e.source for e in stored["mindy"]] == ["mindy/moved.jpg"]
    assert f"madonna/{madonna[1].name}" not in [e.source for e in stored["madonna"]]

    other = tmp_path / "Other"  # another people folder, the photo still in the first
    (other / "ellen").mkdir(parents=True)
    shutil.copy(madonna[2], other / "ellen" / "x.jpg")
    outcome = enroll(other, db, settings)
    assert (outcome.added, outcome.failed) == (0, 1), outcome
    assert any("the same photo is enrolled for madonna" in w for w in outcome.warnings), outcome.warnings
    assert "ellen" not in gallery_db.load(db, "facenet").people


def test_photos_swapped_back_between_two_people_fix_their_entries(tmp_path, celebrity, settings):
    """A mislabel fixed by swapping two photos: each entry follows its photo's new bytes."""
    people, db = tmp_path / "People", tmp_path / "db.json"
    elton = sorted((celebrity / "train" / "elton_john").glob("*.jpg"))[1]
    ben = sorted((celebrity / "train" / "ben_afflek").glob("*.jpg"))[1]
    (people / "ada").mkdir(parents=True)
    (people / "bob").mkdir()
    shutil.copy(elton, people / "ada" / "1.jpg")  # wrong: Elton under ada, Ben under bob ...
    shutil.copy(ben, people / "bob" / "1.jpg")
    assert enroll(people, db, settings).added == 2
    shutil.copy(ben, people / "ada" / "1.jpg")  # ... swapped back
    shutil.copy(elton, people / "bob" / "1.jpg")
    outcome = enroll(people, db, settings)
    assert (outcome.failed, outcome.skipped) == (0, 0), outcome.warnings
    stored = gallery_db.load(db, "facenet").people
    digest = {photo: sha256_of_file(photo) for photo in (elton, ben)}
    assert [e.sha256 for e in stored["ada"]] == [digest[ben]]
    assert [e.sha256 for e in stored["bob"]] == [digest[elton]]


def test_enrolled_validation_photos_are_named(tmp_path, celebrity, settings, celebrity_db):
    report = tmp_path / "report.csv"
    summary = annotate(celebrity / "val", celebrity_db, tmp_path / "out", report, settings)
    rows = report_rows(report)
    assert summary.images == 25 and summary.errors == 0
    named_right = {row["image"] for row in rows if row["name"] == row["image"].split("/")[0]}
    accuracy = len(named_right) / summary.images
    assert accuracy >= VALIDATION_ACCURACY_FLOOR, accuracy
    for row in rows:
        assert (tmp_path / "out" / row["annotated"]).is_file()


def six_people(faces):
    """t1.jpg's six people.  At the 28 px default minimum MTCNN also reports a 50 px patch of the
    table at confidence 0.93 (not at 40 px, where it shrinks the photo further): a known false
    positive, kept because the lower minimum finds the 30-34 px faces of web-size group photos."""
    return [f for f in faces if f.confidence >= 0.95]


def test_all_six_faces_of_the_group_photo_are_found(engine, insightface_dir):
    faces = engine.detector.detect(load_image(insightface_dir / "t1.jpg"))
    people = six_people(faces)
    assert len(people) == 6 and min(f.width for f in people) > 90
    assert len(faces) - len(people) <= 1 and all(f.confidence < 0.95 for f in faces if f not in people)
    assert [f.left for f in faces] == sorted(f.left for f in faces)


@pytest.fixture(scope="module")
def group_people(tmp_path_factory, engine, insightface_dir):
    """Tight crops of the six faces of t1.jpg, as People/person_<i>.png, numbered left to right."""
    people = tmp_path_factory.mktemp("group_people")
    image = load_image(insightface_dir / "t1.jpg")
    for index, face in enumerate(six_people(engine.detector.detect(image))):
        image.crop((face.left, face.top, face.right, face.bottom)).save(people / f"person_{index}.png")
    return people


@pytest.fixture(scope="module")
def flipped_group(tmp_path_factory, insightface_dir):
    folder = tmp_path_factory.mktemp("flipped")
    image = ImageOps.mirror(Image.open(insightface_dir / "t1.jpg"))
    image.resize((int(image.width * 1.6), int(image.height * 1.6)), Image.LANCZOS).save(folder / "t1_flipped.jpg")
    return folder


def test_tight_crops_enroll_and_name_everyone_in_a_flipped_rescaled_copy(tmp_path, settings, group_people,
                                                                          flipped_group):
    db = tmp_path / "db.json"
    outcome = enroll(group_people, db, settings)
    assert outcome.added == 6, outcome.warnings
    report = tmp_path / "report.csv"
    annotate(flipped_group, db, tmp_path / "out", report, settings)
    rows = report_rows(report)
    # mirrored: the leftmost face is now the rightmost (the table patch, if reported, is UNKNOWN)
    assert [row["name"] for row in rows if row["name"] != UNKNOWN] == [f"person_{i}" for i in reversed(range(6))]

    with gallery_db.locked(db):
        database = gallery_db.load(db, "facenet")
        del database.people["person_2"]
        gallery_db.save(db, database)
    annotate(flipped_group, db, tmp_path / "out", report, settings)
    names = [row["name"] for row in report_rows(report)]
    assert names == [f"person_{i}" if i != 2 else UNKNOWN for i in reversed(range(6))]


def test_verify_pairs_on_the_celebrity_set(tmp_path, celebrity, settings):
    from dataclasses import replace

    from facebatch.weights import get_spec

    val = {person: sorted((celebrity / "val" / person).glob("*.jpg")) for person in
           sorted(p.name for p in (celebrity / "val").iterdir())}
    pairs = []
    people = list(val)
    for i, person in enumerate(people):
        photos = val[person]
        pairs += [(photos[0], photos[k], True) for k in range(1, 5)]
        other = val[people[(i + 1) % len(people)]]
        pairs += [(photos[k], other[k], False) for k in range(4)]
    pairs_csv = tmp_path / "pairs.csv"
    with open(pairs_csv, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["first", "second"])
        writer.writerows([a.relative_to(celebrity).as_posix(), b.relative_to(celebrity).as_posix()] for a, b, _ in pairs)
    verify_settings = replace(settings, labels=replace(settings.labels, threshold=get_spec("facenet").verify_threshold))
    results = verify_pairs(pairs_csv, celebrity, verify_settings)
    assert len(results) == 40 and not any(r.error for r in results)
    accuracy = sum(r.same == expected for r, (_, _, expected) in zip(results, pairs)) / len(pairs)
    assert accuracy >= VERIFY_ACCURACY_FLOOR, accuracy
    assert not any(r.same and not expected for r, (_, _, expected) in zip(results, pairs))  # no false SAME


def test_parallel_workers_write_the_same_report_as_one_process(tmp_path, celebrity, settings, celebrity_db):
    from dataclasses import replace

    reports = []
    for jobs in (1, 2):
        report = tmp_path / f"report_{jobs}.csv"
        annotate(celebrity / "val", celebrity_db, tmp_path / f"out_{jobs}", report,
                 replace(settings, execution=replace(settings.execution, jobs=jobs, tf_threads=1 if jobs > 1 else 0)))
        reports.append(report_rows(report))
    assert [r["image"] for r in reports[0]] == [r["image"] for r in reports[1]]
    for one, two in zip(*reports):
        assert one == two  # byte for byte: labels are computed per photo, whatever the batching


def test_enroll_refuses_a_face_smaller_than_annotate_reports(tmp_path, celebrity, settings, engine):
    """The tight-crop retry used to accept any size; now enroll and annotate share the minimum."""
    photo = sorted((celebrity / "val" / "madonna").glob("*.jpg"))[0]
    image = load_image(photo)
    face = max(engine.detector.detect(image), key=lambda f: f.area)
    crop = image.crop((face.left, face.top, face.right, face.bottom))
    people = tmp_path / "People"
    people.mkdir()
    crop.resize((24, 24 * crop.height // crop.width)).save(people / "tiny.png")
    crop.resize((80, 80 * crop.height // crop.width)).save(people / "small.png")
    outcome = enroll(people, tmp_path / "db.json", settings)
    assert outcome.added == 1 and outcome.skipped == 1
    assert any("tiny.png: skipped, no face found" in w for w in outcome.warnings)
