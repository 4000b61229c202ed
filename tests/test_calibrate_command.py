"""`facebatch calibrate` on real labelled photos with the real weights: the report, --write,
and the stored thresholds becoming annotate's and verify's defaults (--threshold still wins)."""
from __future__ import annotations

import json
import re
import shutil
import stat

import pytest

from PIL import Image

from cli_helpers import report_rows, run

from facebatch import gallery, weights


def empty_database(path):
    """A database with nobody enrolled yet, as calibrate --write needs one to store into."""
    spec = weights.get_spec(weights.DEFAULT_MODEL)
    gallery.save(path, gallery.Gallery(spec.name, spec.embedding_size))
    return path


def recommended(output: str) -> tuple[float, float]:
    return tuple(map(float, re.search(r"recommended: annotate ([\d.]+), verify ([\d.]+)", output).groups()))


def test_calibrate_reports_on_a_few_photos_and_does_not_loosen_the_defaults(tmp_path, celebrity, models_root):
    labelled = tmp_path / "labelled"
    shutil.copytree(celebrity / "val", labelled)
    db = tmp_path / "db.json"
    report = run("calibrate", labelled, "--db", db, "--model-dir", models_root, "-q")
    assert report.exit_code == 0, report.output
    out = report.output
    assert "calibrated on 25 photos of 5 people" in out
    assert re.search(r"same person: +\d+ pairs: min [\d.]+, 1% [\d.]+, 5% .*, median [\d.]+", out)
    assert re.search(r"different people: \d+ pairs: min", out)
    assert re.search(r"verify at the current 1\.\d\d\d: accuracy [\d.]+, \d+ false SAME, \d+ false DIFFERENT", out)
    assert re.search(r"annotate at the current 1\.\d\d\d, 1 photo per person enrolled .* faces named right", out)
    assert "run again with --write" in out and not db.exists()
    refused = run("calibrate", labelled, "--db", db, "--model-dir", models_root, "-q", "--write")
    assert refused.exit_code == 1 and not db.exists()  # a mistyped --db is not made into a database of nobody
    assert f"{db}: no database to store the thresholds in; pass the --db that enroll made" in refused.output
    empty_database(db)

    # 25 photos (250 different-people pairs) cannot show that looser thresholds than the defaults
    # are safe: the recommendation stays at or below them, says why where it stays, and --write
    # stores only what it measured
    written = run("calibrate", labelled, "--db", db, "--model-dir", models_root, "-q", "--write")
    assert written.exit_code == 0, written.output
    annotate_t, verify_t = recommended(written.output)
    spec = weights.get_spec(weights.DEFAULT_MODEL)
    assert annotate_t <= spec.default_threshold and verify_t <= spec.verify_threshold
    kept = {"annotate": annotate_t == spec.default_threshold, "verify": verify_t == spec.verify_threshold}
    for what in kept:
        assert (f"{what}: held at the model's default" in written.output) == kept[what], written.output
    stored = json.loads(db.read_text())["thresholds"]
    assert set(stored) == {what for what in kept if not kept[what]}
    # stored as printed
    assert all(stored[what] == t for what, t in (("annotate", annotate_t), ("verify", verify_t)) if what in stored)


def test_calibrate_writes_thresholds_that_annotate_and_verify_then_use(tmp_path, celebrity, models_root):
    # every celebrity photo and the portraits: 13 people and about 130 photos, enough to measure
    # both operating points (calibration.PEOPLE_NEEDED, ..._NEEDED)
    from tools import calibration_data

    labelled = tmp_path / "labelled"
    photos = [(photo.parent.name, f"{part}-{photo.name}", photo)
              for part in ("train", "val") for photo in (celebrity / part).glob("*/*.jpg")]
    photos += [(photo.parent.name, photo.name, photo) for photo in calibration_data.portrait_photos()]
    photos += [(photo.parent.name, photo.name, photo) for photo in calibration_data.facexlib_photos().glob("*/*.jpg")]
    for person, name, photo in photos:
        (labelled / person).mkdir(parents=True, exist_ok=True)
        shutil.copy(photo, labelled / person / name)
    assert len({person for person, _, _ in photos}) >= 12
    db = empty_database(tmp_path / "db.json")
    written = run("calibrate", labelled, "--db", db, "--model-dir", models_root, "-q", "--write")
    assert written.exit_code == 0, written.output
    assert "held at the model's default" not in written.output
    assert re.search(r"\n  verify at the recommended 1\.\d{3}: accuracy [\d.]+, \d+ false SAME", written.output)
    assert re.search(r"\n  annotate at the recommended 1\.\d{3}, 1 photo per person enrolled .* faces named right, "
                     r"\d+ of \d+ stranger tries named", written.output), written.output
    annotate_t, verify_t = recommended(written.output)
    stored = json.loads(db.read_text())["thresholds"]
    assert (stored["annotate"], stored["verify"]) == (annotate_t, verify_t)
    assert 0.5 < stored["annotate"] < 1.5 and 0.5 < stored["verify"] < 1.5

    photos = sorted((celebrity / "val" / "madonna").glob("*.jpg"))[:2]
    said = run("verify", *photos, "--db", db, "--model-dir", models_root)
    assert f"(threshold {stored['verify']:g})" in said.output
    forced = run("verify", *photos, "--db", db, "--model-dir", models_root, "--threshold", "0.5")
    assert "(threshold 0.5)" in forced.output


def test_calibrate_needs_two_people(tmp_path, celebrity, models_root):
    labelled = tmp_path / "labelled"
    shutil.copytree(celebrity / "val" / "madonna", labelled / "madonna")
    result = run("calibrate", labelled, "--db", tmp_path / "db.json", "--model-dir", models_root, "-q")
    assert result.exit_code == 1
    assert "calibrating needs at least 2 people" in result.output
    photo = next(labelled.glob("madonna/*.jpg"))
    not_a_folder = run("calibrate", photo, "--db", tmp_path / "db.json", "--model-dir", models_root, "-q")
    assert not_a_folder.exit_code == 1 and f"{photo}: not a folder; pass a folder" in not_a_folder.output


def test_annotate_takes_the_stored_threshold_as_its_default_and_threshold_still_wins(tmp_path, celebrity,
                                                                                      models_root):
    people = tmp_path / "People"
    for person in (celebrity / "train").iterdir():
        (people / person.name).mkdir(parents=True)
        for photo in sorted(person.glob("*.jpg"))[:2]:
            shutil.copy(photo, people / person.name / photo.name)
    db, out = tmp_path / "db.json", tmp_path / "out"
    assert run("enroll", people, "--db", db, "--model-dir", models_root, "-q").exit_code == 0

    def annotate(*extra) -> list[dict]:
        result = run("annotate", celebrity / "val", "--db", db, "--out", out, "--model-dir", models_root, "-q", *extra)
        assert result.exit_code == 0, result.output
        return [r for r in report_rows(out / "report.csv") if r["distance"]]

    distances = sorted(float(r["distance"]) for r in annotate())
    # a threshold stored between the faces' distances: annotate names exactly the nearer ones
    stored = (distances[len(distances) // 2 - 1] + distances[len(distances) // 2]) / 2
    document = json.loads(db.read_text())
    document["thresholds"] = {"annotate": round(stored, 4)}
    document["thresholds_crop"] = weights.get_spec(weights.DEFAULT_MODEL).crop.key
    db.write_text(json.dumps(document))
    for extra, threshold in (((), stored), (("--threshold", "2.0"), 2.0)):
        rows = annotate(*extra)
        assert len(rows) == len(distances)
        assert all((r["name"] != "UNKNOWN") == (float(r["distance"]) <= threshold) for r in rows), threshold
        assert sum(r["name"] != "UNKNOWN" for r in rows) == sum(d <= threshold for d in distances)

    # thresholds measured on an older facebatch's crop no longer apply: the defaults, and a warning saying so
    document["thresholds_crop"] = "square-0.10"
    db.write_text(json.dumps(document))
    spec = weights.get_spec(weights.DEFAULT_MODEL)
    warning = (f"warning: {db}: its calibrated thresholds were measured on faces cut out by an older facebatch, so "
               "the model's defaults are in force; run facebatch calibrate --write again to measure them anew")
    result = run("annotate", celebrity / "val", "--db", db, "--out", out, "--model-dir", models_root, "-q")
    assert result.exit_code == 0 and warning in result.output.splitlines(), result.output
    rows = [r for r in report_rows(out / "report.csv") if r["distance"]]
    assert sum(r["name"] != "UNKNOWN" for r in rows) == sum(d <= spec.default_threshold for d in distances)
    photos = sorted((celebrity / "val" / "madonna").glob("*.jpg"))[:2]
    said = run("verify", *photos, "--db", db, "--model-dir", models_root)
    assert warning in said.output.splitlines() and f"(threshold {spec.verify_threshold:g})" in said.output
    forced = run("annotate", celebrity / "val", "--db", db, "--out", out, "--model-dir", models_root, "-q",
                 "--threshold", "1.0")
    assert "older facebatch" not in forced.output  # an explicit threshold: nothing is ignored


def test_calibrate_on_bad_labels_and_bad_files_warns_stores_nothing_and_exits_3(tmp_path, celebrity, models_root):
    labelled = tmp_path / "labelled"
    shutil.copytree(celebrity / "val", labelled)
    madonna = sorted((labelled / "madonna").glob("*.jpg"))
    shutil.copy(madonna[0], labelled / "ben_afflek" / "copy.jpg")  # one file under two people
    Image.open(madonna[1]).convert("RGB").save(labelled / "elton_john" / "re-encoded.jpg", quality=80)
    (labelled / "mindy_kaling" / "broken.jpg").write_bytes(b"not a photo")
    db = empty_database(tmp_path / "db.json")
    before = db.read_bytes()
    result = run("calibrate", labelled, "--db", db, "--model-dir", models_root, "-q", "--write")
    assert result.exit_code == 3, result.output
    lines = result.output.splitlines()
    assert any(line.startswith("warning: ") and "copy.jpg (ben_afflek)" in line and f"{madonna[0].name} (madonna)"
               in line and "the same photo filed under 2 people" in line for line in lines), result.output
    assert any(line.startswith("warning: ") and "re-encoded.jpg (elton_john)" in line and madonna[1].name in line
               and "too near to be two people" in line for line in lines), result.output
    assert any(line.startswith("warning: ") and "broken.jpg: skipped" in line for line in lines), result.output
    assert "not stored: 1 pair of photos of different people too near to be two people" in result.output
    assert "calibrated on 25 photos of 5 people" in result.output  # the copies and the broken file left out
    assert db.read_bytes() == before
    # whatever the labels, a threshold is never outside what a database can hold
    annotate_t, verify_t = recommended(result.output)
    assert 0 < annotate_t < 2 and 0 < verify_t < 2


def test_calibrate_beside_another_models_database_says_whose_thresholds_it_compares(tmp_path, celebrity, models_root):
    labelled = tmp_path / "labelled"
    for person in ("madonna", "elton_john"):
        shutil.copytree(celebrity / "val" / person, labelled / person)
    db = tmp_path / "casia.json"
    gallery.save(db, gallery.Gallery("facenet-casia512", 512, thresholds={"annotate": 0.9, "verify": 0.9},
                                     thresholds_crop=weights.get_spec("facenet-casia512").crop.key))
    before = db.read_bytes()
    result = run("calibrate", labelled, "--db", db, "--model-dir", models_root, "-q")
    assert result.exit_code == 0, result.output
    assert (f"warning: {db}: made with model facenet-casia512, so the current thresholds below are facenet's "
            "defaults, not the database's; to measure and store thresholds for it, calibrate with --model "
            "facenet-casia512") in result.output
    assert f"verify at the current {weights.get_spec('facenet').verify_threshold:.3f}" in result.output
    assert db.read_bytes() == before


def test_a_wrong_label_that_tightened_the_thresholds_is_undone_by_calibrating_the_fixed_labels(tmp_path, celebrity,
                                                                                                 models_root):
    labelled = tmp_path / "labelled"
    shutil.copytree(celebrity / "val", labelled)
    db = empty_database(tmp_path / "db.json")
    spec = weights.get_spec(weights.DEFAULT_MODEL)
    stray = sorted((labelled / "madonna").glob("*.jpg"))[0]
    moved = labelled / "elton_john" / stray.name
    stray.rename(moved)  # a photo of Madonna filed under Elton John
    wrong = run("calibrate", labelled, "--db", db, "--model-dir", models_root, "-q", "--write")
    assert wrong.exit_code == 0, wrong.output
    annotate_t, verify_t = recommended(wrong.output)
    assert annotate_t < spec.default_threshold - 0.1  # dragged down by the stray photo
    # the warnings point at the photo: it is in the nearest pairs of "different people"
    assert re.search(rf"{re.escape(str(moved))} \(elton_john\) and .*madonna.* among the nearest photos of different "
                     "people", wrong.output), wrong.output
    assert json.loads(db.read_text())["thresholds"]["annotate"] == annotate_t

    moved.rename(stray)  # fixed: 25 photos are too few to loosen, but enough to go back to the defaults
    fixed = run("calibrate", labelled, "--db", db, "--model-dir", models_root, "-q", "--write")
    assert fixed.exit_code == 0, fixed.output
    stored = json.loads(db.read_text()).get("thresholds", {})
    assert "annotate" not in stored or stored["annotate"] > annotate_t, fixed.output
    if "annotate" not in stored:
        assert "removed from" in fixed.output and "the model's default is in force again" in fixed.output


def test_copies_of_a_few_photos_do_not_count_as_enough_photos_to_loosen(tmp_path, celebrity, models_root):
    labelled = tmp_path / "labelled"
    for person in ("madonna", "elton_john", "mindy_kaling"):
        for photo in sorted((celebrity / "val" / person).glob("*.jpg"))[:2]:
            (labelled / person).mkdir(parents=True, exist_ok=True)
            image = Image.open(photo).convert("RGB")
            for quality in range(60, 100, 2):  # 20 re-encodings each: 120 files, 6 photos
                image.save(labelled / person / f"{photo.stem}-q{quality}.jpg", quality=quality)
    db = empty_database(tmp_path / "db.json")
    result = run("calibrate", labelled, "--db", db, "--model-dir", models_root, "-q", "--write")
    assert result.exit_code == 0, result.output
    spec = weights.get_spec(weights.DEFAULT_MODEL)
    annotate_t, verify_t = recommended(result.output)
    assert annotate_t <= spec.default_threshold and verify_t <= spec.verify_threshold, result.output
    assert re.search(r"1\d\d photos are near-copies of another photo of the same person", result.output), result.output
    distinct = int(re.search(r"annotate: held at the model's default 1\.120: (\d+) distinct photos \(it takes "
                             r"100\) and 3 people \(it takes 12\) are too few", result.output).group(1))
    assert distinct <= 12  # 6 photos, a few re-encodings of which drift more than 0.25


def test_a_database_moved_away_while_calibrating_is_not_made_again_empty(tmp_path):
    from facebatch import calibration, calibrating
    from facebatch.errors import DatabaseError

    spec = weights.get_spec(weights.DEFAULT_MODEL)
    rec = calibration.Recommendation({}, {}, 0.9, 0.9, None, None)
    outcome = calibrating.CalibrateOutcome(10, 2, rec, 1.12, 1.11, write=True)
    with pytest.raises(DatabaseError, match="gone since calibrate started, nothing stored"):
        calibrating._store(tmp_path / "moved.json", spec, rec, outcome)
    assert not (tmp_path / "moved.json").exists()


def test_a_read_only_database_is_refused_before_the_photos_are_embedded(tmp_path, celebrity):
    db = empty_database(tmp_path / "db.json")
    db.chmod(0o400)
    before = db.read_bytes()
    # no --model-dir: refused before the weights are needed, so before any photo is embedded
    result = run("calibrate", celebrity / "val", "--db", db, "--model-dir", tmp_path / "no-weights", "-q", "--write")
    assert result.exit_code == 1
    assert result.output == (f"Error: {db}: the database is read-only (mode 0400); nothing was changed, make it "
                             "writable (chmod u+w) to change it\n")
    assert db.read_bytes() == before and stat.S_IMODE(db.stat().st_mode) == 0o400


def test_a_database_that_cannot_be_written_at_the_end_still_gets_the_report(tmp_path, celebrity, models_root,
                                                                              monkeypatch):
    from facebatch.errors import OutputError

    db = empty_database(tmp_path / "db.json")
    before = db.read_bytes()

    def disk_full(path, _gallery):
        raise OutputError(f"{path}: cannot write the database (No space left on device); nothing was changed, free "
                          "some space or fix the permissions and run again")

    monkeypatch.setattr(gallery, "save", disk_full)
    result = run("calibrate", celebrity / "val", "--db", db, "--model-dir", models_root, "-q", "--write")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert any(line.startswith("calibrated on 25 photos of 5 people") for line in lines), result.output
    assert f"nothing stored in {db}: it could not be written (the error below)" in lines
    assert lines[-1].startswith(f"Error: {db}: cannot write the database (No space left on device)")
    assert db.read_bytes() == before


def test_a_group_photo_counts_with_its_persons_face_not_the_largest(tmp_path, celebrity, models_root):
    from test_cli import side_by_side

    labelled = tmp_path / "labelled"
    shutil.copytree(celebrity / "val", labelled)
    madonna = sorted((labelled / "madonna").glob("*.jpg"))
    ben = sorted((labelled / "ben_afflek").glob("*.jpg"))
    # Ben Affleck's photo with Madonna larger beside him: by size it would be a copy of her photo
    # under his name, and calibrate would call the labels wrong and store nothing
    side_by_side(madonna[2], ben[0]).save(labelled / "ben_afflek" / "party.jpg")
    db = empty_database(tmp_path / "db.json")
    result = run("calibrate", labelled, "--db", db, "--model-dir", models_root, "-q", "--write")
    assert result.exit_code == 0, result.output
    assert "too near to be two people" not in result.output
    assert any(line.startswith(f"warning: {labelled}/ben_afflek/party.jpg: ") and " faces, used the one most like "
               "ben_afflek's other photos (" in line for line in result.output.splitlines()), result.output
    assert "calibrated on 26 photos of 5 people" in result.output
