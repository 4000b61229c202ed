"""Finding image files, loading them upright, and saving them atomically."""
from __future__ import annotations

import io
import os
import stat
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from .atomicio import TEMP_SUFFIX, describe_os_error, write_bytes_atomic
from .errors import ImageError, UsageProblem
from .pathtext import to_text

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
HEIF_SUFFIXES = frozenset({".heic", ".heif"})
# What a photo's bytes may be read as, whatever its suffix says (a JPEG named .heic is read).
# Pillow would otherwise try every format it knows, and hands PostScript (EPS) to Ghostscript: an
# untrusted file named x.jpg would run through an interpreter.  Photo formats only.
PHOTO_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF", "GIF", "BMP", "DIB", "AVIF", "JPEG2000", "PPM", "HEIF")


def photo_formats() -> tuple[str, ...]:
    """PHOTO_FORMATS that this Pillow can read now (HEIF once pillow-heif registered it): Image.open
    raises KeyError for a format it does not know."""
    Image.init()
    return tuple(name for name in PHOTO_FORMATS if name in Image.OPEN)
_ORIENTATION_TAG = 0x0112
DEFAULT_MAX_PIXELS = 100_000_000  # 100 MP: larger than any camera, smaller than a decompression bomb

# Pillow's own bomb check raises on >2x its limit and only warns below; we do our own check with the
# user's limit before decoding, so turn Pillow's off rather than have two limits that disagree.
Image.MAX_IMAGE_PIXELS = None

_SAVE_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".bmp": "BMP",
                 ".tif": "TIFF", ".tiff": "TIFF"}


def _heif_available() -> bool:
    try:
        import pillow_heif  # noqa: F401
    except ImportError:
        return False
    return True


def is_image_name(name: str) -> bool:
    suffix = os.path.splitext(name)[1].lower()
    return suffix in IMAGE_SUFFIXES or suffix in HEIF_SUFFIXES


# Written into every annotate output folder, so that a scan never reads one as photos (an --out
# inside the input folder of another run would otherwise feed its copies back in, run after run).
OUTPUT_MARKER = ".facebatch-output"


def _walk(root: Path, onerror):
    """os.walk, top-down (the caller prunes `dirnames`); Python's walk recurses once per level, so
    a tree deeper than the interpreter's recursion limit is one error, not a traceback."""
    try:
        yield from os.walk(root, onerror=onerror, followlinks=False)
    except RecursionError:
        raise UsageProblem(f"{to_text(str(root))}: folders nested too deep to search (about a thousand levels); "
                           "move the photos into a shallower folder") from None


def find_images(root: Path, unreadable: list[str] | None = None,
                skipped: list[tuple[str, str]] | None = None, leftovers: list[str] | None = None) -> list[str]:
    """Image files below `root`, as sorted POSIX paths relative to it.

    Hidden files and folders are skipped, and so are output folders of annotate (OUTPUT_MARKER).
    Symlinked folders are not followed (no loops, nothing outside `root`); a symlinked file counts
    only when it resolves to a file inside `root`.  Folders that cannot be listed are appended to
    `unreadable` (relative to `root`), so that the caller can tell "not there" from "could not
    look"; what else was passed over, with why and what to do, to `skipped`.  Temporary files of
    ours (atomicio: a write that was killed, such as an XMP sidecar's) go to `leftovers`: the scan
    lists every folder anyway, so finding them costs nothing.
    """
    root = Path(root)
    real_root = root.resolve()
    found: list[str] = []

    def cannot_list(error: OSError) -> None:
        if unreadable is not None and error.filename is not None:
            unreadable.append(Path(os.fsdecode(error.filename)).relative_to(root).as_posix())

    def skip(path: Path, why: str) -> None:
        if skipped is not None:
            skipped.append((path.relative_to(root).as_posix(), why))

    def too_long(path: Path, exc: OSError) -> None:
        # Path's checks raise on a path longer than the system allows (4,096 bytes on Linux, made
        # by nesting) instead of answering False: one photo or folder skipped, not the scan ended
        skip(path, f"cannot be read by its path ({describe_os_error(exc)}); move it into a shallower folder")

    for dirpath, dirnames, filenames in _walk(root, cannot_list):
        kept = []
        for name in sorted(d for d in dirnames if not d.startswith(".")):
            folder = Path(dirpath) / name
            try:
                if folder.is_symlink():
                    skip(folder, "a link to a folder; links are not followed, copy or move the photos in")
                elif os.path.lexists(folder / OUTPUT_MARKER):
                    skip(folder, "an output folder of facebatch annotate; its copies are not read as photos")
                else:
                    kept.append(name)
            except OSError as exc:
                too_long(folder, exc)
        dirnames[:] = kept
        for name in filenames:
            if name.startswith(".") and name.endswith(TEMP_SUFFIX) and leftovers is not None:
                leftovers.append((Path(dirpath) / name).relative_to(root).as_posix())
            if name.startswith(".") or not is_image_name(name):
                continue
            path = Path(dirpath) / name
            try:
                if _passed_over(path, real_root, skip):
                    continue
            except OSError as exc:
                too_long(path, exc)
                continue
            found.append(path.relative_to(root).as_posix())
    return sorted(found)


def _passed_over(path: Path, real_root: Path, skip) -> bool:
    """Whether the image file `path` is not read (and `skip` says why): a link that is broken, a
    loop, to something not a file or out of the folder; or not a regular file."""
    if path.is_symlink():
        try:
            target = path.resolve(strict=True)
        except (OSError, RuntimeError):
            skip(path, "a broken link, or a loop; fix or remove it")
            return True
        if not target.is_file():
            skip(path, "a link to something that is not a file; remove it")
            return True
        if not target.is_relative_to(real_root):
            skip(path, "a link out of the folder; links are not followed, copy or move the photo in")
            return True
        return False
    if not path.is_file():
        if not path.is_dir():
            skip(path, "not a regular file (a FIFO, device or socket); remove it or put a photo there")
        return True
    return False


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB: CMYK, greyscale, alpha, palette, 16-bit and 1-bit included."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        finite = array[np.isfinite(array)]
        low, top = (finite.min(), finite.max()) if finite.size else (0.0, 0.0)
        # Floating-point images hold 0 to 1 by convention (scientific and HDR tools write them so),
        # integer ones up to 65535: either is stretched to 0-255, and 8-bit values are kept.  Values
        # below 0 (a signed or float image) stretch the whole range instead.
        if low < 0:
            array, scale = array - low, 255.0 / (top - low) if top > low else 1.0
        else:
            scale = 255.0 if image.mode == "F" and 0 < top <= 1.0 else 255.0 / top if top > 255 else 1.0
        # NaN and infinities (a float TIFF's holes) read as black, not as whatever the cast makes of them
        array = np.nan_to_num(np.clip(array * scale, 0, 255), nan=0.0, posinf=0.0, neginf=0.0)
        image = Image.fromarray(array.astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent areas become white, as a viewer shows them, instead of whatever colour hides there.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def inside_folder(path: Path, real_folder: str) -> bool:
    """Whether `path`, every link on the way followed, is still inside the folder whose real path
    (os.path.realpath) is `real_folder`: the scan only takes links that stay inside, but a file or
    folder may be swapped for a link after it."""
    real = os.path.realpath(path)
    return real == real_folder or real.startswith(real_folder.rstrip(os.sep) + os.sep)


def max_file_bytes(max_pixels: int) -> int:
    """The largest file that can hold an image within `max_pixels`: uncompressed 16-bit RGBA (8
    bytes a pixel) plus room for metadata and previews.  Anything larger is refused unread."""
    return max_pixels * 8 + (64 << 20)


def read_file(path: Path, max_bytes: int | None = None) -> bytes:
    """The file's bytes, with the errors a folder of photos throws at us turned into ImageError.

    Only regular files are read: a FIFO would block for ever and /dev/zero never ends.  The
    open does not block (O_NONBLOCK), and the type and size are checked on the open file.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ImageError("no such file; check the path") from None
    except PermissionError:
        raise ImageError("permission denied; make the file readable") from None
    except OSError as exc:
        raise ImageError(f"cannot read the file ({exc.strerror or exc}); check the path and the file") from None
    # checked before os.fdopen, which refuses a folder with an error of its own
    info = os.fstat(fd)
    problem = ("a folder, not an image; pass an image file" if stat.S_ISDIR(info.st_mode) else
               "not a regular file (a device, FIFO or socket); pass an image file" if not stat.S_ISREG(info.st_mode)
               else f"file of {info.st_size} bytes is larger than any image within the pixel limit; raise "
                    "--max-pixels if the image is genuine" if max_bytes is not None and info.st_size > max_bytes
               else "")
    if problem:
        os.close(fd)
        raise ImageError(problem)
    with os.fdopen(fd, "rb") as handle:
        try:
            return handle.read()
        except OSError as exc:
            raise ImageError(f"cannot read the file ({exc.strerror or exc})") from None


def load_image(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS, data: bytes | None = None) -> Image.Image:
    """Open an image, refuse it before decoding if it is too large, and return it upright in RGB."""
    return load_upright(path, max_pixels, data)[0]


def load_upright(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS, data: bytes | None = None) -> tuple[Image.Image, int]:
    """(the image upright in RGB, the EXIF orientation 1-8 it was turned by).

    `data`, when given, is the file's content already read (so the caller can hash the same bytes).
    """
    path = Path(path)
    heif_missing = False
    if path.suffix.lower() in HEIF_SUFFIXES:
        if _heif_available():
            import pillow_heif

            pillow_heif.register_heif_opener()
        else:  # asked for only if Pillow cannot read it: a JPEG named .heic (some exports) reads as one
            heif_missing = True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if data is None:
                data = read_file(path, max_file_bytes(max_pixels))
            if not data:
                raise ImageError("an empty file (0 bytes), perhaps a copy that did not finish; copy the photo again "
                                 "or remove the file")
            with Image.open(io.BytesIO(data), formats=photo_formats()) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise ImageError(f"{width}x{height} pixels is over the limit of {max_pixels}; raise it with "
                                     "--max-pixels if the image is genuine")
                image.seek(0)  # first frame of an animation
                orientation = image.getexif().get(_ORIENTATION_TAG, 1)
                upright = ImageOps.exif_transpose(image)
                upright.load()
                return _to_rgb(upright), orientation if orientation in range(1, 9) else 1
    except ImageError:
        raise
    except Image.UnidentifiedImageError:
        if heif_missing:
            raise ImageError("HEIC/HEIF needs the optional pillow-heif package; install it: pip install "
                             "'facebatch[heif]'") from None
        raise ImageError("not an image Pillow can read (wrong suffix, or damaged)") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ImageError(f"cannot decode image ({message})") from None


def annotated_name(relative: str) -> str:
    """Where the annotated copy of `relative` goes: same path, plus `.jpg` where we cannot write the format."""
    return relative if os.path.splitext(relative)[1].lower() in _SAVE_FORMATS else relative + ".jpg"


def encode_image(image: Image.Image, suffix: str) -> bytes:
    """The image encoded by `suffix` (JPEG quality 92), in memory."""
    fmt = _SAVE_FORMATS.get(suffix.lower(), "JPEG")
    options = {"quality": 92} if fmt in ("JPEG", "WEBP") else {}
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def save_image_atomic(image: Image.Image, path: Path) -> None:
    """Save by the path's suffix; the file appears whole or not at all.

    Encoded in memory first: Pillow's encoders write to a file in pieces and do not all report a
    failed write, so on a full disk they could leave a short file.  Writing the finished bytes
    lets atomicio check every byte reached the disk before the rename.
    """
    write_bytes_atomic(path, encode_image(image, path.suffix))
