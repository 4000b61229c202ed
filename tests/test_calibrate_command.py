"""`facebatch calibrate` on real labelled photos with the real weights: the report, --write,
and the stored thresholds becoming annotate's and verify's defaults (--threshold still wins)."""
from __future__ import annotations

import json
import re
import shutil

from cli_helpers import run

from facebatch import weights


def test_calibrate_reports_and_writes_thresholds_that_annotate_and_verify_then_use(tmp_path, celebrity, models_root):
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

    written = run("calibrate", labelled, "--db", db, "--model-dir", models_root, "-q", "--write")
    annotate_t, verify_t = map(float, re.search(r"recommended: annotate ([\d.]+), verify ([\d.]+)",
                                                written.output).groups())
    stored = json.loads(db.read_text())["thresholds"]
    assert abs(stored["annotate"] - annotate_t) < 1e-3 and abs(stored["verify"] - verify_t) < 1e-3
    assert 0.5 < stored["annotate"] < 1.5
    # 25 photos (250 different-people pairs) cannot show that looser thresholds than the defaults
    # are safe: the recommendation stays at or below them, and says why where it stays
    spec = weights.get_spec(weights.DEFAULT_MODEL)
    assert annotate_t <= spec.default_threshold and verify_t <= spec.verify_threshold
    for what, kept in (("annotate", annotate_t == spec.default_threshold),
                       ("verify", verify_t == spec.verify_threshold)):
        assert (f"{what}: kept at the current threshold" in written.output) == kept, written.output

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
