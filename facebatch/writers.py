"""Every output behind one of two small interfaces, fed the same stored facts.

- An `ImageWriter` turns one image's labelled faces into a file of its own (the annotated copy,
  the XMP sidecar).  It runs wherever the image is at hand: in the worker after detection, or
  in a relabel job.  `remove` cleans up after an image that left the folder.
- A `RunWriter` turns the whole manifest into one file (the CSV report), in the parent.
Adding an output is adding a writer; the runner, the manifest and the planning stay as they are.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Protocol

from PIL import Image

from . import draw, review, sidecar, thumbnails, xmp
from .atomicio import atomic_writer, describe_os_error, write_bytes_atomic
from .config import SIDECARS_KEEP_TRUE, SIDECARS_WRITE
from .errors import OutputError, SidecarError
from .images import annotated_name, inside_folder, save_image_atomic
from .pathtext import from_text, to_text
from .report import HEADER, CsvRows, Summary, rows_for
from .results import STATUS_ERROR, STATUS_OK, UNKNOWN, ImageResult, LabelledFace


@dataclass
class ImageOutput:
    """What an image writer gets: one image's labelled faces, and the decoded photo when needed."""

    relative: str  # relative to the input folder, as Python holds it
    faces: tuple[LabelledFace, ...]
    width: int
    height: int
    orientation: int
    image: Image.Image | None = None  # upright RGB; writers may draw on it
    sha256: str = ""  # of the photo's bytes, which names its thumbnails
    sidecar_written: bool | None = None  # what a writer learned: set by the sidecar writer under --xmp


class ImageWriter(Protocol):
    needs_pixels: bool  # whether write() needs ImageOutput.image
    # Whether the image's result stands or falls with this file.  A sidecar beside the user's
    # photo can fail for reasons of its own (made read-only, a name too long for ".xmp"); the
    # faces found are still right, so that failure is a warning and is retried, not an error row.
    essential: bool
    what: str  # what it writes, for messages: "annotated copy"
    where: str  # where it writes, for advice: "--out"

    def write(self, output: ImageOutput) -> str:
        """Write this image's file; return its path relative to the output folder ("" for none there)."""

    def remove(self, relative: str, annotated: str) -> None:
        """The image left the folder or failed: remove what this writer made for it."""


class AnnotatedCopyWriter:
    """The photo with boxes and labels, under the same relative path in the output folder."""

    needs_pixels = True
    essential = True
    what = "annotated copy"
    where = "--out"

    def __init__(self, output_root: Path):
        self.output_root = Path(output_root)

    def write(self, output: ImageOutput) -> str:
        name = annotated_name(output.relative)
        # The crops are taken by now, so the decoded photo itself can take the boxes.
        save_image_atomic(draw.draw_faces_onto(output.image, output.faces), self.output_root / name)
        return name

    def remove(self, relative: str, annotated: str) -> None:
        path = output_file(self.output_root, annotated)
        if path is None:
            return
        with contextlib.suppress(OSError):  # not there, a folder, a name too long to exist: nothing to remove
            path.unlink()
        # Folders the copies leave empty go too: a photo folder `x.jpg/` replaced by a photo
        # `x.jpg` would otherwise find an empty folder where its copy goes, every night.
        root = Path(os.path.realpath(self.output_root))
        for folder in path.parents:
            real = Path(os.path.realpath(folder))
            if real == root or not real.is_relative_to(root):
                break
            try:
                folder.rmdir()
            except OSError:
                break  # not empty (other copies), or not ours to remove


class XmpSidecarWriter:
    """MWG face regions of the named faces, merged into the sidecar beside the original photo, as
    `sidecars` (config.SIDECAR_MODES) says: written, kept true where facebatch wrote them, or
    taken out."""

    needs_pixels = False
    essential = False
    what = "XMP sidecar"
    where = "the photo's folder"

    def __init__(self, input_root: Path, sidecars: str = SIDECARS_WRITE):
        self.input_root = Path(input_root)
        self.sidecars = sidecars
        self.real_root = os.path.realpath(input_root)  # once per chunk: the folder's own path does not move
        self._folders_inside: dict[Path, bool] = {}  # a chunk's photos share few folders

    def write(self, output: ImageOutput) -> str:
        named = [xmp.FaceRegion.from_labelled(f) for f in output.faces if f.name != UNKNOWN]
        photo = self.input_root / output.relative
        inside = self._folders_inside.get(photo.parent)
        if inside is None:
            inside = self._folders_inside[photo.parent] = inside_folder(photo.parent, self.real_root)
        if not inside:
            if self.sidecars != SIDECARS_WRITE:
                return ""  # (remove() says why nothing outside the input folder is touched)
            raise SidecarError("the photo's folder is now a link out of the folder; no sidecar is written there")
        if self.sidecars == SIDECARS_WRITE:
            written = sidecar.write_sidecar(photo, (output.width, output.height), named, output.orientation)
            output.sidecar_written = written is not None
        elif self.sidecars == SIDECARS_KEEP_TRUE:
            sidecar.keep_our_regions_true(photo, (output.width, output.height), named, output.orientation)
        else:
            sidecar.remove_our_regions(photo)
        return ""

    def remove(self, relative: str, annotated: str) -> None:
        """Raises SidecarError for a sidecar that cannot be cleaned (read-only, damaged): it may
        still name someone, so the caller must say so.  Only inside the input folder: a photo whose
        folder became a link out of it (moved away, with its sidecar) is no longer this run's, and a
        manifest's paths are data, never trusted to stay inside."""
        photo = output_file(self.input_root, to_text(relative))
        if photo is None or not os.path.isdir(photo.parent) or not inside_folder(photo.parent, self.real_root):
            return  # (not a folder, a loop of links say: no sidecar can be there)
        sidecar.remove_our_regions(photo)


class ThumbnailWriter:
    """A small crop of every face, for the review pages (review.thumb_path names it).  Written
    when the photo is detected, before the annotated copy draws on it; a relabel keeps them."""

    needs_pixels = True
    essential = True
    what = "review thumbnail"
    where = "--out's review folder"

    def __init__(self, output_root: Path):
        self.output_root = Path(output_root)

    def write(self, output: ImageOutput) -> str:
        for labelled in output.faces:
            face = labelled.face
            box = face.box
            thumbnails.write_thumbnail(output.image, box, self.output_root,
                                       review.thumb_path(to_text(output.relative), box, output.sha256))
        return ""

    def remove(self, relative: str, annotated: str) -> None:
        pass  # thumbnails no face refers to are pruned after the run (ReviewWriter)


def image_writers(input_root: Path, output_root: Path, sidecars: str, thumbs: bool = True) -> list[ImageWriter]:
    """The writers of one image's files, in the order they must run: thumbnails are cut before
    the annotated copy draws its boxes onto the same decoded photo.  The sidecar writer is there
    in every mode: without --xmp it still keeps the regions an earlier run wrote true."""
    writers: list[ImageWriter] = [ThumbnailWriter(output_root)] if thumbs else []
    writers.append(AnnotatedCopyWriter(output_root))
    writers.append(XmpSidecarWriter(input_root, sidecars))
    return writers


def output_file(output_dir: Path, relative_text: str) -> Path | None:
    """The file `relative_text` (as stored in the manifest) names inside `output_dir`, or None
    when it would lead outside it: a manifest is data, and its paths are never trusted."""
    if not relative_text:
        return None
    relative = Path(from_text(relative_text))
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        return None
    path = output_dir / relative
    try:
        if not Path(os.path.realpath(path.parent)).is_relative_to(Path(os.path.realpath(output_dir))):
            return None  # a symlinked folder inside --out pointing elsewhere
    except (OSError, RuntimeError):  # a loop of links (RuntimeError before Python 3.13): not a place to write
        return None
    return path


class RunWriter(Protocol):
    def write(self, results: Iterable[ImageResult]) -> Summary:
        """Write the run's file from every image's result, in path order."""


class CsvReportWriter:
    """The CSV report, streamed (never all rows in memory) and written atomically."""

    def __init__(self, report_path: Path):
        self.report_path = Path(report_path)

    def write(self, results: Iterable[ImageResult]) -> Summary:
        summary = Summary()
        try:
            with atomic_writer(self.report_path, "w") as handle:
                writer = CsvRows(handle)
                writer.writerow(HEADER)
                for result in results:
                    rows = rows_for(result)
                    writer.writerows(rows)
                    summary.add_rows(rows)
        except OSError as exc:
            raise OutputError(f"{self.report_path}: cannot write the report ({describe_os_error(exc)}); the previous "
                              "report is left as it was, free some space or fix the permissions and run again") from None
        return summary


class SummaryJsonWriter:
    """The run's counts as JSON, for monitoring (--summary-json), with how it ended: written after
    every run that got as far as its folders, failed and stopped ones included (their counts are
    null), so a monitor never reads last night's success as tonight's."""

    def __init__(self, path: Path, report_path: Path):
        self.path, self.report_path = Path(path), Path(report_path)

    def write(self, summary: Summary, exit_code: int) -> None:
        self._write({**summary.as_dict(), **self._ending(exit_code, "")})

    def write_failure(self, exit_code: int, error: str) -> None:
        self._write({**{key: None for key in Summary().as_dict()}, **self._ending(exit_code, error)})

    def _ending(self, exit_code: int, error: str) -> dict:
        finished = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        # in its printable form (pathtext): JSON holds text, and a folder name may be Latin-1 bytes
        return {"exit_code": exit_code, "error": to_text(error), "finished_at": finished,
                "report": to_text(str(self.report_path))}

    def _write(self, document: dict) -> None:
        try:
            write_bytes_atomic(self.path, (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot write the summary ({describe_os_error(exc)}); the report is "
                              "written, choose another --summary-json") from None


class ReviewWriter:
    """review.html and its pages in the output folder: the people, the unknown groups, the
    uncertain matches and the errors (review.py renders; this writes, and removes stale pages
    and thumbnails no face refers to any more)."""

    def __init__(self, output_root: Path, threshold: float, groups, command_options: tuple[str, ...] = ()):
        self.output_root = Path(output_root)
        self.threshold = threshold
        self.groups = groups  # groups.Groups
        self.command_options = command_options
        self._people: dict[str, list[review.FaceThumb]] = {}
        self._unknown: dict[tuple[str, int], review.FaceThumb] = {}
        self._errors: list[review.Problem] = []
        self._thumbs: set[str] = set()

    def write(self, results: Iterable[ImageResult]) -> None:
        for _ in self.collecting(results):
            pass
        self.finish()

    def collecting(self, results: Iterable[ImageResult]) -> Iterator[ImageResult]:
        """Pass `results` through, noting what the pages need: the report and the pages are then
        written from one read of the manifest (see annotation.py)."""
        for result in results:
            self._collect(result)
            yield result

    def _collect(self, result: ImageResult) -> None:
        image = to_text(result.image)
        if result.status == STATUS_ERROR:
            self._errors.append(review.Problem(image, result.error))
        if result.status != STATUS_OK:
            return
        for index, labelled in enumerate(result.faces):
            face = labelled.face
            box = face.box
            thumb = review.FaceThumb(image, index, box, review.thumb_path(image, box, result.sha256),
                                     labelled.distance, to_text(result.annotated))
            self._thumbs.add(thumb.thumb)
            if labelled.name == UNKNOWN:
                self._unknown[(image, index)] = thumb
            else:
                self._people.setdefault(labelled.name, []).append(thumb)

    def finish(self) -> None:
        """Render and write the pages; remove stale pages and thumbnails no face refers to."""
        grouped = sum(len(g.keys) for g in self.groups.clusters.groups)
        data = review.ReviewData(
            people=tuple(review.Person(name, tuple(faces)) for name, faces in sorted(self._people.items())),
            groups=tuple(review.UnknownGroup(g.id, _representative_first(g, self._unknown))
                         for g in self.groups.listed()),
            errors=tuple(self._errors), threshold=self.threshold,
            ungrouped_unknown=max(0, len(self._unknown) - grouped), command_options=self.command_options)
        pages = review.render(data)
        try:
            for relative, html in pages.items():
                path = self.output_root / relative
                if not (path.is_file() and path.read_text(encoding="utf-8") == html):
                    # every path on a page is in its printable form; should one slip through
                    # raw, it shows as \udcXX rather than ending the run
                    write_bytes_atomic(path, html.encode("utf-8", errors="backslashreplace"))
        except OSError as exc:
            raise OutputError(f"{self.output_root / review.INDEX}: cannot write the review pages "
                              f"({describe_os_error(exc)}); free some space and run again") from None
        self._remove_stale_pages(set(pages))
        thumbnails.prune_thumbnails(self.output_root, self._thumbs)

    def _remove_stale_pages(self, keep: set[str]) -> None:
        folder = self.output_root / review.FOLDER
        if not folder.is_dir():
            return
        for page in folder.glob("*.html"):
            if page.relative_to(self.output_root).as_posix() not in keep:
                page.unlink(missing_ok=True)


def _representative_first(group, by_key) -> tuple:
    from .cluster import representative

    first = representative(group)
    keys = [first] + [k for k in group.keys if k != first]
    return tuple(by_key[k] for k in keys if k in by_key)
