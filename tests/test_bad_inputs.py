"""Every awkward input the nightly run meets: each gives a correct result or one clear error row."""
from __future__ import annotations

import csv
import io
import os
import shutil
import struct
import zlib

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from facebatch.cli import cli

# EXIF orientation n: how to turn the upright picture into the stored pixels (the inverse of
# what a viewer does), so that facebatch has to apply the tag to see the face upright.
STORE_FOR_ORIENTATION = {
    2: [Image.Transpose.FLIP_LEFT_RIGHT],
    3: [Image.Transpose.ROTATE_180],
    4: [Image.Transpose.FLIP_TOP_BOTTOM],
    5: [Image.Transpose.TRANSPOSE],
    6: [Image.Transpose.ROTATE_90],
    7: [Image.Transpose.TRANSVERSE],
    8: [Image.Transpose.ROTATE_270],
}


def png_bomb(width, height):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1024)) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def face_photo(celebrity) -> Image.Image:
    """A real photo with one clear face (the largest validation photo of Madonna)."""
    photos = sorted((celebrity / "val" / "madonna").glob("*.jpg"), key=lambda p: -Image.open(p).size[0])
    return Image.open(photos[0]).convert("RGB")


@pytest.fixture(scope="module")
def outcome(tmp_path_factory, face_photo, celebrity, models_root):
    root = tmp_path_factory.mktemp("bad")
    images = root / "images"
    images.mkdir()
    save = lambda name, image, **kw: image.save(images / name, **kw)  # noqa: E731
    # unreadable
    (images / "empty.jpg").write_bytes(b"")
    buffer = io.BytesIO()
    face_photo.save(buffer, "JPEG")
    (images / "truncated.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 3])
    (images / "text.jpg").write_text("this is not a photo\n")
    (images / "random.png").write_bytes(np.random.default_rng(0).bytes(5000))
    (images / "bomb.png").write_bytes(png_bomb(40000, 40000))
    # odd sizes
    save("one_pixel.png", Image.new("RGB", (1, 1)))
    save("sliver.png", Image.new("RGB", (12000, 8), (200, 200, 200)))
    # modes and formats, each holding the real face
    save("cmyk.jpg", face_photo.convert("CMYK"))
    save("grey.jpg", face_photo.convert("L"))
    save("grey_alpha.png", face_photo.convert("LA"))
    save("rgba.png", face_photo.convert("RGBA"))
    save("palette.png", face_photo.convert("P"))
    save("deep16.png", Image.fromarray((np.asarray(face_photo.convert("L"), np.uint16) * 257)))
    save("one_bit.png", face_photo.convert("1"))
    # 32-bit floating point, 0 to 1 as scientific and HDR tools write it, with a NaN hole
    floats = np.asarray(face_photo.convert("L"), np.float32) / 255
    floats[:4, :4] = np.nan
    save("float32.tif", Image.fromarray(floats, "F"))
    save("animated.gif", face_photo, save_all=True, append_images=[Image.new("RGB", face_photo.size)], duration=100)
    save("photo.webp", face_photo)
    save("photo.tiff", face_photo)
    save("photo.bmp", face_photo)
    save("UPPER.JPG", face_photo)
    (images / "phone.heic").write_bytes(b"\0\0\0\x18ftypheic")
    (images / "exported.heic").write_bytes(buffer.getvalue())  # a JPEG under a HEIC name: read as what it is
    # EXIF orientations
    for orientation, steps in STORE_FOR_ORIENTATION.items():
        stored = face_photo
        for step in steps:
            stored = stored.transpose(step)
        exif = Image.Exif()
        exif[0x0112] = orientation
        save(f"exif_{orientation}.jpg", stored, exif=exif)
    # awkward names
    for name in ("ünïcødé 照片.jpg", 'comma, "quote".jpg', "new\nline.jpg", "=formula.jpg", "+plus.jpg", "-minus.jpg",
                 "@at.jpg"):
        shutil.copy(images / "UPPER.JPG", images / name)
    (images / "folder.jpg").mkdir()
    shutil.copy(images / "UPPER.JPG", images / ".hidden.jpg")
    os.symlink(images / "nowhere.jpg", images / "broken_link.jpg")
    (images / "loop").mkdir()
    os.symlink(images / "loop", images / "loop" / "again")
    outside = root / "outside.jpg"
    shutil.copy(images / "UPPER.JPG", outside)
    os.symlink(outside, images / "outside_link.jpg")

    db = root / "db.json"
    runner = CliRunner()
    enrolled = runner.invoke(cli, ["enroll", str(celebrity / "train"), "--db", str(db), "--model-dir", str(models_root),
                                   "-j", "1", "-q"], catch_exceptions=False)
    assert enrolled.exit_code == 0
    result = runner.invoke(cli, ["annotate", str(images), "--db", str(db), "--out", str(root / "out"),
                                 "--model-dir", str(models_root), "-j", "1", "-q"], catch_exceptions=False)
    with open(root / "out" / "report.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    by_image: dict[str, list[dict]] = {}
    for row in rows:
        by_image.setdefault(row["image"], []).append(row)
    return {"result": result, "rows": by_image, "root": root, "photo_size": face_photo.size}


def only(outcome, name) -> dict:
    rows = outcome["rows"][name]
    assert len(rows) == 1, rows
    return rows[0]


def test_run_goes_on_and_says_some_failed(outcome):
    assert outcome["result"].exit_code == 3


@pytest.mark.parametrize("name,message", [
    ("empty.jpg", "an empty file (0 bytes), perhaps a copy that did not finish"),
    ("text.jpg", "not an image Pillow can read (wrong suffix, or damaged)"),
    ("random.png", "not an image Pillow can read (wrong suffix, or damaged)"),
    ("truncated.jpg", "cannot decode image (image file is truncated"),
    ("bomb.png", "40000x40000 pixels is over the limit of 100000000; raise it with --max-pixels if the image is genuine"),
    ("phone.heic", "HEIC/HEIF needs the optional pillow-heif package; install it: pip install 'facebatch[heif]'"),
])
def test_unusable_files_get_one_error_row(outcome, name, message):
    row = only(outcome, name)
    assert row["status"] == "error" and row["error"].startswith(message) and "\n" not in row["error"]
    assert row["error"].count("; ") == 1, row  # the problem; what to do (said once)
    assert row["annotated"] == ""


@pytest.mark.parametrize("name", ["one_pixel.png", "sliver.png"])
def test_tiny_and_sliver_images_have_no_face(outcome, name):
    assert only(outcome, name)["status"] == "no_face"


@pytest.mark.parametrize("name", ["cmyk.jpg", "grey.jpg", "grey_alpha.png", "rgba.png", "palette.png", "deep16.png",
                                  "float32.tif", "exported.heic", "animated.gif", "photo.webp", "photo.tiff", "photo.bmp", "UPPER.JPG"])
def test_modes_and_formats_find_and_name_the_face(outcome, name):
    rows = outcome["rows"][name]
    assert rows[0]["status"] == "ok" and "madonna" in [r["name"] for r in rows], rows
    annotated = outcome["root"] / "out" / rows[0]["annotated"]
    Image.open(annotated).load()


def test_one_bit_image_is_read_even_if_the_face_is_lost(outcome):
    assert only(outcome, "one_bit.png")["status"] in ("ok", "no_face")


@pytest.mark.parametrize("orientation", sorted(STORE_FOR_ORIENTATION))
def test_exif_orientations_find_the_face_on_the_upright_image(outcome, orientation):
    reference = [r for r in outcome["rows"]["UPPER.JPG"] if r["name"] == "madonna"][0]
    rows = [r for r in outcome["rows"][f"exif_{orientation}.jpg"] if r["name"] == "madonna"]
    assert rows, outcome["rows"][f"exif_{orientation}.jpg"]
    for side in ("left", "top", "right", "bottom"):
        assert abs(int(rows[0][side]) - int(reference[side])) <= 6, (side, rows[0], reference)
    annotated = Image.open(outcome["root"] / "out" / rows[0]["annotated"])
    assert annotated.size == outcome["photo_size"]  # drawn on the upright image


def test_awkward_names_keep_the_csv_valid_and_formula_free(outcome):
    rows = outcome["rows"]
    for name in ("ünïcødé 照片.jpg", 'comma, "quote".jpg', "new\nline.jpg"):
        assert rows[name][0]["status"] == "ok"
    for name in ("=formula.jpg", "+plus.jpg", "-minus.jpg", "@at.jpg"):
        assert name not in rows and rows["'" + name][0]["status"] == "ok"
        assert (outcome["root"] / "out" / name).is_file()  # the file itself keeps its name


def test_hidden_files_directories_and_bad_links_are_skipped(outcome):
    listed = set(outcome["rows"])
    for skipped in (".hidden.jpg", "folder.jpg", "broken_link.jpg", "outside_link.jpg"):
        assert skipped not in listed
    assert not any(name.startswith("loop/") for name in listed)


def test_a_link_out_of_the_folder_swapped_in_after_the_scan_is_not_read(tmp_path):
    # the scan skips links out of the folder; one put in a photo's place during the run is refused
    # when the photo is read, so a file outside the folder never reaches the output
    from facebatch.errors import ImageError
    from facebatch.pipeline import _read

    folder, outside = tmp_path / "images", tmp_path / "private"
    folder.mkdir()
    outside.mkdir()
    Image.new("RGB", (64, 48), "gray").save(outside / "secret.jpg")
    Image.new("RGB", (64, 48), "gray").save(folder / "inside.jpg")
    (folder / "photo.jpg").symlink_to(outside / "secret.jpg")
    (folder / "alias.jpg").symlink_to(folder / "inside.jpg")
    with pytest.raises(ImageError, match="a link out of the folder"):
        _read(folder / "photo.jpg", 10_000_000, os.path.realpath(folder))
    (outside / "sub").mkdir()  # a subfolder swapped for a link out of the folder
    Image.new("RGB", (64, 48), "gray").save(outside / "sub" / "p.jpg")
    (folder / "sub").symlink_to(outside / "sub")
    with pytest.raises(ImageError, match="a link out of the folder"):
        _read(folder / "sub" / "p.jpg", 10_000_000, os.path.realpath(folder))
    image, _, _ = _read(folder / "alias.jpg", 10_000_000, os.path.realpath(folder))  # a link inside the folder is read
    assert image.size == (64, 48)
