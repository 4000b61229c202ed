"""`facebatch calibrate` on real labelled photos with the real weights: the report, --write,
and the stored thresholds becoming annotate's and verify's defaults (--threshold still wins)."""
from __future__ import annotations

import json
import re
import shutil

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
        assert (f"{what}: kept at the current threshold" in written.output) == kept[what], written.output
    stored = json.loads(db.read_text())["thresholds"]
    assert set(stored) == {what for what in kept if not kept[what]}
    assert all(abs(stored[what] - t) < 1e-3 for what, t in (("annotate", annotate_t), ("verify", verify_t))
               if what in stored)


def test_calibrate_writes_thresholds_that_annotate_and_verify_then_use(tmp_path, celebrity, models_root):
    # every celebrity photo: 118 photos of 5 people, enough to measure both operating points
    labelled = tmp_path / "labelled"
    for part in ("train", "val"):
        for photo in (celebrity / part).glob("*/*.jpg"):
            (labelled / photo.parent.name).mkdir(parents=True, exist_ok=True)
            shutil.copy(photo, labelled / photo.parent.name / f"{part}-{photo.name}")
    db = empty_database(tmp_path / "db.json")
    written = run("calibrate", labelled, "--db", db, "--model-dir", models_root, "-q", "--write")
    assert written.exit_code == 0, written.output
    assert "kept at the current threshold" not in written.output
    assert re.search(r"\n  verify at the recommended 1\.\d{3}: accuracy [\d.]+, \d+ false SAME", written.output)
    assert re.search(r"\n  annotate at the recommended 1\.\d{3}, 1 photo per person enrolled .* faces named right, "
                     r"\d+ of \d+ stranger tries named", written.output), written.output
    annotate_t, verify_t = recommended(written.output)
    stored = json.loads(db.read_text())["thresholds"]
    assert abs(stored["annotate"] - annotate_t) < 1e-3 and abs(stored["verify"] - verify_t) < 1e-3
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
