"""Write files so that a reader (or a crash) only ever sees the old content or the new, never half."""
from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator

# Temporary files end with this, so that a later run can recognise and remove the ones a killed
# process (SIGKILL gives no chance to clean up) left behind.
TEMP_SUFFIX = ".facebatch-tmp"


def _process_umask() -> int:
    """This process's umask, read without changing it (os.umask would race with worker threads)."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)  # no /proc: the classic dance, done once at import in the main thread
    os.umask(mask)
    return mask


def public_mode() -> int:
    """What a plain open() would give a new file now.  Temporary files start at 0600, and outputs
    that others may read (annotated copies, the report, a web server's review page) should not
    stay so.  Read at each write, so a umask set after start-up counts."""
    return 0o666 & ~_process_umask()


# A temporary name adds a dot, 8 random characters and the suffix to the file's name; names near
# the 255-byte limit of Linux file systems would then be too long, so the part taken from the
# file's name is cut to this many bytes.
_TEMP_NAME_BYTES = 200


def temporary_prefix(name: str) -> str:
    """The start of the names of our temporary files for the file called `name`."""
    raw = os.fsencode(name)[:_TEMP_NAME_BYTES]
    return "." + os.fsdecode(raw) + "."


def remove_stale_temporaries(folder: Path, recursive: bool = True, stem: str | None = None) -> int:
    """Delete our temporary files in `folder` (below it too when `recursive`); only those of the
    file called `stem` when given.  Call only while holding the lock that guards those files."""
    prefix = "." if stem is None else temporary_prefix(stem)
    removed = 0
    for dirpath, _dirnames, filenames in os.walk(folder):
        for name in filenames:
            if name.startswith(prefix) and name.endswith(TEMP_SUFFIX):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(dirpath, name))
                    removed += 1
        if not recursive:
            break
    return removed


@contextlib.contextmanager
def atomic_writer(path: Path, mode: str = "wb", permissions: int | None = None, group: int | None = None
                  ) -> Iterator[IO]:
    """Open a temporary file beside `path`; on success fsync it and rename it over `path`.

    On any exception the temporary file is removed and `path` is left as it was.  A full disk
    shows as an OSError from write, flush or fsync, always before the rename, so nothing short
    is ever renamed into place.  `permissions` (0o600 for biometric data) is applied before the
    rename, so the final file is never visible with looser ones; by default the file gets what
    the user's umask gives.  `group` (the replaced file's) is kept when the system lets us: a
    file shared with a group by `chgrp` would otherwise take the writer's own group.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=temporary_prefix(path.name), suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        os.fchmod(fd, public_mode() if permissions is None else permissions)
        if group is not None:
            with contextlib.suppress(OSError):  # not one of the writer's groups: the writer's own
                os.fchown(fd, -1, group)
        encoding = None if "b" in mode else "utf-8"
        newline = None if "b" in mode else ""
        with os.fdopen(fd, mode, encoding=encoding, newline=newline) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def write_bytes_atomic(path: Path, data: bytes, permissions: int | None = None, group: int | None = None) -> None:
    with atomic_writer(path, "wb", permissions, group) as handle:
        handle.write(data)
        handle.flush()
        written = os.fstat(handle.fileno()).st_size
        if written != len(data):  # belt and braces: never rename a short file into place
            raise OSError(f"short write ({written} of {len(data)} bytes)")


def write_text_atomic(path: Path, text: str, permissions: int | None = None, group: int | None = None) -> None:
    write_bytes_atomic(path, text.encode("utf-8"), permissions, group)


def describe_os_error(exc: OSError) -> str:
    """One line for an OSError, without Python's errno prefix."""
    return exc.strerror or str(exc) or type(exc).__name__


def write_failure_hint(exc: OSError, where: str = "the output folder") -> str:
    """What to do about a failed write, by its cause (a full disk and a file in a folder's place
    need different advice)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "free some space"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"fix the permissions of {where}"
    if exc.errno == errno.ENAMETOOLONG:
        return "shorten the photo's file name"
    if exc.errno in (errno.ENOTDIR, errno.EEXIST, errno.EISDIR):
        return f"a file stands where facebatch needs a folder (or the reverse) in {where}; move it away"
    return f"free some space or fix the permissions of {where}"
