"""--try-rotations: which quarter turn gives back the upright photo?

Every celebrity photo (val and train) with a face found upright is turned 90, 180 and 270 degrees;
each turned copy where no face is found without turning is a case.  For each case the three turns
back are tried, and two rules are scored: the first turn with a face (the rule before 2026-11-24)
and the turn whose largest face MTCNN is surest of (the rule now).  A rule is right when the turn
it picks gives back the upright photo exactly.
Usage: python bench/rotation_choice.py
"""
from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from facebatch.config import ExecutionSettings, Settings  # noqa: E402
from facebatch.detect import largest  # noqa: E402
from facebatch.engines import get_engine  # noqa: E402
from tools.sample_data import cache_dir, celebrity_dataset  # noqa: E402

TURNS = (Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270)


def main() -> None:
    engine = get_engine(Settings(execution=ExecutionSettings(models_root=cache_dir() / "Model")))
    for part in ("val", "train"):
        cases = first_right = surest_right = 0
        for path in sorted((celebrity_dataset() / part).rglob("*.jpg")):
            photo = Image.open(path).convert("RGB")
            if not engine.detector.detect(photo):
                continue
            for stored in TURNS:
                turned = photo.transpose(stored)
                if engine.detector.detect(turned):
                    continue
                found = []  # (confidence of the largest face, upright?) per turn with a face, in turn order
                for back in TURNS:
                    candidate = turned.transpose(back)
                    faces = engine.detector.detect(candidate)
                    if faces:
                        found.append((largest(faces).confidence, candidate.tobytes() == photo.tobytes()))
                if found:
                    cases += 1
                    first_right += found[0][1]
                    surest_right += max(found, key=lambda f: f[0])[1]
        print(f"{part}: {cases} cases; first turn with a face upright in {first_right}, surest turn upright in "
              f"{surest_right}")


if __name__ == "__main__":
    main()
