"""The exceptions facebatch raises on purpose.  Each message says what went wrong and what to do next."""


class FacebatchError(Exception):
    """An error we expect and can explain in one line; the CLI prints it without a traceback."""

    exit_code = 1


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
