"""What real folders, disks and people do to a nightly run (issue 9), one section per fault class.

Each fault ends in a report row or a one-line message that names the file and says what to do;
never in a traceback, a silently wrong name, or lost output.  Faults that need the kernel's help
are real: a full disk is a small tmpfs mounted in a private mount namespace (`unshare -m`), and
an unreadable file is unreadable because the run drops root's permission to read anything
(`setpriv` without CAP_DAC_OVERRIDE), as CI runs as root.
"""
from __future__ import annotations

import base64
import contextlib
import html
import json
import os
import queue
import re
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facebatch import locks

from cli_helpers import report_rows, run

ROOT = Path(__file__).resolve().parents[1]
NO_ROOT_BYPASS = ["setpriv", "--inh-caps=-dac_override,-dac_read_search",
                  "--bounding-set=-dac_override,-dac_read_search"]


def run_process(*args, prefix=(), umask=None, cwd=None):
    """facebatch in a child process (for setpriv, mount namespaces and umask)."""
    command = [*prefix, sys.executable, "-m", "facebatch", *[str(a) for a in args]]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=600,
                          preexec_fn=(lambda: os.umask(umask)) if umask is not None else None)


def without_root_bypass() -> list[str]:
    """A prefix under which file permissions apply, even to root."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.fail("setpriv (util-linux) is needed to test permissions as root")
    return NO_ROOT_BYPASS


def assert_one_line_error(output: str, *fragments: str) -> None:
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1, output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def small_db(tmp_path_factory, celebrity, models_root):
    """Madonna enrolled from three photos."""
    root = tmp_path_factory.mktemp("db")
    for photo in sorted((celebrity / "train" / "madonna").glob("*.jpg"))[1:4]:
        (root / "People" / "madonna").mkdir(parents=True, exist_ok=True)
        shutil.copy(photo, root / "People" / "madonna" / photo.name)
    db = root / "DataBase.json"
    assert run("enroll", root / "People", "--db", db, "--model-dir", models_root, "-q").exit_code == 0
    return db


@pytest.fixture
def four_photos(tmp_path, celebrity):
    folder = tmp_path / "images"
    folder.mkdir()
    for person in ("madonna", "elton_john"):
        for photo in sorted((celebrity / "val" / person).glob("*.jpg"))[:2]:
            shutil.copy(photo, folder / f"{person}_{photo.name}")
    return folder


def blank_photos(folder: Path, count: int) -> Path:
    """Small photos without a face: the fastest images to annotate."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        Image.new("RGB", (64, 48), (index * 7 % 256, 90, 140)).save(folder / f"blank_{index:03d}.png")
    return folder


def annotate(images, db, out, models_root, *extra):
    return run("annotate", images, "--db", db, "--out", out, "--model-dir", models_root, "-j", "1", "-q", *extra)


# 1. File names that are not valid UTF-8 --------------------------------------------------------

def test_latin1_file_names_are_annotated_and_listed_losslessly(tmp_path, four_photos, small_db, models_root, celebrity):
    madonna = sorted((celebrity / "val" / "madonna").glob("*.jpg"))[2]
    latin1 = os.fsdecode(b"caf\xe9 madonna.jpg")
    shutil.copy(madonna, four_photos / latin1)
    (four_photos / os.fsdecode(b"dossier \xff")).mkdir()
    shutil.copy(madonna, four_photos / os.fsdecode(b"dossier \xff") / "m.jpg")
    out = tmp_path / "out"
    result = annotate(four_photos, small_db, out, models_root)
    assert result.exit_code == 0, result.output
    rows = {row["image"]: row for row in report_rows(out / "report.csv")}
    assert rows["caf\\xe9 madonna.jpg"]["status"] == "ok"
    assert rows["dossier \\xff/m.jpg"]["status"] == "ok"
    assert (out / latin1).is_file() and (out / os.fsdecode(b"dossier \xff") / "m.jpg").is_file()
    again = annotate(four_photos, small_db, out, models_root)
    assert "(0 processed, 0 relabelled, 6 unchanged)" in again.output

    from facebatch.pathtext import from_text
    assert from_text("caf\\xe9 madonna.jpg") == latin1

    # a report in a Latin-1 folder: the summary names it in its printable form
    report = tmp_path / os.fsdecode(b"rapport \xe9t\xe9") / "r.csv"
    summary = tmp_path / "summary.json"
    result = annotate(four_photos, small_db, out, models_root, "--report", report, "--summary-json", summary)
    assert result.exit_code == 0, result.output
    document = json.loads(summary.read_text(encoding="utf-8"))
    assert document["report"] == str(tmp_path) + "/rapport \\xe9t\\xe9/r.csv" and document["images"] == 6


def test_enroll_refuses_a_person_name_that_is_not_utf8_and_keeps_latin1_photo_names(tmp_path, celebrity, models_root):
    people = tmp_path / "People"
    (people / "madonna").mkdir(parents=True)
    photo = sorted((celebrity / "train" / "madonna").glob("*.jpg"))[1]
    shutil.copy(photo, people / "madonna" / os.fsdecode(b"\xe9t\xe9.jpg"))
    (people / os.fsdecode(b"Jos\xe9")).mkdir()
    shutil.copy(photo, people / os.fsdecode(b"Jos\xe9") / "1.jpg")
    db = tmp_path / "db.json"
    result = run("enroll", people, "--db", db, "--model-dir", models_root, "-j", "1")
    assert result.exit_code == 3, result.output  # the name refused is a failure of the input
    assert f"{people}/Jos\\xe9/1.jpg: skipped, the name is not valid UTF-8; rename the file or folder" in result.output
    assert "enrolled: 1 added, 0 replaced, 0 unchanged, 1 skipped" in result.output
    document = json.loads(db.read_text(encoding="utf-8"))
    assert [e["source"] for e in document["people"]["madonna"]] == ["madonna/\\xe9t\\xe9.jpg"]
    again = run("enroll", people, "--db", db, "--model-dir", models_root, "-j", "1")
    assert "enrolled: 0 added, 0 replaced, 1 unchanged, 1 skipped" in again.output


# 2. A disk that fills up -----------------------------------------------------------------------

def _in_private_mount_namespace(script: str, tmp_path: Path) -> subprocess.CompletedProcess:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.fail("mounting a small tmpfs needs root and unshare (CI runs as root)")
    return subprocess.run(["unshare", "-m", "bash", "-euc", script], capture_output=True, text=True, timeout=900,
                          cwd=tmp_path)


def test_full_disk_gives_error_rows_never_short_copies_and_the_next_run_repairs(tmp_path, four_photos, small_db,
                                                                                models_root):
    disk, report, snapshot = tmp_path / "disk", tmp_path / "report" / "report.csv", tmp_path / "snapshot"
    disk.mkdir()
    facebatch = f"{sys.executable} -m facebatch annotate {four_photos} --db {small_db} --model-dir {models_root} " \
                f"-j 1 -q --out {disk}/out --report {report}"
    script = f"""
        mount -t tmpfs -o size=400k tmpfs {disk}
        head -c 330000 /dev/zero > {disk}/filler
        set +e; {facebatch} > {tmp_path}/first.txt 2>&1; echo $? > {tmp_path}/first.code; set -e
        cp -a {disk}/out {snapshot}
        cp {report} {tmp_path}/first-report.csv
        rm {disk}/filler
        set +e; {facebatch} > {tmp_path}/second.txt 2>&1; echo $? > {tmp_path}/second.code; set -e
        cp -a {disk}/out {tmp_path}/repaired
    """
    done = _in_private_mount_namespace(script, tmp_path)
    assert done.returncode == 0, done.stderr
    first = (tmp_path / "first.txt").read_text()
    assert (tmp_path / "first.code").read_text().strip() == "3", first
    assert "Traceback" not in first
    rows = report_rows(tmp_path / "first-report.csv")  # the report is elsewhere: written, with the failures
    failed = [r for r in rows if r["status"] == "error"]
    assert failed and all(r["error"].startswith("cannot write the ") and "(No space left on device)" in r["error"]
                          for r in failed)
    for copy in (p for p in snapshot.rglob("*") if p.is_file()):
        assert not copy.name.endswith(".facebatch-tmp"), copy
        if copy.suffix == ".jpg":  # annotated copies and review thumbnails
            with Image.open(copy) as image:
                image.load()  # every one that made it is whole: a short JPEG raises here
    assert (tmp_path / "second.code").read_text().strip() == "0", (tmp_path / "second.txt").read_text()
    assert all(r["status"] == "ok" for r in report_rows(report))
    assert sorted(p.name for p in (tmp_path / "repaired").glob("*.jpg")) == \
        sorted(p.name for p in four_photos.iterdir())


def test_full_disk_for_the_report_or_database_is_one_line_and_loses_nothing(tmp_path, four_photos, small_db,
                                                                          models_root, celebrity):
    disk = tmp_path / "disk"
    disk.mkdir()
    people = tmp_path / "People"
    (people / "elton_john").mkdir(parents=True)
    shutil.copy(sorted((celebrity / "train" / "elton_john").glob("*.jpg"))[0], people / "elton_john")
    db_before = small_db.read_bytes()
    script = f"""
        mount -t tmpfs -o size=64k tmpfs {disk}
        cp {small_db} {disk}/db.json
        head -c 40000 /dev/zero > {disk}/filler || true
        set +e
        {sys.executable} -m facebatch annotate {four_photos} --db {small_db} --model-dir {models_root} -j 1 -q \
            --out {tmp_path}/out --report {disk}/report.csv > {tmp_path}/report.txt 2>&1; echo $? > {tmp_path}/report.code
        {sys.executable} -m facebatch enroll {people} --db {disk}/db.json --model-dir {models_root} -j 1 -q \
            > {tmp_path}/enroll.txt 2>&1; echo $? > {tmp_path}/enroll.code
        cp {disk}/db.json {tmp_path}/db-after.json
        ls -a {disk} > {tmp_path}/listing.txt
    """
    done = _in_private_mount_namespace(script, tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "report.code").read_text().strip() == "1"
    assert_one_line_error((tmp_path / "report.txt").read_text(), f"{disk}/report")
    assert (tmp_path / "enroll.code").read_text().strip() == "1"
    assert_one_line_error((tmp_path / "enroll.txt").read_text(), f"{disk}/db.json: cannot write the database",
                          "free some space")
    assert (tmp_path / "db-after.json").read_bytes() == db_before  # nothing lost, nothing half-written
    assert ".facebatch-tmp" not in (tmp_path / "listing.txt").read_text()


def test_a_disk_too_full_for_the_lock_file_is_one_line_for_calibrate_and_enroll(tmp_path, small_db, models_root,
                                                                                celebrity):
    disk = tmp_path / "disk"
    disk.mkdir()
    labelled = tmp_path / "labelled"
    for person in ("elton_john", "madonna"):
        (labelled / person).mkdir(parents=True)
        for photo in sorted((celebrity / "val" / person).glob("*.jpg"))[:2]:
            shutil.copy(photo, labelled / person)
    calibrated = json.loads(small_db.read_text())  # thresholds a first calibration stored: --write removes them
    calibrated.update(thresholds={"annotate": 0.9, "verify": 0.9}, thresholds_crop="stretched-0.30-clamp")
    (tmp_path / "calibrated.json").write_text(json.dumps(calibrated))
    db_before = (tmp_path / "calibrated.json").read_bytes()
    script = f"""
        mount -t tmpfs -o size=64k tmpfs {disk}
        cp {tmp_path}/calibrated.json {disk}/db.json
        head -c 100000 /dev/zero > {disk}/filler || true
        set +e
        {sys.executable} -m facebatch calibrate {labelled} --db {disk}/db.json --write --model-dir {models_root} \
            -j 1 -q > {tmp_path}/calibrate.txt 2>&1; echo $? > {tmp_path}/calibrate.code
        {sys.executable} -m facebatch enroll {labelled} --db {disk}/db.json --model-dir {models_root} -j 1 -q \
            > {tmp_path}/enroll.txt 2>&1; echo $? > {tmp_path}/enroll.code
        cp {disk}/db.json {tmp_path}/db-after.json
    """
    done = _in_private_mount_namespace(script, tmp_path)
    assert done.returncode == 0, done.stderr
    for command in ("calibrate", "enroll"):
        output = (tmp_path / f"{command}.txt").read_text()
        assert (tmp_path / f"{command}.code").read_text().strip() == "1", output
        assert "Traceback" not in output and f"{disk}/db.json" in output, output
        assert "free some space" in output, output
    assert (tmp_path / "db-after.json").read_bytes() == db_before


def test_a_copy_that_cannot_be_written_becomes_an_error_row(tmp_path, four_photos, small_db, models_root):
    out = tmp_path / "out"
    assert annotate(four_photos, small_db, out, models_root).exit_code == 0
    victim = sorted(four_photos.iterdir())[0].name
    (out / victim).unlink()
    (out / victim).mkdir()  # a folder where the copy should go: the rename fails
    (out / victim / "keep").write_text("not empty")
    result = annotate(four_photos, small_db, out, models_root, "--force")
    assert result.exit_code == 3
    row = next(r for r in report_rows(out / "report.csv") if r["image"] == victim)
    assert row["status"] == "error" and row["error"].startswith("cannot write the annotated copy")


# 3. A damaged manifest -------------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["garbage", "truncated", "bad cells"])
def test_damaged_manifest_is_moved_aside_or_repaired_and_the_report_is_the_same(damage, tmp_path, small_db,
                                                                                models_root, four_photos):
    out = tmp_path / "out"
    assert annotate(four_photos, small_db, out, models_root).exit_code == 0
    report = (out / "report.csv").read_bytes()
    manifest = out / "report.state.sqlite"
    if damage == "garbage":
        manifest.write_bytes(os.urandom(5000))
    elif damage == "truncated":
        data = manifest.read_bytes()
        manifest.write_bytes(data[: len(data) // 3])
    else:
        with sqlite3.connect(manifest) as db:
            db.execute("UPDATE images SET faces='not json' WHERE path=(SELECT MIN(path) FROM images)")
            db.execute("UPDATE images SET size='big' WHERE path=(SELECT MAX(path) FROM images)")
    result = annotate(four_photos, small_db, out, models_root)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert (out / "report.csv").read_bytes() == report
    if damage == "bad cells":
        assert "(2 processed, 0 relabelled, 2 unchanged)" in result.output
    else:
        assert f"warning: {manifest}: the manifest was damaged" in result.output
        assert len(list(out.glob("report.state.sqlite.damaged-*"))) == 1
        assert "(4 processed, 0 relabelled, 0 unchanged)" in result.output


# 4. Database values ----------------------------------------------------------------------------

def _damage_first_embedding(db: Path, target: Path, change) -> None:
    document = json.loads(db.read_text())
    entry = document["people"]["madonna"][0]
    values = np.frombuffer(base64.b64decode(entry["embedding"]), "<f4").copy()
    change(values)
    entry["embedding"] = base64.b64encode(values.astype("<f4").tobytes()).decode()
    target.write_text(json.dumps(document))


@pytest.mark.parametrize("change, why", [
    (lambda v: v.__setitem__(3, np.nan), "holds NaN or Inf"),
    (lambda v: v.__setitem__(5, np.inf), "holds NaN or Inf"),
    (lambda v: v.__imul__(0.5), "is not of unit length (length 0.5)"),
    (lambda v: v.view(np.uint32).__setitem__(7, v.view(np.uint32)[7] ^ (1 << 29)), "is not of unit length"),
])
def test_database_embeddings_that_are_not_finite_unit_vectors_are_refused(change, why, tmp_path, small_db,
                                                                           models_root, four_photos):
    db = tmp_path / "db.json"
    _damage_first_embedding(small_db, db, change)
    result = annotate(four_photos, db, tmp_path / "out", models_root)
    assert result.exit_code == 1
    assert_one_line_error(result.output, f"{db}: damaged database (madonna, madonna/", why, "restore it from a backup")
    assert not (tmp_path / "out").exists()


def test_numbers_too_long_for_python_to_read_are_one_line_or_ignored(tmp_path, small_db, models_root, four_photos):
    huge = "1" * 5001  # Python refuses to convert more than 4,300 digits (ValueError, not a JSON error)
    db = tmp_path / "db.json"
    db.write_text(small_db.read_text().replace('"embedding_size": 128', f'"embedding_size": {huge}', 1))
    assert huge in db.read_text()
    for args in (["people", "list", "--db", db], ["annotate", four_photos, "--db", db, "--out", tmp_path / "o",
                                                  "--model-dir", models_root]):
        result = run(*args)
        assert result.exit_code == 1
        assert_one_line_error(result.output, f"{db}: damaged database (Exceeds the limit (4300 digits)",
                              "the file is left untouched")
    out = tmp_path / "out"
    assert annotate(four_photos, small_db, out, models_root).exit_code == 0
    (out / "review" / ".group-numbers-issued").write_text(huge)  # damaged: not ours, so no number was issued
    assert annotate(four_photos, small_db, out, models_root, "--force").exit_code == 0
    for command in ("name", "ignore"):
        result = run("people", command, "g" + huge, *(["Zed"] if command == "name" else []), "--out", out)
        assert result.exit_code == 1
        assert_one_line_error(result.output, f"there is no group 'g{huge}' of unknown faces")


# 5. Unreadable inputs --------------------------------------------------------------------------

def test_an_unreadable_enrollment_photo_is_skipped_and_the_rest_enroll(tmp_path, celebrity, models_root):
    people = tmp_path / "People"
    shutil.copytree(celebrity / "train" / "madonna", people / "madonna")
    locked_photo = sorted((people / "madonna").glob("*.jpg"))[0]
    locked_photo.chmod(0)
    db = tmp_path / "db.json"
    result = run_process("enroll", people, "--db", db, "--model-dir", models_root, "-j", "1",
                         prefix=without_root_bypass())
    assert result.returncode == 3, result.stderr  # the rest enrolled, one photo failed
    assert f"warning: {locked_photo}: skipped, cannot read it (Permission denied); make the file readable" \
        in result.stderr
    total = len(list((people / "madonna").glob("*.jpg")))
    assert f"enrolled: {total - 1} added, 0 replaced, 0 unchanged, 1 skipped" in result.stderr


def test_an_unreadable_subfolder_keeps_its_earlier_results(tmp_path, four_photos, small_db, models_root, celebrity):
    sub = four_photos / "later"
    sub.mkdir()
    shutil.copy(sorted((celebrity / "val" / "madonna").glob("*.jpg"))[3], sub / "m.jpg")
    out = tmp_path / "out"
    assert annotate(four_photos, small_db, out, models_root).exit_code == 0
    report = (out / "report.csv").read_bytes()
    sub.chmod(0)
    try:
        result = run_process("annotate", four_photos, "--db", small_db, "--out", out, "--model-dir", models_root,
                             "-j", "1", "-q", prefix=without_root_bypass())
    finally:
        sub.chmod(0o755)
    assert result.returncode == 0, result.stderr
    assert f"warning: {sub}: cannot list this folder (permission denied); its earlier results are kept" \
        in result.stderr
    assert (out / "report.csv").read_bytes() == report
    assert (out / "later" / "m.jpg").is_file()


# 6. An input folder that is suddenly empty -----------------------------------------------------

def test_an_emptied_folder_is_refused_until_the_purge_is_confirmed(tmp_path, small_db, models_root):
    images = blank_photos(tmp_path / "images", 12)
    out = tmp_path / "out"
    assert annotate(images, small_db, out, models_root).exit_code == 0
    report = (out / "report.csv").read_bytes()
    shutil.move(images, tmp_path / "unmounted")
    images.mkdir()  # the mount point, without the share
    result = annotate(images, small_db, out, models_root)
    assert result.exit_code == 5
    assert_one_line_error(result.output, f"{images}: 12 of the 12 images of the last run are missing (0 found now)",
                          "check that it is mounted", "--confirm-purge")
    assert (out / "report.csv").read_bytes() == report and len(list(out.glob("*.png"))) == 12

    for photo in sorted((tmp_path / "unmounted").iterdir())[:2]:  # a partial sync: most are still missing
        shutil.copy(photo, images)
    assert annotate(images, small_db, out, models_root).exit_code == 5
    confirmed = annotate(images, small_db, out, models_root, "--confirm-purge")
    assert confirmed.exit_code == 0
    assert len(report_rows(out / "report.csv")) == 2 and len(list(out.glob("*.png"))) == 2


def test_deleting_a_few_images_needs_no_confirmation(tmp_path, small_db, models_root):
    images = blank_photos(tmp_path / "images", 12)
    out = tmp_path / "out"
    assert annotate(images, small_db, out, models_root).exit_code == 0
    for photo in sorted(images.iterdir())[:3]:
        photo.unlink()
    assert annotate(images, small_db, out, models_root).exit_code == 0
    assert len(report_rows(out / "report.csv")) == 9


# 7. Read-only places ---------------------------------------------------------------------------

def test_a_read_only_database_is_read_without_a_lock_file(tmp_path, small_db, models_root):
    images = blank_photos(tmp_path / "images", 2)
    shelf = tmp_path / "readonly"
    shelf.mkdir()
    shutil.copy(small_db, shelf / "DataBase.json")
    (shelf / "DataBase.json").chmod(0o444)
    shelf.chmod(0o555)
    try:
        result = run_process("annotate", images, "--db", shelf / "DataBase.json", "--out", tmp_path / "out",
                             "--model-dir", models_root, "-q", prefix=without_root_bypass())
    finally:
        shelf.chmod(0o755)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in shelf.iterdir()) == ["DataBase.json"]


def test_a_read_only_output_folder_is_one_line(tmp_path, small_db, models_root):
    images = blank_photos(tmp_path / "images", 2)
    shelf = tmp_path / "readonly"
    shelf.mkdir()
    shelf.chmod(0o555)
    try:
        result = run_process("annotate", images, "--db", small_db, "--out", shelf / "out", "--model-dir", models_root,
                             "-q", prefix=without_root_bypass())
        existing = run_process("annotate", images, "--db", small_db, "--out", shelf, "--model-dir", models_root,
                               "-q", prefix=without_root_bypass())
    finally:
        shelf.chmod(0o755)
    assert result.returncode == 1
    assert_one_line_error(result.stderr, f"{shelf / 'out'}: cannot create the output folder (Permission denied)")
    assert existing.returncode == 1
    assert_one_line_error(existing.stderr, f"{shelf}: cannot create a lock file there (Permission denied)")


# 8. Non-regular files and huge non-images ------------------------------------------------------

def test_verify_refuses_a_fifo_and_dev_zero_at_once(tmp_path, models_root, celebrity):
    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)
    photo = sorted((celebrity / "val" / "madonna").glob("*.jpg"))[0]
    result = run_process("verify", fifo, photo, "--model-dir", models_root)
    assert result.returncode == 1
    assert_one_line_error(result.stderr, f"{fifo}: not a regular file (a device, FIFO or socket)")
    result = run_process("verify", "/dev/zero", photo, "--model-dir", models_root)
    assert_one_line_error(result.stderr, "/dev/zero: not a regular file")
    result = run_process("verify", "--pairs", "/dev/zero", "--model-dir", models_root)
    assert result.returncode == 1
    assert_one_line_error(result.stderr, "/dev/zero: not a regular file", "pass a CSV of image pairs")
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(f"{fifo},{photo}\n")
    result = run_process("verify", "--pairs", pairs, "--model-dir", models_root)
    assert result.returncode == 3
    assert f"{fifo}: not a regular file" in result.stdout


def test_a_huge_file_named_jpg_is_refused_unread(tmp_path, small_db, models_root):
    images = blank_photos(tmp_path / "images", 1)
    with open(images / "huge.jpg", "wb") as handle:
        handle.truncate(3 << 30)  # 3 GB, sparse: costs no disk, but reading it would cost 3 GB of memory
    result = run_process("annotate", images, "--db", small_db, "--out", tmp_path / "out", "--model-dir", models_root,
                         "-q")
    assert result.returncode == 3
    row = next(r for r in report_rows(tmp_path / "out" / "report.csv") if r["image"] == "huge.jpg")
    assert row["error"] == (f"file of {3 << 30} bytes is larger than any image within the pixel limit; "
                            "raise --max-pixels if the image is genuine")


# 9. Leftovers and paths ------------------------------------------------------------------------

def test_temporaries_of_a_killed_enroll_are_removed(tmp_path, small_db, models_root):
    db = tmp_path / "DataBase.json"
    shutil.copy(small_db, db)
    leftover = tmp_path / ".DataBase.json.k1ll3d.facebatch-tmp"
    leftover.write_text(small_db.read_text())
    (tmp_path / "People").mkdir()
    assert run("enroll", tmp_path / "People", "--db", db, "--model-dir", models_root, "-q").exit_code == 0
    assert not leftover.exists()
    leftover.write_text(small_db.read_text())
    assert run("people", "remove", "madonna", "--db", db).exit_code == 0
    assert not leftover.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_a_path_in_the_manifest_never_leads_outside_out(tmp_path, small_db, models_root):
    images = blank_photos(tmp_path / "images", 3)
    out = tmp_path / "out"
    assert annotate(images, small_db, out, models_root).exit_code == 0
    victim = tmp_path / "victim.jpg"
    victim.write_bytes(b"precious")
    with sqlite3.connect(out / "report.state.sqlite") as db:
        db.execute("UPDATE images SET annotated='../victim.jpg' WHERE path='blank_000.png'")
        db.execute("UPDATE images SET annotated=? WHERE path='blank_001.png'", (str(victim),))
        db.execute("UPDATE images SET annotated='../../etc/passwd' WHERE path='blank_002.png'")
    (images / "blank_000.png").unlink()
    (images / "blank_001.png").unlink()
    assert annotate(images, small_db, out, models_root, "--confirm-purge").exit_code == 0
    assert victim.read_bytes() == b"precious"
    assert "passwd" not in (out / "report.csv").read_text()  # a record naming another copy is redone


def test_damaged_groups_in_the_manifest_are_made_afresh_with_a_warning(tmp_path, small_db, models_root):
    images = blank_photos(tmp_path / "images", 1)
    out = tmp_path / "out"
    assert annotate(images, small_db, out, models_root).exit_code == 0
    with sqlite3.connect(out / "report.state.sqlite") as db:
        db.execute("INSERT OR REPLACE INTO meta VALUES ('doc:groups', '[\"not\", \"groups\"]')")
    listed = run("unknowns", "--out", out, "--db", small_db)
    assert "groups of unknown faces stored there were damaged" in listed.output
    result = annotate(images, small_db, out, models_root)
    assert result.exit_code == 0
    assert "groups of unknown faces stored there were damaged" in result.output


def test_an_out_that_contains_the_images_is_refused(tmp_path, small_db, models_root):
    images = blank_photos(tmp_path / "photos" / "images", 1)
    result = annotate(images, small_db, tmp_path / "photos", models_root)
    assert result.exit_code == 1
    assert_one_line_error(result.output, f"{tmp_path / 'photos'}: contains the input folder {images}, so an "
                                         "annotated copy could overwrite an original; choose an --out outside it")


def test_two_runs_on_one_report_with_different_outs_are_locked_out(tmp_path, small_db, models_root):
    images = blank_photos(tmp_path / "images", 1)
    report = tmp_path / "shared" / "report.csv"
    report.parent.mkdir()
    with locks.held(report.with_name("report.csv.lock")):
        result = annotate(images, small_db, tmp_path / "out2", models_root, "--report", report)
    assert result.exit_code == 4
    assert_one_line_error(result.output, "another facebatch annotate", "is writing here")
    assert not (tmp_path / "out2").exists()  # turned away: no empty --out left behind
    assert annotate(images, small_db, tmp_path / "out2", models_root, "--report", report).exit_code == 0
    assert sorted(p.name for p in report.parent.iterdir()) == ["report.csv", "report.state.sqlite"]


def test_two_reports_that_share_a_manifest_are_locked_out(tmp_path, small_db, models_root):
    # r.csv and r.txt both keep their faces in r.state.sqlite: one run at a time may write it
    images = blank_photos(tmp_path / "images", 1)
    shared = tmp_path / "shared"
    shared.mkdir()
    with locks.held(shared / "r.state.sqlite.lock"):  # as a run with --report shared/r.csv holds it
        result = annotate(images, small_db, tmp_path / "out2", models_root, "--report", shared / "r.txt")
    assert result.exit_code == 4
    assert_one_line_error(result.output, "another facebatch annotate", "is writing here")
    assert not (shared / "r.state.sqlite").exists()


def test_a_lock_file_planted_as_a_link_is_refused_and_its_target_left_alone(tmp_path, small_db, models_root):
    images = blank_photos(tmp_path / "images", 1)
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "precious.txt"
    victim.write_text("precious\n")
    for lock in (out / "report.csv.lock", out / ".facebatch-annotate.lock"):
        lock.symlink_to(victim)
        result = annotate(images, small_db, out, models_root)
        assert result.exit_code != 0
        assert_one_line_error(result.output, str(lock), "symbolic link", "remove the link")
        assert victim.read_text() == "precious\n"
        lock.unlink()
    hard = out / "report.csv.lock"
    os.link(victim, hard)  # a hard link: no link to refuse, but a file with another name
    result = annotate(images, small_db, out, models_root)
    assert result.exit_code != 0
    assert_one_line_error(result.output, str(hard), "hard links", "move it away")
    assert victim.read_text() == "precious\n"
    hard.unlink()
    (out / ".facebatch-annotate.lock").mkdir()  # a folder where the lock file goes
    result = annotate(images, small_db, out, models_root)
    assert_one_line_error(result.output, str(out / ".facebatch-annotate.lock"), "not facebatch's lock file",
                          "move it away")
    (out / ".facebatch-annotate.lock").rmdir()
    assert annotate(images, small_db, out, models_root).exit_code == 0


def test_a_photo_whose_name_is_near_the_file_system_limit_is_annotated(tmp_path, four_photos, small_db, models_root):
    long_name = "a" * 246 + ".jpg"  # 250 bytes: the copy's temporary name must not add to it
    (four_photos / sorted(p.name for p in four_photos.iterdir())[0]).rename(four_photos / long_name)
    out = tmp_path / "out"
    result = annotate(four_photos, small_db, out, models_root, "--xmp")
    assert result.exit_code == 0, result.output
    assert (out / long_name).is_file()
    assert {r["image"] for r in report_rows(out / "report.csv") if r["status"] == "ok"} >= {long_name}

    gif_name = "g" * 248 + ".gif"  # 252 bytes: its copy, NAME.gif.jpg, cannot exist on this file system
    Image.open(four_photos / long_name).save(four_photos / gif_name)
    result = annotate(four_photos, small_db, out, models_root)
    assert result.exit_code == 3, result.output  # an error row for the GIF, and the run goes on
    [row] = [r for r in report_rows(out / "report.csv") if r["image"] == gif_name]
    assert row["status"] == "error" and "shorten the photo's file name" in row["error"], row


def test_sidecar_temporaries_left_by_a_killed_run_are_removed_once_they_are_old(tmp_path, small_db, models_root):
    images = blank_photos(tmp_path / "images", 1)
    old = images / ".blank_000.png.xmp.k1ll3d00.facebatch-tmp"
    fresh = images / ".blank_000.png.xmp.wr1t1ng0.facebatch-tmp"  # another run may be writing it now
    for leftover in (old, fresh):
        leftover.write_text("<rdf:li>removed person</rdf:li>")
    os.utime(old, (time.time() - 2 * 3600,) * 2)
    assert annotate(images, small_db, tmp_path / "out", models_root, "--xmp").exit_code == 0
    assert not old.exists() and fresh.exists()


def test_a_file_in_place_of_the_review_folder_stops_the_run_before_any_result_is_lost(tmp_path, four_photos,
                                                                                       small_db, models_root):
    out = tmp_path / "out"
    assert annotate(four_photos, small_db, out, models_root).exit_code == 0
    report = (out / "report.csv").read_bytes()
    (out / "review").rename(tmp_path / "review.bak")
    (out / "review").write_text("x")
    result = annotate(four_photos, small_db, out, models_root, "--force")
    assert result.exit_code == 1
    assert_one_line_error(result.output, str(out / "review"), "cannot write the review pages", "move it away")
    assert (out / "report.csv").read_bytes() == report
    (out / "review").unlink()
    (tmp_path / "review.bak").rename(out / "review")
    again = annotate(four_photos, small_db, out, models_root)
    assert "(0 processed, 0 relabelled, 4 unchanged)" in again.output  # every stored face is still there


def test_the_group_commands_stop_with_exit_4_while_an_annotate_writes_the_folder(tmp_path, small_db, models_root):
    images = blank_photos(tmp_path / "images", 1)
    out = tmp_path / "out"
    assert annotate(images, small_db, out, models_root).exit_code == 0
    with locks.held(out / ".facebatch-annotate.lock"):
        for command in (["unknowns"], ["people", "name", "g0001", "Ada"], ["people", "ignore", "g0001"]):
            result = run(*command, "--out", out, *(["--db", small_db] if command[0] != "people" or
                                                   command[1] == "name" else []))
            assert result.exit_code == 4, (command, result.output)
            assert_one_line_error(result.output, "another facebatch annotate")
    assert run("unknowns", "--out", out, "--db", small_db).exit_code == 0


def test_an_output_folder_deleted_during_the_run_is_an_error_not_a_report_of_missing_copies(
        tmp_path, four_photos, small_db, models_root, monkeypatch):
    from facebatch import annotation

    out = tmp_path / "out"
    real_detect = annotation._detect

    def detect_then_someone_deletes_out(*args, **kwargs):
        failures = real_detect(*args, **kwargs)
        shutil.rmtree(out)
        return failures

    monkeypatch.setattr(annotation, "_detect", detect_then_someone_deletes_out)
    result = annotate(four_photos, small_db, out, models_root)
    assert result.exit_code == 1
    assert_one_line_error(result.output, str(out), "removed during the run", "run the same command again")
    assert not (out / "report.csv").exists()
    monkeypatch.setattr(annotation, "_detect", real_detect)
    assert annotate(four_photos, small_db, out, models_root).exit_code == 0


def test_an_out_folder_of_other_files_is_refused_and_left_as_it_was(tmp_path, small_db, models_root):
    images = blank_photos(tmp_path / "images", 2)
    mine = tmp_path / "Documents"
    (mine / "review" / "thumbs").mkdir(parents=True)
    files = {mine / "blank_000.png": b"my own blank_000.png", mine / "review.html": b"<p>my page</p>",
             mine / "review" / "thumbs" / "x.jpg": b"keep"}
    for path, content in files.items():
        path.write_bytes(content)
    result = annotate(images, small_db, mine, models_root)
    assert result.exit_code == 1
    assert result.output == (f"Error: {mine}: holds files facebatch did not write (such as blank_000.png), which "
                             "annotated copies and review pages could replace; choose a new or empty --out, or the "
                             "folder of an earlier annotate run (one made before facebatch marked its folders: mark "
                             f"it with touch {mine}/.facebatch-output)\n")
    assert all(path.read_bytes() == content for path, content in files.items())
    assert sorted(p.name for p in mine.iterdir()) == ["blank_000.png", "review", "review.html"]
    # a folder of hidden files only (a share's .DS_Store) is empty to the user; an earlier run's is ours
    hidden = tmp_path / "share"
    hidden.mkdir()
    (hidden / ".DS_Store").write_bytes(b"finder")
    assert annotate(images, small_db, hidden, models_root).exit_code == 0
    assert (hidden / ".DS_Store").read_bytes() == b"finder"
    assert annotate(images, small_db, hidden, models_root).exit_code == 0


def test_a_loop_of_links_given_as_a_path_is_one_line(tmp_path, small_db, models_root):
    images = blank_photos(tmp_path / "images", 1)
    (tmp_path / "l1").symlink_to(tmp_path / "l2")
    (tmp_path / "l2").symlink_to(tmp_path / "l1")
    loop = tmp_path / "l1"
    for args in (["annotate", loop, "--db", small_db], ["annotate", images, "--db", small_db, "--out", loop],
                 ["annotate", images, "--db", small_db, "--out", tmp_path / "out", "--report", loop],
                 ["annotate", images, "--db", small_db, "--out", tmp_path / "out", "--summary-json", loop],
                 ["annotate", images, "--db", loop, "--out", tmp_path / "out"], ["people", "list", "--db", loop],
                 ["people", "name", "g0001", "ada", "--db", loop, "--out", tmp_path / "out"]):
        result = run(*args, *(["--model-dir", models_root] if args[0] == "annotate" else []))
        assert result.exit_code == 1, (args, result.output)
        lines = result.output.splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in result.output, (args, lines)


# 10. A symlinked database ----------------------------------------------------------------------

def test_a_symlinked_database_is_updated_through_the_link(tmp_path, small_db, models_root, celebrity):
    real = tmp_path / "vault" / "faces.json"
    real.parent.mkdir()
    shutil.copy(small_db, real)
    link = tmp_path / "DataBase" / "DataBase.json"
    link.parent.mkdir()
    link.symlink_to(real)
    people = tmp_path / "People"
    (people / "elton_john").mkdir(parents=True)
    shutil.copy(sorted((celebrity / "train" / "elton_john").glob("*.jpg"))[0], people / "elton_john")
    assert run("enroll", people, "--db", link, "--model-dir", models_root, "-q").exit_code == 0
    assert link.is_symlink() and link.resolve() == real
    assert set(json.loads(real.read_text())["people"]) == {"madonna", "elton_john"}
    assert stat.S_IMODE(real.stat().st_mode) == 0o600
    assert sorted(p.name for p in link.parent.iterdir()) == ["DataBase.json"]


# 11. Permissions -------------------------------------------------------------------------------

def test_outputs_follow_the_umask_and_personal_data_stays_private(tmp_path, small_db, models_root):
    images = blank_photos(tmp_path / "images", 1)
    out = tmp_path / "out"
    result = run_process("annotate", images, "--db", small_db, "--out", out, "--model-dir", models_root, "-q",
                         "--summary-json", tmp_path / "summary.json", umask=0o027)
    assert result.returncode == 0, result.stderr
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    assert mode(out / "blank_000.png") == 0o640
    assert mode(out / "report.csv") == 0o640
    assert mode(tmp_path / "summary.json") == 0o640
    assert mode(out / "report.state.sqlite") == 0o600
    assert mode(small_db) == 0o600


# The rough edges -------------------------------------------------------------------------------

def test_a_failed_annotate_leaves_nothing_in_the_current_folder(tmp_path, models_root):
    work = tmp_path / "elsewhere"
    blank_photos(work / "images", 1)
    before = sorted(p.name for p in work.iterdir())
    result = run_process("annotate", "images", "--model-dir", models_root, cwd=work)
    assert result.returncode == 1
    assert_one_line_error(result.stderr, "DataBase/DataBase.json: no database; run facebatch enroll first")
    assert sorted(p.name for p in work.iterdir()) == before


def test_a_path_that_never_existed_is_no_such_file(tmp_path, models_root, celebrity):
    photo = sorted((celebrity / "val" / "madonna").glob("*.jpg"))[0]
    result = run("verify", tmp_path / "nope.jpg", photo, "--model-dir", models_root)
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: {tmp_path / 'nope.jpg'}: no such file; check the path"


def test_enroll_annotate_and_verify_share_their_execution_options():
    for command in ("enroll", "annotate", "verify"):
        text = run(command, "--help").output
        for option in ("--jobs", "--backend", "--scheduler", "--quiet", "--model-dir"):
            assert option in text, (command, option)


def test_an_unreachable_scheduler_fails_within_seconds(tmp_path, small_db, models_root):
    pytest.importorskip("distributed")
    images = blank_photos(tmp_path / "images", 1)
    started = time.monotonic()
    result = annotate(images, small_db, tmp_path / "out", models_root, "--scheduler", "tcp://127.0.0.1:9")
    assert result.exit_code == 1
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in result.output
    assert time.monotonic() - started < 30  # a bound on a hang, not a speed measurement (20 s before)


def test_a_photo_folder_replaced_by_a_photo_of_its_name_is_annotated(tmp_path, four_photos, small_db, models_root):
    # x.jpg/ held photos; now x.jpg is a photo: the copies' folder out/x.jpg/ must not stay in its way
    out = tmp_path / "out"
    folder = four_photos / "x.jpg"
    folder.mkdir()
    first, *_ = sorted(four_photos.glob("madonna_*.jpg"))
    shutil.copy(first, folder / "a.jpg")
    assert annotate(four_photos, small_db, out, models_root).exit_code == 0
    assert (out / "x.jpg" / "a.jpg").is_file()
    shutil.rmtree(folder)
    shutil.copy(first, four_photos / "x.jpg")
    again = annotate(four_photos, small_db, out, models_root)
    assert again.exit_code == 0, again.output
    assert (out / "x.jpg").is_file()
    assert "x.jpg" in {r["image"] for r in report_rows(out / "report.csv") if r["status"] == "ok"}


def test_a_read_only_manifest_is_one_line_naming_its_side_files(tmp_path, small_db, models_root):
    # SQLite makes -shm with the manifest's mode: after a chmod back, a read-only -shm still stops runs
    images = blank_photos(tmp_path / "images", 2)
    out = tmp_path / "out"
    assert annotate(images, small_db, out, models_root).exit_code == 0
    (out / "report.state.sqlite").chmod(0o400)
    result = run_process("annotate", images, "--db", small_db, "--out", out, "--model-dir", models_root, "-q",
                         prefix=without_root_bypass())
    assert result.returncode == 1
    assert_one_line_error(result.stderr, f"{out / 'report.state.sqlite'}: cannot write the manifest",
                          "fix the permissions (of it and of its -wal and -shm files)")


def test_a_run_from_a_folder_whose_name_is_not_utf8_writes_its_review_pages(tmp_path, four_photos, small_db,
                                                                              models_root):
    # the review page's commands name --out by its absolute path, which holds the folder's bytes
    here = os.path.join(os.fsencode(tmp_path), b"d\xe9")
    os.mkdir(here)
    result = run_process("annotate", four_photos, "--db", small_db, "--out", "out", "--model-dir", models_root, "-q",
                         cwd=here)
    assert result.returncode == 0, result.stderr
    page = (Path(os.fsdecode(here)) / "out" / "review.html").read_text(encoding="utf-8")
    # a page holds text: the folder is shown in bash's $'...' form, which pasted gives back its bytes
    commands = re.findall(r'<code class="cmd">(facebatch people name [^<]*)</code>', page)
    assert commands, "no group to name in the review page"
    word = html.unescape(commands[0]).split(" --out ", 1)[1]
    assert word.startswith("$'") and word.isascii()
    printed = subprocess.run(["bash", "-c", f"printf %s {word}"], capture_output=True, check=True).stdout
    assert printed == os.path.join(here, b"out")


def test_a_signal_stops_calibrate_waiting_for_the_database_lock(tmp_path, small_db, models_root, celebrity):
    """Waiting on another writer's lock, a cron job's SIGTERM stops the wait (it used to be ignored
    until the other writer finished, and then the thresholds were written anyway)."""
    labelled = tmp_path / "labelled"
    for person in ("elton_john", "madonna"):
        (labelled / person).mkdir(parents=True)
        for photo in sorted((celebrity / "val" / person).glob("*.jpg"))[:2]:
            shutil.copy(photo, labelled / person)
    db = tmp_path / "db.json"
    shutil.copy(small_db, db)
    before = db.read_bytes()
    with locks.held(db.with_name("db.json.lock")):  # another enroll is writing the database
        calibrating = subprocess.Popen([sys.executable, "-m", "facebatch", "calibrate", str(labelled), "--db", str(db),
                                "--write", "--model-dir", str(models_root), "-j", "1", "-q"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        # read in a thread: a calibrate that waits in silence must fail the test, not hang it
        lines: queue.Queue = queue.Queue()

        def read_lines():
            for line in calibrating.stdout:
                lines.put(line)
            lines.put("")  # the end of its output

        reader = threading.Thread(target=read_lines, daemon=True)
        reader.start()
        seen = []
        with contextlib.suppress(queue.Empty):
            while not seen or ("is writing it; waiting for it to finish" not in seen[-1] and seen[-1]):
                seen.append(lines.get(timeout=300))
        if not seen or "waiting for it to finish" not in seen[-1]:
            calibrating.kill()
            pytest.fail("calibrate never said it was waiting for the lock:\n" + "".join(seen))
        calibrating.send_signal(signal.SIGTERM)
        try:
            calibrating.wait(timeout=30)
        except subprocess.TimeoutExpired:
            calibrating.kill()
            pytest.fail("SIGTERM did not stop calibrate waiting for the lock")
        reader.join(timeout=10)
        while not lines.empty():
            seen.append(lines.get())
        output = "".join(seen)
    assert calibrating.returncode == 143, output
    assert "interrupted by signal 15; nothing was stored; run the same command again" in output, output
    assert "Traceback" not in output and db.read_bytes() == before
