"""`annotate --xmp` end to end: real photos, real weights, sidecars read back by exiftool.

The regions must sit where the report's boxes are (EXIF-rotated photos included), follow label
changes on later runs (a removed person's region disappears, by relabelling), and leave the
original photos untouched.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from facebatch import xmp

from cli_helpers import report_rows, run
from test_xmp import exiftool


def regions(info: dict) -> list[dict]:
    return info.get("RegionInfo", {}).get("RegionList", [])


@pytest.fixture(scope="module")
def db(tmp_path_factory, celebrity, models_root):
    path = tmp_path_factory.mktemp("xmpdb") / "db.json"
    assert run("enroll", celebrity / "train", "--db", path, "--model-dir", models_root, "-q").exit_code == 0
    return path


def region_on_the_face(images: Path, photo: str, name: str, db: Path, models_root: Path, grown: float = 1.0) -> str:
    """exiftool's RegionInfo value for one face region named `name`, on the face annotate finds in
    `photo` (its box `grown` times as wide and high), as a photo manager would write it."""
    boxes = images.parent / "boxes"  # where the faces are
    assert run("annotate", images, "--db", db, "--out", boxes, "--model-dir", models_root, "-q").exit_code == 0
    [face] = [r for r in report_rows(boxes / "report.csv") if r["image"] == photo]
    with Image.open(images / photo) as image:
        size = image.size
    x, y, w, h = xmp.normalised_area(xmp.FaceRegion("x", *(int(face[k]) for k in ("left", "top", "right", "bottom"))),
                                     size)
    return (f"{{AppliedToDimensions={{W={size[0]},H={size[1]},Unit=pixel}},RegionList=[{{Name={name},"
            f"Type=Face,Area={{X={x},Y={y},W={w * grown},H={h * grown},Unit=normalized}}}}]}}")


def rotated_copy(source: Path, target: Path, orientation: int) -> None:
    """A photo stored turned, with the EXIF orientation that shows it upright again."""
    undo = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}[orientation]
    with Image.open(source) as image:
        stored = image.convert("RGB").transpose(undo)
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.save(target, exif=exif, quality=95)


def test_regions_match_the_report_boxes_and_follow_label_changes(tmp_path, celebrity, db, models_root):
    images = tmp_path / "images"
    images.mkdir()
    madonna = sorted((celebrity / "val" / "madonna").glob("*.jpg"))
    shutil.copy(madonna[0], images / "plain.jpg")
    rotated_copy(madonna[1], images / "turned6.jpg", 6)
    rotated_copy(madonna[2], images / "turned8.jpg", 8)
    shutil.copy(sorted((celebrity / "val" / "elton_john").glob("*.jpg"))[0], images / "elton.jpg")
    originals = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in images.iterdir()}
    out = tmp_path / "out"
    result = run("annotate", images, "--db", db, "--out", out, "--model-dir", models_root, "-q", "--xmp")
    assert result.exit_code == 0, result.output
    report = report_rows(out / "report.csv")
    named = [r for r in report if r["name"] not in ("", "UNKNOWN")]
    assert {r["image"] for r in named} == {"plain.jpg", "turned6.jpg", "turned8.jpg", "elton.jpg"}

    for row in named:
        photo = images / row["image"]
        info = exiftool(photo.with_name(photo.name + ".xmp"))
        with Image.open(photo) as image:
            stored_w, stored_h = image.size
            orientation = image.getexif().get(0x0112, 1)
        upright = (stored_h, stored_w) if orientation in (5, 6, 7, 8) else (stored_w, stored_h)
        dims = info["RegionInfo"]["AppliedToDimensions"]
        assert (dims["W"], dims["H"]) == (stored_w, stored_h)  # MWG: the stored image, readers apply the orientation
        [region] = [r for r in regions(info) if r["Name"] == row["name"]]
        box = xmp.FaceRegion(row["name"], *(int(row[k]) for k in ("left", "top", "right", "bottom")))
        expected = xmp.normalised_area(box, upright, orientation)
        area = region["Area"]
        actual = (area["X"], area["Y"], area["W"], area["H"])
        scale = (stored_w, stored_h, stored_w, stored_h)
        assert all(abs(a - e) * s <= 1.0 for a, e, s in zip(actual, expected, scale)), (row["image"], actual, expected)
        assert region["Type"] == "Face"
        assert row["name"] in ([info["PersonInImage"]] if isinstance(info["PersonInImage"], str)
                               else info["PersonInImage"])

    # Remove a person: the next run relabels (no detection) and their regions disappear.
    assert run("people", "remove", "madonna", "--db", db).exit_code == 0
    again = run("annotate", images, "--db", db, "--out", out, "--model-dir", models_root, "-q", "--xmp")
    assert "(0 processed, 4 relabelled, 0 unchanged)" in again.output
    for name in ("plain.jpg", "turned6.jpg", "turned8.jpg"):
        sidecar = images / (name + ".xmp")
        assert not sidecar.exists() or not [r for r in regions(exiftool(sidecar)) if r["Name"] == "madonna"]
    assert [r["Name"] for r in regions(exiftool(images / "elton.jpg.xmp"))] == ["elton_john"]
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in images.iterdir()
            if p.suffix != ".xmp"} == originals  # the photos themselves are never written


def _one_elton_annotated_with_xmp(tmp_path, celebrity, db, models_root) -> tuple[Path, Path]:
    """(images, out) after annotate --xmp on one photo of Elton John, as images/elton.jpg."""
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(sorted((celebrity / "val" / "elton_john").glob("*.jpg"))[0], images / "elton.jpg")
    out = tmp_path / "out"
    assert run("annotate", images, "--db", db, "--out", out, "--model-dir", models_root, "-q", "--xmp").exit_code == 0
    return images, out


def test_a_region_renamed_in_a_photo_manager_is_not_doubled_by_a_forced_rerun(tmp_path, celebrity, db, models_root):
    """A photo manager that rewrites the region list drops our private marker; --force must not add a second box."""
    images, out = _one_elton_annotated_with_xmp(tmp_path, celebrity, db, models_root)
    sidecar = images / "elton.jpg.xmp"
    [ours] = regions(exiftool(sidecar))
    assert ours["Name"] == "elton_john"
    # The user renames the face; the manager writes the region back a little larger, without our field.
    area = ours["Area"]
    renamed = (f"{{AppliedToDimensions={{W={exiftool(sidecar)['RegionInfo']['AppliedToDimensions']['W']},"
               f"H={exiftool(sidecar)['RegionInfo']['AppliedToDimensions']['H']},Unit=pixel}},"
               f"RegionList=[{{Name=Sir Elton,Type=Face,Area={{X={area['X'] + 0.01},Y={area['Y'] - 0.01},"
               f"W={area['W'] * 1.3},H={area['H'] * 1.3},Unit=normalized}}}}]}}")
    subprocess.run(["exiftool", "-q", "-overwrite_original", f"-RegionInfo={renamed}",
                    "-XMP-iptcExt:PersonInImage=Sir Elton", str(sidecar)], check=True, timeout=60)
    assert [r["Name"] for r in regions(exiftool(sidecar))] == ["Sir Elton"]

    again = run("annotate", images, "--db", db, "--out", out, "--model-dir", models_root, "-q", "--xmp", "--force")
    assert again.exit_code == 0, again.output
    info = exiftool(sidecar)
    assert [r["Name"] for r in regions(info)] == ["Sir Elton"]  # the user's region, and no second box
    assert info["PersonInImage"] in ("Sir Elton", ["Sir Elton"])
    assert report_rows(out / "report.csv")[0]["name"] == "elton_john"  # the report still says what we saw


def test_a_photo_that_fails_to_read_loses_our_regions_with_its_copy(tmp_path, celebrity, db, models_root):
    images, out = _one_elton_annotated_with_xmp(tmp_path, celebrity, db, models_root)
    photo = images / "elton.jpg"
    assert [r["Name"] for r in regions(exiftool(images / "elton.jpg.xmp"))] == ["elton_john"]
    photo.write_bytes(b"\xff\xd8 not a photo any more")
    failed = run("annotate", images, "--db", db, "--out", out, "--model-dir", models_root, "-q", "--xmp")
    assert failed.exit_code == 3, failed.output
    assert not (images / "elton.jpg.xmp").exists()  # ours alone, so removed: the report shows no face either
    assert not (out / "elton.jpg").exists()


def test_a_sidecar_that_cannot_be_written_is_a_warning_and_the_faces_stand(tmp_path, celebrity, db, models_root):
    images, out = _one_elton_annotated_with_xmp(tmp_path, celebrity, db, models_root)
    sidecar_path = images / "elton.jpg.xmp"
    original = sidecar_path.read_bytes()
    sidecar_path.chmod(0o444)  # the user protects it; a stricter threshold would take the name out
    copies = []
    for _ in range(2):  # every run says so, and none detects the photo again
        result = run("annotate", images, "--db", db, "--out", out, "--model-dir", models_root, "-q", "--xmp",
                     "--threshold", "0.5")
        assert result.exit_code == 3, result.output
        assert f"warning: {images / 'elton.jpg'}: XMP sidecar: elton.jpg.xmp is read-only" in result.output
        assert "(0 processed, 1 relabelled, 0 unchanged)" in result.output
        [row] = report_rows(out / "report.csv")
        assert row["status"] == "ok" and row["name"] == "UNKNOWN" and (out / "elton.jpg").is_file()
        assert sidecar_path.read_bytes() == original
        copies.append((out / "elton.jpg").stat().st_mtime_ns)
    assert copies[0] == copies[1]  # the copy was right: only the sidecar is tried again, the photo not redrawn
    sidecar_path.chmod(0o644)
    fixed = run("annotate", images, "--db", db, "--out", out, "--model-dir", models_root, "-q", "--xmp",
                "--threshold", "0.5")
    assert fixed.exit_code == 0, fixed.output
    assert not sidecar_path.exists()  # ours alone, and no face is named any more


def test_a_photo_name_too_long_for_its_sidecar_keeps_its_faces(tmp_path, celebrity, db, models_root):
    images = tmp_path / "images"
    images.mkdir()
    name = "e" * 248 + ".jpg"  # 252 bytes: NAME.xmp fits, NAME.jpg.xmp would not
    shutil.copy(sorted((celebrity / "val" / "elton_john").glob("*.jpg"))[0], images / name)
    result = run("annotate", images, "--db", db, "--out", tmp_path / "out", "--model-dir", models_root, "-q",
                 "--xmp")
    assert result.exit_code == 3, result.output
    assert "shorten the photo's file name" in result.output
    [row] = report_rows(tmp_path / "out" / "report.csv")
    assert row["status"] == "ok" and row["name"] == "elton_john"


def test_a_read_only_sidecar_that_would_keep_a_removed_persons_name_is_warned_about(tmp_path, celebrity, db,
                                                                                    models_root):
    images, out = _one_elton_annotated_with_xmp(tmp_path, celebrity, db, models_root)
    sidecar_path = images / "elton.jpg.xmp"
    sidecar_path.chmod(0o444)
    (images / "elton.jpg").write_bytes(b"\xff\xd8 cut short")  # its regions should go, but cannot
    result = run("annotate", images, "--db", db, "--out", out, "--model-dir", models_root, "-q", "--xmp")
    assert result.exit_code == 3
    assert "facebatch's face regions could not be taken out of its XMP sidecar, which may still name people" \
        in result.output and "chmod u+w" in result.output
    (images / "elton.jpg").unlink()  # and when the photo is gone altogether
    summary = tmp_path / "summary.json"
    gone = run("annotate", images, "--db", db, "--out", out, "--model-dir", models_root, "-q", "--xmp",
               "--confirm-purge", "--summary-json", summary)
    assert "could not be taken out of its XMP sidecar" in gone.output and gone.exit_code == 3
    assert json.loads(summary.read_text())["output_failures"] == 1
    run("annotate", images, "--db", db, "--out", out, "--model-dir", models_root, "-q", "--xmp",
        "--summary-json", summary)
    assert json.loads(summary.read_text())["output_failures"] == 0  # warned once, when it was forgotten


def test_a_new_sidecar_starts_as_a_copy_of_the_photos_own_xmp(tmp_path, celebrity, db, models_root):
    """digiKam reads a photo's sidecar instead of its embedded XMP: a sidecar holding only our regions
    would hide the user's keywords, rating and named faces, and double a face named in the photo."""
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(sorted((celebrity / "val" / "elton_john").glob("*.jpg"))[0], images / "elton.jpg")
    shutil.copy(sorted((celebrity / "val" / "mindy_kaling").glob("*.jpg"))[0], images / "mindy.jpg")
    region = region_on_the_face(images, "elton.jpg", "Sir Elton", db, models_root, grown=1.2)
    subprocess.run(["exiftool", "-q", "-overwrite_original", "-XMP-dc:Subject=holiday", "-XMP-xmp:Rating=5",
                    str(images / "mindy.jpg")], check=True, timeout=60)
    subprocess.run(["exiftool", "-q", "-overwrite_original", "-XMP-dc:Subject=holiday", "-XMP-xmp:Rating=5",
                    f"-RegionInfo={region}", str(images / "elton.jpg")], check=True, timeout=60)
    originals = {p.name: p.read_bytes() for p in images.iterdir()}

    out = tmp_path / "out"
    result = run("annotate", images, "--db", db, "--out", out, "--model-dir", models_root, "-q", "--xmp")
    assert result.exit_code == 0, result.output
    info = exiftool(images / "mindy.jpg.xmp")
    assert info["Subject"] in ("holiday", ["holiday"])
    assert info["Rating"] == 5
    assert [r["Name"] for r in regions(info)] == ["mindy_kaling"]
    # Elton's face is named in his photo already: the sidecar would hold nothing the photo does not
    assert not (images / "elton.jpg.xmp").exists()
    assert {p.name: p.read_bytes() for p in images.iterdir() if p.suffix == ".jpg"} == originals

    # the photo's own XMP changes after the sidecar was made from it (a keyword added in the photo)
    subprocess.run(["exiftool", "-q", "-overwrite_original", "-XMP-dc:Subject+=sunset", str(images / "mindy.jpg")],
                   check=True, timeout=60)
    # Mindy leaves the database: the sidecar holds nothing but the copy it started as, and goes
    layout = json.loads(db.read_text())
    smaller = tmp_path / "smaller.json"
    del layout["people"]["mindy_kaling"]
    smaller.write_text(json.dumps(layout))
    again = run("annotate", images, "--db", smaller, "--out", out, "--model-dir", models_root, "-q", "--xmp")
    assert again.exit_code == 0, again.output
    assert not (images / "mindy.jpg.xmp").exists()


def test_a_folder_moved_out_and_linked_back_keeps_its_sidecars(tmp_path, celebrity, db, models_root):
    """A subfolder moved elsewhere with its sidecars, and replaced by a link to where it went: the
    link is not followed, its photos leave the run, and their sidecars out there are not ours to clean."""
    images = tmp_path / "images"
    (images / "sub").mkdir(parents=True)
    shutil.copy(sorted((celebrity / "val" / "elton_john").glob("*.jpg"))[0], images / "sub" / "elton.jpg")
    out = tmp_path / "out"
    assert run("annotate", images, "--db", db, "--out", out, "--model-dir", models_root, "-q", "--xmp").exit_code == 0
    elsewhere = tmp_path / "elsewhere"
    shutil.move(images / "sub", elsewhere)
    (images / "sub").symlink_to(elsewhere)
    sidecar = elsewhere / "elton.jpg.xmp"
    before = sidecar.read_bytes()
    again = run("annotate", images, "--db", db, "--out", out, "--model-dir", models_root, "-q", "--xmp",
                "--confirm-purge")  # its only photo left
    assert again.exit_code == 0, again.output
    assert "a link to a folder" in again.output
    assert sidecar.read_bytes() == before and [r["Name"] for r in regions(exiftool(sidecar))] == ["elton_john"]


@pytest.mark.parametrize("stored", ["../victim/x.jpg", "{victim}/x.jpg", "loop/x.jpg"])
def test_a_manifest_path_out_of_the_input_folder_never_reaches_a_sidecar(tmp_path, stored):
    from facebatch.writers import XmpSidecarWriter

    images, victim = tmp_path / "images", tmp_path / "victim"
    images.mkdir()
    victim.mkdir()
    (images / "loop").symlink_to(images / "loop")
    theirs = victim / "x.jpg.xmp"
    theirs.write_text(f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-'
                      f'ns#"><rdf:Description xmlns:fb="{xmp.OUR_NS}" fb:created="1"/></rdf:RDF></x:xmpmeta>')
    before = theirs.read_bytes()
    XmpSidecarWriter(images).remove(stored.format(victim=victim), "")
    assert theirs.read_bytes() == before


def test_a_run_without_xmp_keeps_the_regions_true_and_no_xmp_takes_them_out(tmp_path, celebrity, db, models_root):
    """A name must not outlive its person in a sidecar because the next run left out --xmp (the
    nightly line of someone who tried --xmp once): without the flag, facebatch creates no sidecar
    but keeps the regions it wrote true; --no-xmp takes them out."""
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(sorted((celebrity / "val" / "ben_afflek").glob("*.jpg"))[0], images / "ben.jpg")
    shutil.copy(sorted((celebrity / "val" / "mindy_kaling").glob("*.jpg"))[0], images / "mindy.jpg")
    out = tmp_path / "out"
    assert run("annotate", images, "--db", db, "--out", out, "--model-dir", models_root, "-q", "--xmp").exit_code == 0
    assert [r["Name"] for r in regions(exiftool(images / "ben.jpg.xmp"))] == ["ben_afflek"]
    assert [r["Name"] for r in regions(exiftool(images / "mindy.jpg.xmp"))] == ["mindy_kaling"]

    # a photo added later, in runs without --xmp, gets no sidecar; another program's sidecar that
    # is a link is none of the run's business (no warning, exit 0)
    shutil.copy(sorted((celebrity / "val" / "ben_afflek").glob("*.jpg"))[1], images / "later.jpg")
    (tmp_path / "theirs.xmp").write_text("not ours")
    (images / "linked.jpg.xmp").symlink_to(tmp_path / "theirs.xmp")
    shutil.copy(sorted((celebrity / "val" / "ben_afflek").glob("*.jpg"))[2], images / "linked.jpg")
    layout = json.loads(db.read_text())
    del layout["people"]["ben_afflek"]
    without_ben = tmp_path / "without_ben.json"
    without_ben.write_text(json.dumps(layout))
    kept = run("annotate", images, "--db", without_ben, "--out", out, "--model-dir", models_root, "-q")
    assert kept.exit_code == 0, kept.output
    assert "warning" not in kept.output.lower() and "linked.jpg.xmp" not in kept.output
    assert [r["name"] for r in report_rows(out / "report.csv") if r["image"] == "ben.jpg"] == ["UNKNOWN"]
    # facebatch created ben.jpg.xmp for his name alone: with the name gone, so is the file
    assert not (images / "ben.jpg.xmp").exists()
    assert [r["Name"] for r in regions(exiftool(images / "mindy.jpg.xmp"))] == ["mindy_kaling"]
    assert not (images / "later.jpg.xmp").exists()
    assert (tmp_path / "theirs.xmp").read_text() == "not ours"

    withdrawn = run("annotate", images, "--db", db, "--out", out, "--model-dir", models_root, "-q", "--no-xmp")
    assert withdrawn.exit_code == 0, withdrawn.output
    assert not (images / "mindy.jpg.xmp").exists() and not (images / "ben.jpg.xmp").exists()
    assert (tmp_path / "theirs.xmp").read_text() == "not ours"


def test_a_deleted_sidecar_is_written_again_by_the_next_xmp_run(tmp_path, celebrity, db, models_root):
    """As a deleted annotated copy is redrawn: the report names the face, so its sidecar must too."""
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(sorted((celebrity / "val" / "mindy_kaling").glob("*.jpg"))[0], images / "mindy.jpg")
    out = tmp_path / "out"
    assert run("annotate", images, "--db", db, "--out", out, "--model-dir", models_root, "-q", "--xmp").exit_code == 0
    (images / "mindy.jpg.xmp").unlink()
    again = run("annotate", images, "--db", db, "--out", out, "--model-dir", models_root, "-q", "--xmp")
    assert again.exit_code == 0, again.output
    assert "(0 processed, 1 relabelled, 0 unchanged)" in again.output
    assert [r["Name"] for r in regions(exiftool(images / "mindy.jpg.xmp"))] == ["mindy_kaling"]
    third = run("annotate", images, "--db", db, "--out", out, "--model-dir", models_root, "-q", "--xmp")
    assert "(0 processed, 0 relabelled, 1 unchanged)" in third.output


def test_a_photo_whose_own_xmp_names_its_face_is_not_relabelled_every_xmp_run(tmp_path, celebrity, db, models_root):
    """It needs no sidecar, so its missing sidecar is no sign of one deleted: carried over (a
    library whose photo manager writes names into the files would be relabelled every night)."""
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(sorted((celebrity / "val" / "elton_john").glob("*.jpg"))[0], images / "elton.jpg")
    region = region_on_the_face(images, "elton.jpg", "elton_john", db, models_root)
    subprocess.run(["exiftool", "-q", "-overwrite_original", f"-RegionInfo={region}",
                    "-XMP-iptcExt:PersonInImage=elton_john", str(images / "elton.jpg")], check=True, timeout=60)
    out = tmp_path / "out"
    assert run("annotate", images, "--db", db, "--out", out, "--model-dir", models_root, "-q", "--xmp").exit_code == 0
    assert not (images / "elton.jpg.xmp").exists()  # the photo says it all already
    for _ in range(2):
        again = run("annotate", images, "--db", db, "--out", out, "--model-dir", models_root, "-q", "--xmp")
        assert "(0 processed, 0 relabelled, 1 unchanged)" in again.output, again.output
