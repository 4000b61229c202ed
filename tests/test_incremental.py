"""Nightly-safe annotate: incremental reruns, locking, SIGKILL-and-resume, SIGTERM, summary JSON."""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image, ImageOps

from cli_helpers import report_rows, run

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def people_db(tmp_path_factory, celebrity, models_root):
    db = tmp_path_factory.mktemp("db") / "DataBase.json"
    result = run("enroll", celebrity / "train", "--db", db, "--model-dir", models_root, "-j", "1", "-q")
    assert result.exit_code == 0, result.output
    return db


@pytest.fixture
def photos(tmp_path, celebrity):
    folder = tmp_path / "images"
    shutil.copytree(celebrity / "val", folder)
    return folder


def annotate(photos, db, out, models_root, *extra):
    return run("annotate", photos, "--db", db, "--out", out, "--model-dir", models_root, "-j", "1", "-q", *extra)


def test_rerun_carries_over_and_redoes_only_what_changed(tmp_path, photos, people_db, models_root):
    out = tmp_path / "out"
    first = annotate(photos, people_db, out, models_root)
    assert first.exit_code == 0 and "(25 processed, 0 relabelled, 0 unchanged)" in first.output
    report = (out / "report.csv").read_bytes()

    again = annotate(photos, people_db, out, models_root)
    assert "(0 processed, 0 relabelled, 25 unchanged)" in again.output
    assert (out / "report.csv").read_bytes() == report

    changed = sorted((photos / "madonna").glob("*.jpg"))[0]
    ImageOps.mirror(Image.open(changed)).save(changed)
    touched = sorted((photos / "elton_john").glob("*.jpg"))[0]
    os.utime(touched, ns=(time.time_ns(), time.time_ns()))
    gone = sorted((photos / "ben_afflek").glob("*.jpg"))[0]
    gone.unlink()
    assert (out / gone.relative_to(photos)).exists()
    third = annotate(photos, people_db, out, models_root)
    assert "images 24" in third.output and "(1 processed, 0 relabelled, 23 unchanged)" in third.output
    assert not (out / gone.relative_to(photos)).exists()
    assert gone.relative_to(photos).as_posix() not in (out / "report.csv").read_text()

    # A new threshold relabels from the stored faces: nothing is detected again, and the report
    # is byte for byte what a --force run (everything detected again) writes.
    relabelled = annotate(photos, people_db, out, models_root, "--threshold", "0.6")
    assert "(0 processed, 24 relabelled, 0 unchanged)" in relabelled.output
    report = (out / "report.csv").read_bytes()
    forced = annotate(photos, people_db, out, models_root, "--threshold", "0.6", "--force")
    assert "(24 processed, 0 relabelled, 0 unchanged)" in forced.output
    assert (out / "report.csv").read_bytes() == report


def test_a_database_change_relabels_without_detecting(tmp_path, photos, people_db, models_root):
    db = tmp_path / "db.json"
    shutil.copy(people_db, db)
    out = tmp_path / "out"
    annotate(photos, db, out, models_root)
    assert run("people", "remove", "madonna", "--db", db).exit_code == 0
    madonna_copy = next((out / "madonna").glob("*.jpg"))
    drawn_before = madonna_copy.read_bytes()
    result = annotate(photos, db, out, models_root)
    assert "(0 processed, 25 relabelled, 0 unchanged)" in result.output
    names = {line.split(",")[2] for line in (out / "report.csv").read_text().splitlines()[1:]}
    assert "madonna" not in names
    assert madonna_copy.read_bytes() != drawn_before  # redrawn with the new label
    report = (out / "report.csv").read_bytes()
    assert "(25 processed, 0 relabelled, 0 unchanged)" in annotate(photos, db, out, models_root, "--force").output
    assert (out / "report.csv").read_bytes() == report


def test_second_run_on_the_same_output_is_refused(tmp_path, photos, people_db, models_root):
    out = tmp_path / "out"
    out.mkdir()
    fd = os.open(out / ".facebatch-annotate.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, b"12345")
    try:
        result = annotate(photos, people_db, out, models_root)
    finally:
        os.close(fd)
    assert result.exit_code == 4
    assert result.output.strip() == (f"Error: {out}: another facebatch annotate (pid 12345) is writing here; "
                                     "wait for it to finish or choose another --out and --report")
    assert annotate(photos, people_db, out, models_root).exit_code == 0  # the lock died with its holder


def test_summary_json(tmp_path, photos, people_db, models_root):
    out = tmp_path / "out"
    result = annotate(photos, people_db, out, models_root, "--summary-json", tmp_path / "summary.json")
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert {k: summary[k] for k in ("images", "errors", "processed", "carried_over")} == \
        {"images": 25, "errors": 0, "processed": 25, "carried_over": 0}
    assert summary["faces"] == summary["known"] + summary["unknown"] >= 25
    assert summary["exit_code"] == 0 and summary["error"] == "" and summary["finished_at"].endswith("+00:00")
    assert result.output.count("\n") == 1  # --quiet: the summary line only


def test_summary_json_says_when_a_run_fails_or_stops(tmp_path, photos, people_db, models_root, many_photos):
    # a monitor must not read last night's success as tonight's
    out, summary_path = tmp_path / "out", tmp_path / "summary.json"
    assert annotate(photos, people_db, out, models_root, "--summary-json", summary_path).exit_code == 0
    for photo in photos.rglob("*.jpg"):
        photo.unlink()  # a share not mounted: the purge guard refuses
    refused = annotate(photos, people_db, out, models_root, "--summary-json", summary_path)
    assert refused.exit_code == 5
    summary = json.loads(summary_path.read_text())
    assert summary["exit_code"] == 5 and "missing" in summary["error"] and summary["images"] is None

    stopped_out = tmp_path / "stopped"
    process = annotate_process(many_photos, people_db, stopped_out, models_root, "--summary-json", summary_path)
    wait_for_saved(stopped_out, process, 8)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=300)
    summary = json.loads(summary_path.read_text())
    assert process.returncode == 143 and summary["exit_code"] == 143 and "interrupted by signal 15" in summary["error"]


def annotate_process(photos, db, out, models_root, *extra):
    command = [sys.executable, "-m", "facebatch", "annotate", str(photos), "--db", str(db), "--out", str(out),
               "--model-dir", str(models_root), "-j", "1", "-q", *extra]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def saved_rows(out: Path) -> int:
    path = out / "report.state.sqlite"
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as db:
            return db.execute("SELECT count(*) FROM images").fetchone()[0]
    except sqlite3.Error:
        return 0


def wait_for_saved(out: Path, process, at_least: int, limit_s: float = 300) -> int:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and process.poll() is None:
        count = saved_rows(out)
        if count >= at_least:
            return count
        time.sleep(0.05)
    raise AssertionError(f"run ended or stalled before saving {at_least} images")


@pytest.fixture
def many_photos(tmp_path, celebrity):
    """50 photos: the validation set twice over (the second copy mirrored), so a run spans 7 chunks."""
    folder = tmp_path / "many"
    shutil.copytree(celebrity / "val", folder / "a")
    for photo in (celebrity / "val").rglob("*.jpg"):
        target = folder / "b" / photo.relative_to(celebrity / "val")
        target.parent.mkdir(parents=True, exist_ok=True)
        ImageOps.mirror(Image.open(photo)).save(target)
    return folder


def test_sigkill_at_any_moment_then_rerun_gives_the_same_report(tmp_path, many_photos, people_db, models_root):
    reference_out = tmp_path / "reference"
    assert annotate(many_photos, people_db, reference_out, models_root).exit_code == 0
    reference = (reference_out / "report.csv").read_bytes()

    out = tmp_path / "killed"
    for at_least in (8, 24):  # kill twice, at different points
        process = annotate_process(many_photos, people_db, out, models_root)
        wait_for_saved(out, process, at_least)
        process.send_signal(signal.SIGKILL)
        process.wait()
        # whatever exists under its final name is whole
        for image in out.rglob("*.jpg"):
            if not image.name.startswith("."):
                Image.open(image).load()
    assert saved_rows(out) < 50
    resumed = annotate(many_photos, people_db, out, models_root)
    assert resumed.exit_code == 0, resumed.output
    assert (out / "report.csv").read_bytes() == reference
    assert not [p for p in out.rglob("*") if p.name.endswith(".facebatch-tmp")]


def child_processes(pid: int) -> list[tuple[int, int]]:
    """(pid, resident pages) of the processes whose parent is `pid`."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append((int(stat.parent.name), int(fields[21])))
    return found


def test_a_worker_process_killed_under_the_run_ends_it_in_one_line(tmp_path, many_photos, people_db, models_root):
    # the OOM killer picks the largest process: a worker of --backend processes, holding the models
    out = tmp_path / "out"
    process = annotate_process(many_photos, people_db, out, models_root, "--backend", "processes", "-j", "2")
    wait_for_saved(out, process, 8)
    workers = sorted(child_processes(process.pid), key=lambda p: -p[1])
    assert workers, "no worker processes"
    os.kill(workers[0][0], signal.SIGKILL)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 1, stderr
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].startswith("Error: a worker process died"), stderr
    assert "finished work is saved; run the same command again, with fewer --jobs if memory is short" in stderr
    saved = saved_rows(out)
    resumed = annotate(many_photos, people_db, out, models_root)
    assert resumed.exit_code == 0 and f"({50 - saved} processed, 0 relabelled, {saved} unchanged)" in resumed.output


def test_sigterm_stops_cleanly_and_the_rerun_finishes(tmp_path, many_photos, people_db, models_root):
    out = tmp_path / "out"
    process = annotate_process(many_photos, people_db, out, models_root)
    wait_for_saved(out, process, 8)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 143, stderr
    assert "interrupted by signal 15; finished work is saved, run the same command to go on" in stderr
    saved = saved_rows(out)
    assert 8 <= saved < 50 and saved % 8 == 0  # whole chunks only
    resumed = annotate(many_photos, people_db, out, models_root)
    assert f"({50 - saved} processed, 0 relabelled, {saved} unchanged)" in resumed.output


def annotate_signalled_in(target: str, photos, db, out, models_root, *extra) -> subprocess.CompletedProcess:
    """Fault injection: annotate in a child process that sends itself SIGTERM as `target`
    ("module:attribute", or "module:Class.method") is called."""
    module, _, name = target.partition(":")
    owner, _, attribute = name.rpartition(".")
    code = ("import importlib, os, signal, sys\n"
            "from facebatch.cli import main\n"
            f"owner = importlib.import_module('facebatch.{module}')\n"
            + (f"owner = getattr(owner, {owner!r})\n" if owner else "")
            + f"original = getattr(owner, {attribute!r})\n"
            "def signalled(*args, **kwargs):\n"
            "    os.kill(os.getpid(), signal.SIGTERM)\n"
            "    return original(*args, **kwargs)\n"
            f"setattr(owner, {attribute!r}, signalled)\n"
            f"sys.argv = ['facebatch', 'annotate', {str(photos)!r}, '--db', {str(db)!r}, '--out', {str(out)!r}, "
            f"'--model-dir', {str(models_root)!r}, '-q', *{[str(e) for e in extra]!r}]\n"
            "main()\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)


def test_sigterm_while_the_report_is_written_finishes_the_run_and_exits_143(tmp_path, photos, people_db, models_root):
    # fault injection: the signal lands after the last chunk, while the CSV report is being written
    out = tmp_path / "out"
    summary = tmp_path / "summary.json"
    done = annotate_signalled_in("writers:CsvReportWriter.write", photos, people_db, out, models_root,
                                 "--summary-json", summary)
    assert done.returncode == 143, done.stderr
    assert json.loads(summary.read_text())["exit_code"] == 143  # what the process says, the JSON says
    assert "warning: signal 15 arrived as the work was ending; it is finished and saved" in done.stderr
    assert "images 25, " in done.stderr  # the summary is still printed
    assert "Traceback" not in done.stderr
    rerun = annotate(photos, people_db, out, models_root)
    assert rerun.exit_code == 0 and "(0 processed, 0 relabelled, 25 unchanged)" in rerun.output, rerun.output


def test_sigterm_waits_for_the_chunks_worker_threads_are_in(tmp_path, many_photos, people_db, models_root):
    # fault injection: each copy takes a second to write, so the other thread is mid-write when
    # the first chunk is saved and the signal is seen; the process must not exit under it (joblib's
    # threads finish the chunk they are in before the process ends; this keeps it so)
    out, marks = tmp_path / "out", tmp_path / "marks"
    marks.mkdir()
    code = ("import sys, time\nfrom pathlib import Path\n"
            "from facebatch import writers\nfrom facebatch.cli import main\n"
            "write = writers.AnnotatedCopyWriter.write\n"
            f"marks = Path({str(marks)!r})\n"
            "def slow(self, output):\n"
            "    name = output.relative.replace('/', '_')\n"
            "    (marks / ('started-' + name)).touch()\n"
            "    time.sleep(1)\n"
            "    done = write(self, output)\n"
            "    (marks / ('done-' + name)).touch()\n"
            "    return done\n"
            "writers.AnnotatedCopyWriter.write = slow\n"
            f"sys.argv = ['facebatch', 'annotate', {str(many_photos)!r}, '--db', {str(people_db)!r}, '--out', "
            f"{str(out)!r}, '--model-dir', {str(models_root)!r}, '-q', '-j', '2']\n"
            "main()\n")
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    wait_for_saved(out, process, 8)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 143, stderr
    started = {p.name[len("started-"):] for p in marks.glob("started-*")}
    done = {p.name[len("done-"):] for p in marks.glob("done-*")}
    assert started == done, started - done
    assert not [p for p in out.rglob("*") if p.name.endswith(".facebatch-tmp")]


def test_a_sigterm_mid_run_leaves_a_report_that_agrees_with_the_outputs(tmp_path, many_photos, people_db, models_root):
    out = tmp_path / "out"
    assert annotate(many_photos, people_db, out, models_root).exit_code == 0
    gone = sorted((many_photos / "a" / "madonna").glob("*.jpg"))
    shutil.rmtree(many_photos / "a" / "madonna")  # their copies are removed at the start of the next run
    for photo in (many_photos / "b").rglob("*.jpg"):
        photo.write_bytes(photo.read_bytes() + b"\0")  # changed: detected again, chunk by chunk
    # fault injection: SIGTERM as the first chunk of detection starts (the cron timeout of a long night)
    done = annotate_signalled_in("annotation:annotate_chunk", many_photos, people_db, out, models_root, "-j", "1")
    assert done.returncode == 143, done.stderr
    rows = report_rows(out / "report.csv")
    assert not [r for r in rows if r["image"].startswith("a/madonna/")], "the report lists photos removed"
    assert len({r["image"] for r in rows}) == 50 - len(gone)
    for row in rows:
        assert row["annotated"] and (out / row["annotated"]).is_file(), row


def test_a_second_ctrl_c_stops_at_once_with_exit_130_and_the_rerun_finishes(tmp_path, many_photos, people_db,
                                                                             models_root):
    out = tmp_path / "out"
    reference_out = tmp_path / "reference"
    process = annotate_process(many_photos, people_db, out, models_root)
    wait_for_saved(out, process, 8)
    process.send_signal(signal.SIGINT)  # the first lets the chunk in flight finish
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=300)
    # 130; or, when the second signal lands as the process exits, killed by SIGINT (a shell shows 130 too)
    assert process.returncode in (130, -signal.SIGINT), stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("Error: interrupted") and "run the same command to go on" in last, stderr
    assert "Traceback" not in stderr and "Aborted" not in stderr
    resumed = annotate(many_photos, people_db, out, models_root)
    assert resumed.exit_code == 0, resumed.output
    assert annotate(many_photos, people_db, reference_out, models_root).exit_code == 0
    assert (out / "report.csv").read_bytes() == (reference_out / "report.csv").read_bytes()


def test_relabelling_never_starts_tensorflow(tmp_path, photos, people_db, models_root):
    out = tmp_path / "out"
    assert annotate(photos, people_db, out, models_root).exit_code == 0
    code = ("import sys\nfrom facebatch.cli import main\n"
            f"sys.argv = ['facebatch', 'annotate', {str(photos)!r}, '--db', {str(people_db)!r}, '--out', {str(out)!r},"
            f" '--model-dir', {str(models_root)!r}, '-q', '--threshold', '0.7']\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
            "print('tensorflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "(0 processed, 25 relabelled, 0 unchanged)" in done.stderr
    assert done.stdout.strip() == "False"


def test_sigterm_stops_enroll_cleanly_and_keeps_what_was_embedded(tmp_path, celebrity, models_root):
    people = tmp_path / "People"
    shutil.copytree(celebrity / "train", people)
    db = tmp_path / "db.json"
    command = [sys.executable, "-m", "facebatch", "enroll", str(people), "--db", str(db), "--model-dir",
               str(models_root), "-j", "1"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = process.stderr.readline()  # a plain line per photo embedded (not a terminal)
    assert first.endswith(": embedded\n"), first
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 143, stderr
    assert "interrupted by signal 15; finished work is saved" in stderr
    saved = sum(len(v) for v in json.loads(db.read_text())["people"].values())
    assert 1 <= saved < 90
    resumed = run("enroll", people, "--db", db, "--model-dir", models_root, "-q", "-j", "1")
    assert resumed.exit_code == 0
    assert sum(len(v) for v in json.loads(db.read_text())["people"].values()) == 90


def test_a_rerun_redraws_an_annotated_copy_damaged_in_place(tmp_path, photos, people_db, models_root):
    out = tmp_path / "out"
    assert annotate(photos, people_db, out, models_root).exit_code == 0
    copies = sorted(p for p in out.rglob("*.jpg") if "review" not in p.relative_to(out).parts)
    damaged, kept = copies[0], copies[1]
    original, kept_bytes = damaged.read_bytes(), kept.read_bytes()
    damaged.write_bytes(b"\0" * len(original))  # junk of the same size, written in place
    again = annotate(photos, people_db, out, models_root)
    assert again.exit_code == 0, again.output
    assert "(0 processed, 1 relabelled, 24 unchanged)" in again.output, again.output
    assert damaged.read_bytes() == original and kept.read_bytes() == kept_bytes
    # drawn once: the copy as redrawn is what the next run expects
    assert "(0 processed, 0 relabelled, 25 unchanged)" in annotate(photos, people_db, out, models_root).output


def test_an_output_folder_copied_without_its_times_is_not_redrawn(tmp_path, photos, people_db, models_root):
    # cp -r, or a restore from a backup that keeps no times: same bytes, new mtimes
    out = tmp_path / "out"
    assert annotate(photos, people_db, out, models_root).exit_code == 0
    copied = tmp_path / "copied"
    shutil.copytree(out, copied, copy_function=shutil.copy)
    again = annotate(photos, people_db, copied, models_root)
    assert "(0 processed, 0 relabelled, 25 unchanged)" in again.output, again.output
    copy = next(p for p in copied.rglob("*.jpg") if "review" not in p.relative_to(copied).parts)
    original = copy.read_bytes()
    copy.write_bytes(bytes(reversed(original)))  # same size, other bytes: still caught
    assert "(0 processed, 1 relabelled, 24 unchanged)" in annotate(photos, people_db, copied, models_root).output
    assert copy.read_bytes() == original


def test_a_manifest_of_schema_2_is_migrated_without_detecting_again(tmp_path, photos, people_db, models_root):
    out = tmp_path / "out"
    assert annotate(photos, people_db, out, models_root).exit_code == 0
    report = (out / "report.csv").read_bytes()
    with sqlite3.connect(out / "report.state.sqlite") as db:  # as facebatch before the copies' stat left it
        db.execute("ALTER TABLE images DROP COLUMN copy_stat")
        db.execute("UPDATE meta SET value='2' WHERE key='schema'")
    copy = next(p for p in out.rglob("*.jpg") if "review" not in p.relative_to(out).parts)
    migrated = annotate(photos, people_db, out, models_root)
    assert "(0 processed, 0 relabelled, 25 unchanged)" in migrated.output, migrated.output
    assert (out / "report.csv").read_bytes() == report
    with sqlite3.connect(out / "report.state.sqlite") as db:
        assert db.execute("SELECT value FROM meta WHERE key='schema'").fetchone() == ("3",)
        assert db.execute("SELECT COUNT(*) FROM images WHERE copy_stat=''").fetchone() == (0,)
    original = copy.read_bytes()
    copy.write_bytes(original[:100])  # the stats found on migration now guard the copies
    assert "(0 processed, 1 relabelled, 24 unchanged)" in annotate(photos, people_db, out, models_root).output
    assert copy.read_bytes() == original


def test_results_from_before_the_second_look_are_kept_except_web_photos_with_no_face(tmp_path, photos, people_db,
                                                                                     models_root, monkeypatch):
    """Upgrading to the second look for web-size photos with no face (result format 3) detects
    again only those photos: every other format-2 result is what format 3 finds, and stays."""
    from facebatch import annotation
    from facebatch.detect import DetectorSettings

    out = tmp_path / "out"
    with monkeypatch.context() as before:  # facebatch as it was: one look, format 2
        before.setattr(annotation, "RESULT_FORMAT", 2)
        before.setattr(DetectorSettings, "second_look_for", lambda self, width, height: False)
        assert annotate(photos, people_db, out, models_root).exit_code == 0
    missed = {r["image"] for r in report_rows(out / "report.csv") if r["status"] == "no_face"}
    # a clear 38 px face in a 200 x 264 photo, which MTCNN misses on the shrunken copy
    assert missed == {"ben_afflek/httpcsvkmeuaafdfjpg.jpg"}, missed

    upgraded = annotate(photos, people_db, out, models_root)
    assert upgraded.exit_code == 0 and "(1 processed, 0 relabelled, 24 unchanged)" in upgraded.output, upgraded.output
    found = [r for r in report_rows(out / "report.csv") if r["image"] in missed]
    assert [(r["status"], r["name"]) for r in found] == [("ok", "ben_afflek")]
    assert "(0 processed, 0 relabelled, 25 unchanged)" in annotate(photos, people_db, out, models_root).output


def test_a_rerun_puts_back_annotated_copies_and_thumbnails_that_were_deleted(tmp_path, photos, people_db, models_root):
    out = tmp_path / "out"
    assert annotate(photos, people_db, out, models_root).exit_code == 0
    copies = sorted(p for p in out.rglob("*.jpg") if "review" not in p.relative_to(out).parts)
    thumbs = sorted((out / "review").rglob("*.jpg"))
    lost_copy, lost_thumb = copies[0], thumbs[0]
    original = lost_copy.read_bytes()
    lost_copy.unlink()
    lost_thumb.unlink()
    again = annotate(photos, people_db, out, models_root)
    assert again.exit_code == 0, again.output
    assert "(0 processed, " in again.output and "relabelled" in again.output  # drawn again, not detected
    assert lost_copy.read_bytes() == original and lost_thumb.is_file()
    assert "(0 processed, 0 relabelled, 25 unchanged)" in annotate(photos, people_db, out, models_root).output


class _Killed(BaseException):
    """Stands for SIGKILL arriving after the workers wrote a chunk's outputs, before it was saved."""


@pytest.mark.parametrize("changed", [("--threshold", "0.6"), ("--min-face-size", "90")], ids=["relabel", "detect"])
def test_outputs_written_by_a_run_killed_before_saving_are_redrawn_by_the_next_run(changed, tmp_path, photos,
                                                                                    people_db, models_root,
                                                                                    monkeypatch):
    from facebatch.state import RunState

    reference_photos = tmp_path / "reference_images"
    shutil.copytree(photos, reference_photos)
    assert annotate(reference_photos, people_db, tmp_path / "reference", models_root, "--xmp").exit_code == 0
    out = tmp_path / "out"
    assert annotate(photos, people_db, out, models_root, "--xmp").exit_code == 0

    real_put_many = RunState.put_many

    def killed_after_the_writes(self, records):
        records = list(records)
        if records:
            raise _Killed
        real_put_many(self, records)

    monkeypatch.setattr(RunState, "put_many", killed_after_the_writes)
    with pytest.raises(_Killed):  # other settings: copies and sidecars are rewritten, never saved
        annotate(photos, people_db, out, models_root, "--xmp", *changed)
    monkeypatch.setattr(RunState, "put_many", real_put_many)

    again = annotate(photos, people_db, out, models_root, "--xmp")  # back to the settings of the records
    assert again.exit_code == 0, again.output
    assert (out / "report.csv").read_bytes() == (tmp_path / "reference" / "report.csv").read_bytes()
    copies = sorted(p.relative_to(out) for p in out.rglob("*.jpg") if "review" not in p.parts)
    assert copies and all((out / p).read_bytes() == (tmp_path / "reference" / p).read_bytes() for p in copies)
    sidecars = sorted(p.relative_to(photos) for p in photos.rglob("*.xmp"))
    assert sidecars == sorted(p.relative_to(reference_photos) for p in reference_photos.rglob("*.xmp"))
    assert all((photos / p).read_bytes() == (reference_photos / p).read_bytes() for p in sidecars)


def _loky_workers_of(pid: int) -> list[int]:
    workers = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid and b"LokyProcess" in command:
            workers.append(int(entry.name))
    return workers


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_worker_processes_end_soon_after_their_run_is_killed(tmp_path, many_photos, people_db, models_root):
    out = tmp_path / "out"
    process = annotate_process(many_photos, people_db, out, models_root, "-j", "2", "--backend", "processes")
    wait_for_saved(out, process, 8)  # the workers are busy with chunks
    workers = _loky_workers_of(process.pid)
    assert workers, "no worker processes started"
    process.send_signal(signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + 15  # they check once a second; loky alone kept them for minutes
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(w) for w in workers)


@pytest.mark.parametrize("size, with_a_face, try_rotations, kept", [
    ((4032, 3024), False, False, True),  # the 2 % rule sets a camera photo's smallest face: no second look
    ((4032, 3024), True, True, True),
    ((640, 480), True, False, True),  # the first look found it, and runs as before
    ((640, 480), False, False, False),  # the second look may find a face
    ((640, 480), True, True, True),  # found upright or turned, as before: the second look comes after the turns
    ((640, 480), False, True, False),
])
def test_which_results_from_before_the_second_look_stand(size, with_a_face, try_rotations, kept):
    from facebatch.annotation import _unchanged_by_the_second_look
    from facebatch.config import DetectionSettings, Settings
    from facebatch.detect import Face
    from facebatch.results import LabelledFace, ImageResult
    from facebatch.state import ImageRecord

    faces = (LabelledFace(Face(10, 10, 90, 100, 0.99), "UNKNOWN", 1.3),) if with_a_face else ()
    result = ImageResult("a.jpg", "ok" if faces else "no_face", faces, width=size[0], height=size[1])
    settings = Settings(detection=DetectionSettings(try_rotations=try_rotations))
    assert _unchanged_by_the_second_look(ImageRecord(result, "format-2 key", ""), settings) is kept
