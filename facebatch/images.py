"""Finding image files, loading them upright, and saving them atomically."""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from .atomicio import atomic_writer
from .errors import ImageError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
HEIF_SUFFIXES = frozenset({".heic", ".heif"})
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


def find_images(root: Path) -> list[str]:
    """Image files below `root`, as sorted POSIX paths relative to it.

    Hidden files and folders are skipped.  Symlinked folders are not followed (no loops, nothing
    outside `root`); a symlinked file counts only when it resolves to a file inside `root`.
    """
    root = Path(root)
    real_root = root.resolve()
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.startswith(".") or not is_image_name(name):
                continue
            path = Path(dirpath) / name
            if path.is_symlink():
                try:
                    target = path.resolve(strict=True)
                except (OSError, RuntimeError):
                    continue  # broken link or loop
                if not target.is_file() or not target.is_relative_to(real_root):
                    continue
            elif not path.is_file():
                continue
            found.append(path.relative_to(root).as_posix())
    return sorted(found)


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB: CMYK, greyscale, alpha, palette, 16-bit and 1-bit included."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        top = array.max() if array.size else 1.0
        array = np.clip(array * (255.0 / top if top > 255 else 1.0), 0, 255).astype(np.uint8)
        image = Image.fromarray(array, "L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent areas become white, as a viewer shows them, instead of whatever colour hides there.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def read_file(path: Path) -> bytes:
    """The file's bytes, with the errors a folder of photos throws at us turned into ImageError."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise ImageError("file not found (deleted during the run?)") from None
    except IsADirectoryError:
        raise ImageError("is a directory, not an image") from None
    except PermissionError:
        raise ImageError("permission denied; make the file readable") from None
    except OSError as exc:
        raise ImageError(f"cannot read the file ({exc.strerror or exc})") from None


def load_image(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS, data: bytes | None = None) -> Image.Image:
    """Open an image, refuse it before decoding if it is too large, and return it upright in RGB.

    `data`, when given, is the file's content already read (so the caller can hash the same bytes).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in HEIF_SUFFIXES:
        if not _heif_available():
            raise ImageError("HEIC/HEIF needs the optional pillow-heif package: pip install 'facebatch[heif]'")
        import pillow_heif

        pillow_heif.register_heif_opener()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data if data is not None else read_file(path))) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise ImageError(f"{width}x{height} pixels is over the limit of {max_pixels} "
                                     "(raise it with --max-pixels if the image is genuine)")
                image.seek(0)  # first frame of an animation
                upright = ImageOps.exif_transpose(image)
                upright.load()
                return _to_rgb(upright)
    except ImageError:
        raise
    except Image.UnidentifiedImageError:
        raise ImageError("not an image Pillow can read (wrong suffix, or damaged)") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ImageError(f"cannot decode image ({message})") from None


def annotated_name(relative: str) -> str:
    """Where the annotated copy of `relative` goes: same path, plus `.jpg` where we cannot write the format."""
    return relative if os.path.splitext(relative)[1].lower() in _SAVE_FORMATS else relative + ".jpg"


def save_image_atomic(image: Image.Image, path: Path) -> None:
    """Save by the path's suffix (JPEG quality 92); the file appears whole or not at all."""
    fmt = _SAVE_FORMATS.get(path.suffix.lower(), "JPEG")
    options = {"quality": 92} if fmt in ("JPEG", "WEBP") else {}
    with atomic_writer(path) as handle:
        image.save(handle, format=fmt, **options)
