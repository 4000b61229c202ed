"""Do the default thresholds stay safe on photos unlike the calibration's?  (Issue 8.)

The held-out photos of bench/held_out.py are degraded as an archive's or a phone's photos are:
black-and-white, heavy JPEG compression, shrunk, blurred, dark.  The enrollment photos stay as
they are (a gallery enrolled from good photos), except in the "both black-and-white" row.
The question is the stranger side first: does any degradation bring different people nearer
than the default thresholds?  Usage: python bench/photo_conditions.py
"""
from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.held_out import engine, held_out_faces, report  # noqa: E402
from facebatch.detect import largest  # noqa: E402
from facebatch.match import KnownPeople, name_photo  # noqa: E402


def grey(image: Image.Image) -> Image.Image:
    return image.convert("L").convert("RGB")


def jpeg(quality: int):
    def degrade(image: Image.Image) -> Image.Image:
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=quality)
        return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    return degrade


def shrunk(factor: float):
    def degrade(image: Image.Image) -> Image.Image:
        small = image.resize((max(1, round(image.width * factor)), max(1, round(image.height * factor))),
                             Image.BILINEAR)
        return small
    return degrade


def blurred(radius: float):
    return lambda image: image.filter(ImageFilter.GaussianBlur(radius))


def dark(factor: float):
    return lambda image: ImageEnhance.Brightness(image).enhance(factor)


CONDITIONS = {
    "as they are": lambda image: image,
    "black-and-white": grey,
    "JPEG quality 50": jpeg(50),
    "JPEG quality 30": jpeg(30),
    "JPEG quality 15": jpeg(15),
    "shrunk to 1/3": shrunk(1 / 3),
    "blurred (radius 2)": blurred(2),
    "dark (40 %)": dark(0.4),
}


def left_out_strangers(emb: np.ndarray, person: np.ndarray, kind: np.ndarray, threshold: float) -> str:
    """Each enrolled person in turn left out of the gallery: their held-out photos are strangers
    who look like the calibration's, beside the other packages' strangers.  Galleries of 1 photo
    per person (5 draws) and of all photos; counts the stranger faces given a name."""
    enroll, probe = kind == "enroll", kind != "enroll"
    everyone = sorted(set(person[enroll]))
    counts = []
    for shape, draws in (("1 photo", range(5)), ("all photos", [None])):
        named = tries = 0
        for left_out in everyone:
            enrolled = [n for n in everyone if n != left_out]
            for draw in draws:
                vectors = [emb[enroll & (person == n)] for n in enrolled]
                if draw is not None:
                    vectors = [v[draw % len(v):draw % len(v) + 1] for v in vectors]
                starts = np.cumsum([0] + [len(v) for v in vectors[:-1]])
                people = KnownPeople.from_matrix(enrolled, np.asfortranarray(np.concatenate(vectors)), starts)
                for i in np.flatnonzero(probe & ~np.isin(person, enrolled)):
                    tries += 1
                    named += name_photo(emb[i:i + 1], people, threshold)[0][0] != "UNKNOWN"
        counts.append(f"{shape} {named}/{tries}")
    return "strangers named, each person left out in turn: " + ", ".join(counts)


def main() -> None:
    model = engine()
    found, person, kind = held_out_faces(model)
    enroll = kind == "enroll"
    crops = np.stack([model.crop(image, face) for image, face in found])
    plain = model.embedder.embed(crops)
    rows = [(name, degrade, False) for name, degrade in CONDITIONS.items()]
    rows.append(("both black-and-white", grey, True))
    for name, degrade, enrollment_too in rows:
        emb = plain.copy()
        keep = np.ones(len(found), bool)
        for i, (image, _) in enumerate(found):
            if enroll[i] and not enrollment_too:
                continue
            degraded = degrade(image).convert("RGB")
            face = largest(model.detector.detect(degraded, tight_crop_retry=True))
            if face is None:
                keep[i] = False
                continue
            emb[i] = model.embedder.embed(model.crop(degraded, face)[None])[0]
        print(f"{name}: {int((~keep & ~enroll).sum())} of {int((~enroll).sum())} probe faces not found")
        report(name, emb[keep], person[keep], kind[keep], model.spec.default_threshold, model.spec.verify_threshold)
        print(f"{'':14s} {left_out_strangers(emb[keep], person[keep], kind[keep], model.spec.default_threshold)}")


if __name__ == "__main__":
    main()
