"""XMP sidecars beside the original photos: find the file, merge with xmp.py, write it atomically.

The original photo is never opened for writing.  A sidecar that cannot be merged into (see
xmp.py) raises SidecarError and is left exactly as it was.
"""
from __future__ import annotations

import contextlib
import errno
import glob
import os
import stat
from pathlib import Path
from typing import Iterable

from . import xmp
from .atomicio import public_mode, write_bytes_atomic, write_failure_hint
from .errors import SidecarError
from .images import is_image_name, photo_formats
from .pathtext import to_text


def sidecar_path_for(image_path: Path) -> Path:
    """`photo.jpg.xmp` if it exists, else an existing `photo.xmp`, else `photo.jpg.xmp`.

    `photo.jpg.xmp` is the name digiKam and darktable read.  `photo.xmp` (Lightroom's name for a
    raw file's sidecar, and digiKam's with "compatible file names") is used only when no other
    image shares the stem: with `photo.jpg` and `photo.png` side by side it would belong to both,
    and each run would overwrite the other's faces in it; beside `photo.cr2` it is the raw file's.
    """
    image_path = Path(image_path)
    long_name = image_path.with_name(image_path.name + ".xmp")
    if os.path.lexists(long_name):
        return long_name
    short_name = image_path.with_suffix(".xmp")
    if short_name != image_path and os.path.lexists(short_name) and not _shares_its_stem(image_path):
        return short_name
    return long_name


# Camera raw files, which facebatch does not read but whose `IMG_0001.xmp` (Lightroom's and
# Capture One's name for a raw file's sidecar) must not take a JPEG's faces.
RAW_SUFFIXES = frozenset({".3fr", ".ari", ".arw", ".bay", ".cr2", ".cr3", ".crw", ".dcr", ".dng", ".erf", ".fff",
                          ".iiq", ".k25", ".kdc", ".mef", ".mos", ".mrw", ".nef", ".nrw", ".orf", ".pef", ".raf",
                          ".raw", ".rw2", ".rwl", ".sr2", ".srf", ".srw", ".x3f"})


def _shares_its_stem(image_path: Path) -> bool:
    """Another image in the folder with the same name before the suffix (photo.png beside photo.jpg,
    or the raw file IMG_0001.CR2 beside IMG_0001.JPG)."""
    siblings = image_path.parent.glob(glob.escape(image_path.stem) + ".*")
    return any(p.name != image_path.name and p.stem == image_path.stem
               and (is_image_name(p.name) or p.suffix.lower() in RAW_SUFFIXES) for p in siblings)


def write_sidecar(image_path: Path, size: tuple[int, int], faces: Iterable[xmp.FaceRegion],
                  orientation: int = 1) -> Path | None:
    """Merge the named faces into the image's sidecar; the sidecar's path, or None when there is none.

    `size` is the upright (width, height), the boxes are upright pixels, `orientation` the photo's
    EXIF orientation.  Nothing is written when the content would not change; a sidecar that
    facebatch created and that would hold nothing but its own data is deleted.
    """
    path = sidecar_path_for(image_path)
    _leave_a_shared_sidecar(image_path, path)
    existing, mode = _read(path)
    with _naming(path):
        # a new sidecar starts as a copy of the photo's own XMP (xmp.update_sidecar says why)
        new = xmp.update_sidecar(existing, size, faces, orientation,
                                 embedded_xmp(image_path) if existing is None and faces else None)
    return _apply(path, existing, mode, new)


def keep_our_regions_true(image_path: Path, size: tuple[int, int], faces: Iterable[xmp.FaceRegion],
                          orientation: int = 1) -> Path | None:
    """Rewrite facebatch's regions in a sidecar that already holds them (annotate without --xmp).

    No sidecar is created, and one without facebatch's data is left unread past its bytes.  One it
    cannot read (a link, not a regular file, unreadable, over the size limit) is passed over in
    silence: most are other programs', and this run did not ask for sidecars.  One that holds our
    regions and cannot be kept true (made read-only, say) raises SidecarError: it may name someone
    since removed.
    """
    path = sidecar_path_for(image_path)
    _leave_a_shared_sidecar(image_path, path)
    try:
        existing, mode = _read_what_we_may_have_written(path)
    except SidecarError:
        return None  # unreadable: a run that did not ask for sidecars does not complain of one
    if existing is None or xmp.OUR_NS.encode() not in existing:
        return None
    with _naming(path):
        new = xmp.update_sidecar(existing, size, faces, orientation, None)
    return _apply(path, existing, mode, new)


def _leave_a_shared_sidecar(image_path: Path, path: Path) -> None:
    """Take our data out of `photo.xmp` when it is not (or no longer) the photo's sidecar: facebatch
    before 2026-11-24 wrote into IMG_0001.xmp beside a raw IMG_0001.CR2, which is the raw file's."""
    short_text = os.path.splitext(image_path)[0] + ".xmp"
    if short_text in (os.fspath(path), os.fspath(image_path)) or not os.path.lexists(short_text):
        return  # the usual case, at the cost of one stat
    short_name = Path(short_text)
    # a courtesy to the other file: one that cannot be read or written (a link, a folder, made
    # read-only) is left as it is, and never stops the photo's own sidecar
    with contextlib.suppress(SidecarError):
        existing, mode = _read(short_name)
        if existing is None or xmp.OUR_NS.encode() not in existing:
            return
        with _naming(short_name):
            new = xmp.remove_our_data(existing)
        _apply(short_name, existing, mode, new)


def remove_our_regions(image_path: Path) -> Path | None:
    """Take facebatch's regions and names out of the image's sidecar (its faces are all gone).

    The file stays if anything else is in it; it is deleted only if facebatch created it and
    nothing else is left.  Returns the sidecar's path if one remains.
    """
    path = sidecar_path_for(image_path)
    _leave_a_shared_sidecar(image_path, path)
    existing, mode = _read_what_we_may_have_written(path)
    if existing is None:
        return None
    if xmp.OUR_NS.encode() not in existing:
        return path  # nothing of ours: left byte for byte as it is (even if it is not XMP at all)
    with _naming(path):
        new = xmp.remove_our_data(existing)
    return _apply(path, existing, mode, new)


def embedded_xmp(image_path: Path) -> bytes | None:
    """The XMP packet inside the photo (JPEG APP1, PNG iTXt, WebP, TIFF), read from its header
    by Pillow without decoding pixels; None when it has none or cannot be opened (the photo's
    own problems are reported where it is read for its faces)."""
    from PIL import Image

    try:
        with Image.open(image_path, formats=photo_formats()) as image:
            packet = image.info.get("xmp") or image.info.get("XML:com.adobe.xmp")
    except Exception:  # noqa: BLE001 - any failure to open means: no packet to copy
        return None
    if isinstance(packet, str):
        packet = packet.encode("utf-8")
    return packet if isinstance(packet, bytes) and packet else None


@contextlib.contextmanager
def _naming(path: Path):
    """Say which file a merge error is about."""
    try:
        yield
    except SidecarError as exc:
        raise SidecarError(f"{to_text(path.name)}: {exc}") from None


def _read_what_we_may_have_written(path: Path) -> tuple[bytes | None, int | None]:
    """`_read`, but (None, None) for a file facebatch never writes through, so none of its data
    can be there: a link, or something not a regular file.  Taking our regions out of such a file
    is not a failure to warn about.  (A regular file it cannot read, or one grown past the size
    limit, may hold regions it wrote earlier: `_read` says so.)"""
    try:
        info = os.lstat(path)
    except OSError:
        return None, None  # not there, or no file can have this name
    if not stat.S_ISREG(info.st_mode):
        return None, None
    return _read(path)


def _read(path: Path) -> tuple[bytes | None, int | None]:
    """(content, permission bits) of an existing sidecar, or (None, None)."""
    name = to_text(path.name)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            return None, None  # no file can have this name: there is none (writing one will say why)
        raise SidecarError(f"cannot inspect {name} ({exc.strerror or exc}); "
                           f"{write_failure_hint(exc, 'the photo folder')}") from None
    if stat.S_ISLNK(info.st_mode):
        raise SidecarError(f"{name} is a symbolic link; facebatch does not write through links "
                           "(replace it with a regular file to let facebatch merge into it)")
    if not stat.S_ISREG(info.st_mode):
        raise SidecarError(f"{name} is not a regular file; move it away")
    if info.st_size > xmp.MAX_SIDECAR_BYTES:
        raise SidecarError(f"{name} is {info.st_size} bytes, over facebatch's limit of "
                           f"{xmp.MAX_SIDECAR_BYTES}; move it away if it is not a real sidecar")
    try:
        with open(path, "rb") as handle:
            data = handle.read(xmp.MAX_SIDECAR_BYTES + 1)
    except PermissionError:
        raise SidecarError(f"cannot read {name}: permission denied; make it readable") from None
    except OSError as exc:
        raise SidecarError(f"cannot read {name} ({exc.strerror or exc})") from None
    return data, stat.S_IMODE(info.st_mode)


def _apply(path: Path, existing: bytes | None, mode: int | None, new: bytes | None) -> Path | None:
    if new == existing:
        return path if existing is not None else None
    name = to_text(path.name)
    if mode is not None and not mode & 0o222:
        # Replacing a file by rename needs only the folder's write permission (and root needs
        # none), but a sidecar made read-only was made so to protect it.
        raise SidecarError(f"{name} is read-only, so facebatch leaves it as it is; make it writable "
                           "(chmod u+w) to let facebatch merge its faces into it")
    # Another program (a photo manager) may have saved the sidecar since we read it: do not overwrite its change.
    if _read(path)[0] != existing:
        raise SidecarError(f"{name} changed while facebatch was merging into it; run again")
    if new is None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return None
    try:
        write_bytes_atomic(path, new, permissions=mode if mode is not None else public_mode())
    except PermissionError:
        raise SidecarError(f"cannot write {name}: permission denied; make the photo's folder writable") from None
    except OSError as exc:
        raise SidecarError(f"cannot write {name} ({exc.strerror or exc}); "
                           f"{write_failure_hint(exc, 'the photo folder')}") from None
    return path

