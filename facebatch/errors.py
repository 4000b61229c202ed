"""The exceptions facebatch raises on purpose, and the exit codes they end in.

Each message is one line that names the file and says what to do next.
"""

EXIT_OK = 0
EXIT_FATAL = 1  # bad usage, missing or damaged weights or database, an unwritable output
# verify A B answered DIFFERENT: a script asks `if facebatch verify a.jpg b.jpg; then` without reading
# the line (as cmp and diff answer with their exit code); 1 stays an error, so the two never mix
EXIT_DIFFERENT = 2
# the run finished, but some images got error rows or some outputs (sidecars, review pages) could
# not be written; enroll and calibrate: photos skipped (unreadable, filed twice, someone else's)
EXIT_SOME_FAILED = 3
EXIT_LOCKED = 4  # another annotate writes to the same output folder or report
EXIT_PURGE_REFUSED = 5  # the folder lost most of its images since the last run; nothing was deleted


class FacebatchError(Exception):
    """An error we expect and can explain in one line; the CLI prints it without a traceback."""

    exit_code = EXIT_FATAL


class UsageProblem(FacebatchError):
    """Bad options or arguments."""


class WeightsError(FacebatchError):
    """Model weights are missing, corrupt, or could not be fetched."""


class DatabaseError(FacebatchError):
    """The face database is missing, corrupt, or made with another model."""


class ImageError(FacebatchError):
    """One image cannot be used.  Caught per image: it becomes a report row, never a crash."""


class SidecarError(ImageError):
    """An existing XMP sidecar cannot be merged into (not XML, not XMP, hostile, too large); it is left untouched."""


class OutputError(FacebatchError):
    """A file facebatch must write (report, manifest, database, lock) cannot be written."""


class RunLocked(FacebatchError):
    """Another annotate is writing to the same output folder or report."""

    exit_code = EXIT_LOCKED


class PurgeRefused(FacebatchError):
    """The input folder lost most of its images: an unmounted share looks just like that."""

    exit_code = EXIT_PURGE_REFUSED


class WorkerDied(FacebatchError):
    """A worker process of the pool was killed (the OOM killer, kill -9): the run stops, finished work is saved."""


class Interrupted(FacebatchError):
    """SIGINT or SIGTERM: the run stopped cleanly; finished work is saved."""

    def __init__(self, signum: int, then: str = "finished work is saved, run the same command to go on"):
        super().__init__(f"interrupted by signal {signum}; {then}")
        self.signum = signum
        self.exit_code = 128 + signum


def with_hint(message: str, hint: str) -> str:
    """`message` with what to do, unless it says already: our messages read "problem; what to do"."""
    return message if "; " in message else f"{message}; {hint}"


def folder_refused(path, what_to_do: str) -> UsageProblem:
    """The error for a path that must be a folder and is missing, or is something else."""
    import os

    from .pathtext import to_text

    problem = "not a folder" if os.path.lexists(path) else "no such folder"
    return UsageProblem(f"{to_text(path)}: {problem}; {what_to_do}")
