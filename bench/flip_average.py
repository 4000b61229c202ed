"""Would averaging each face's embedding with its mirror image's help?  (A lever for issue 8.)

The held-out comparison of bench/held_out.py, for plain and flip-averaged embeddings.
Usage: python bench/flip_average.py
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.held_out import engine, held_out_faces, report, unit  # noqa: E402


def main() -> None:
    model = engine()
    found, person, kind = held_out_faces(model)
    crops = np.stack([model.crop(image, face) for image, face in found])
    plain = model.embedder.embed(crops)
    flipped = model.embedder.embed(crops[:, :, ::-1].copy())
    report("plain", plain, person, kind)
    report("flip-averaged", unit(plain + flipped), person, kind)


if __name__ == "__main__":
    main()
