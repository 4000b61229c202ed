"""The CSV report: its columns, one row per face, and formula-safe cells.  No file handling here."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from typing import IO, Iterable

from .pathtext import to_text
from .results import STATUS_ERROR, STATUS_NO_FACE, STATUS_OK, UNKNOWN, ImageResult

HEADER = ["image", "face", "name", "distance", "confidence", "left", "top", "right", "bottom",
          "status", "error", "annotated"]
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(text: str) -> str:
    """Neutralise text a spreadsheet would run as a formula, by prefixing a single quote (OWASP's advice)."""
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


class CsvRows:
    """csv.writer with Unix line ends that keeps a carriage return inside its cell.

    The csv module quotes a cell only for the characters of its line terminator, so with "\n" a
    file name holding "\r" would be written bare and split its row for every reader.  Such a row
    (rare: the name must hold one) is written with every cell quoted; all others stay as they were.
    """

    def __init__(self, handle: IO[str]):
        self._plain = csv.writer(handle, lineterminator="\n")
        self._quoted = csv.writer(handle, lineterminator="\n", quoting=csv.QUOTE_ALL)

    def writerow(self, row: list[str]) -> None:
        (self._quoted if any("\r" in str(cell) for cell in row) else self._plain).writerow(row)

    def writerows(self, rows: Iterable[list[str]]) -> None:
        for row in rows:
            self.writerow(row)


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def rows_for(result: ImageResult) -> list[list[str]]:
    """CSV rows for one image: one per face, or a single row for no_face and error."""
    image = safe_cell(to_text(result.image))
    annotated = safe_cell(to_text(result.annotated))
    if result.status != STATUS_OK or not result.faces:
        return [[image, "", "", "", "", "", "", "", "", result.status, safe_cell(one_line(result.error)), annotated]]
    rows = []
    for index, labelled in enumerate(result.faces):
        face = labelled.face
        distance = "" if labelled.distance == float("inf") else f"{labelled.distance:.4f}"
        rows.append([image, str(index), safe_cell(labelled.name), distance, f"{face.confidence:.4f}",
                     str(face.left), str(face.top), str(face.right), str(face.bottom), STATUS_OK, "", annotated])
    return rows


@dataclass
class Summary:
    images: int = 0
    faces: int = 0
    known: int = 0
    unknown: int = 0
    no_face: int = 0
    errors: int = 0
    seconds: float = 0.0

    processed: int = 0  # images detected in this run
    relabelled: int = 0  # images named again from their stored faces (the database or threshold changed)
    carried_over: int = 0  # images whose results were still current
    output_failures: int = 0  # outputs that could not be written: the review pages, XMP sidecars

    def add_rows(self, rows: list[list[str]]) -> None:
        """Count one image from its report rows (the same for fresh and carried-over results)."""
        self.images += 1
        for row in rows:
            status, name = row[9], row[2]
            self.faces += status == STATUS_OK
            self.known += status == STATUS_OK and name != UNKNOWN
            self.unknown += status == STATUS_OK and name == UNKNOWN
        self.no_face += rows[0][9] == STATUS_NO_FACE
        self.errors += rows[0][9] == STATUS_ERROR

    def as_dict(self) -> dict:
        return {"images": self.images, "faces": self.faces, "known": self.known, "unknown": self.unknown,
                "no_face": self.no_face, "errors": self.errors, "processed": self.processed,
                "relabelled": self.relabelled, "carried_over": self.carried_over,
                "output_failures": self.output_failures, "seconds": round(self.seconds, 3)}
