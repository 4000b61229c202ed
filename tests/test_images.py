import io
import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from facebatch.errors import ImageError
from facebatch.images import annotated_name, find_images, load_image, load_upright
from facebatch.sidecar import embedded_xmp


def png_header_only(width, height):
    """A PNG that declares width x height but holds no pixel data: a decompression-bomb stand-in."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1024))
            + chunk(b"IEND", b""))


def test_find_images_skips_hidden_files_directories_and_outside_links(tmp_path):
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    (root / ".hidden").mkdir()
    for name in ("a.jpg", "B.JPG", "sub/c.png", ".hidden/d.jpg", ".e.jpg", "notes.txt"):
        (root / name).write_bytes(b"x")
    (root / "x.jpg").mkdir()
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(b"x")
    os.symlink(outside, root / "link_out.jpg")
    os.symlink(root / "a.jpg", root / "link_in.jpg")
    os.symlink(root / "missing.jpg", root / "broken.jpg")
    os.symlink(root, root / "sub" / "loop")
    assert find_images(root) == ["B.JPG", "a.jpg", "link_in.jpg", "sub/c.png"]


@pytest.mark.parametrize("content,message", [
    (b"", r"an empty file \(0 bytes\)"),
    (b"hello, I am text", "not an image"),
    (os.urandom(4096), "not an image"),
])
def test_unreadable_files_raise_one_line_errors(tmp_path, content, message):
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(ImageError, match=message):
        load_image(path)


def test_truncated_jpeg_is_an_error_not_a_crash(tmp_path):
    buffer = io.BytesIO()
    Image.new("RGB", (400, 300), (200, 10, 10)).save(buffer, "JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(buffer.getvalue()[:600])
    with pytest.raises(ImageError, match="cannot decode"):
        load_image(path)


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(40000, 40000))
    with pytest.raises(ImageError, match="40000x40000 pixels is over the limit"):
        load_image(path)
    with pytest.raises(ImageError, match="over the limit of 1000"):
        load_image(path, max_pixels=1000)


@pytest.mark.parametrize("mode", ["CMYK", "L", "LA", "RGBA", "P", "I;16", "1"])
def test_every_mode_loads_as_rgb(tmp_path, mode):
    image = Image.new(mode, (64, 48))
    suffix = ".jpg" if mode in ("CMYK", "L") else ".png" if mode != "CMYK" else ".tif"
    path = tmp_path / f"img{suffix}"
    image.save(path)
    loaded = load_image(path)
    assert loaded.mode == "RGB" and loaded.size == (64, 48)


def test_sixteen_bit_greyscale_keeps_its_contrast(tmp_path):
    values = np.linspace(0, 65535, 64 * 48).reshape(48, 64).astype(np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    pixels = np.asarray(load_image(path))
    assert pixels.min() == 0 and pixels.max() == 255


@pytest.mark.parametrize("bottom, top", [(0, 1.0), (0, 255.0), (0, 4000.0), (-1000.0, -745.0), (-1.0, 1.0)])
def test_floating_point_images_keep_their_contrast_whatever_their_range(tmp_path, bottom, top):
    values = np.linspace(bottom, top, 64 * 48).reshape(48, 64).astype(np.float32)
    values[0, 0] = np.nan
    path = tmp_path / "float.tif"
    Image.fromarray(values, "F").save(path)
    pixels = np.asarray(load_image(path))
    assert pixels.min() == 0 and pixels.max() == 255 and pixels[0, 0].tolist() == [0, 0, 0]


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (80, 40), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif)
    assert load_image(path).size == (40, 80)


def test_annotated_name_keeps_writable_formats():
    assert annotated_name("a/b.JPG") == "a/b.JPG"
    assert annotated_name("a/b.gif") == "a/b.gif.jpg"
    assert annotated_name("c.heic") == "c.heic.jpg"



def test_folders_nested_deeper_than_python_can_walk_are_one_error(tmp_path, monkeypatch):
    # Python 3.11's os.walk recurses once per level: about 1,000 nested folders exhaust it (made
    # here by the error itself, since such a tree outlives PATH_MAX for the test's own clean-up)
    from facebatch.errors import UsageProblem

    def too_deep(*args, **kwargs):
        yield str(tmp_path), [], []
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(os, "walk", too_deep)
    with pytest.raises(UsageProblem, match="folders nested too deep to search"):
        find_images(tmp_path)


def test_a_path_longer_than_the_system_allows_is_skipped_with_its_reason(tmp_path):
    (tmp_path / "ok.jpg").write_bytes(b"x")
    here = os.getcwd()
    try:  # nested by relative steps: no single path given to the system is too long while making it
        os.chdir(tmp_path)
        for _ in range(21):
            os.mkdir("d" * 200)
            os.chdir("d" * 200)
        open("deep.jpg", "wb").close()
    finally:
        os.chdir(here)
    skipped: list[tuple[str, str]] = []
    assert find_images(tmp_path, [], skipped) == ["ok.jpg"]
    [(path, why)] = skipped
    assert path.startswith("d" * 200 + "/") and why == ("cannot be read by its path (File name too long); move it "
                                                         "into a shallower folder")


def test_postscript_named_as_a_photo_is_refused_without_ghostscript(tmp_path, monkeypatch):
    """Pillow opens EPS whatever the suffix and runs Ghostscript to decode it: an untrusted file
    named x.jpg must be refused before any interpreter sees it."""
    from PIL import EpsImagePlugin

    ran = []
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", lambda *args, **kwargs: ran.append(args))
    monkeypatch.setattr(EpsImagePlugin, "gs_binary", "gs", raising=False)
    path = tmp_path / "x.jpg"
    Image.new("RGB", (40, 30), "white").save(path, format="EPS")
    with pytest.raises(ImageError, match="not an image Pillow can read"):
        load_upright(path)
    assert not ran
    assert embedded_xmp(path) is None
