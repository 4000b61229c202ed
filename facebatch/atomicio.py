"""Write files so that a reader (or a crash) only ever sees the old content or the new, never half."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator


# Temporary files end with this, so that a later run can recognise and remove the ones a killed
# process (SIGKILL gives no chance to clean up) left behind.
TEMP_SUFFIX = ".facebatch-tmp"


def remove_stale_temporaries(folder: Path) -> int:
    """Delete our temporary files below `folder`; call only while holding the folder's lock."""
    removed = 0
    for dirpath, _dirnames, filenames in os.walk(folder):
        for name in filenames:
            if name.startswith(".") and name.endswith(TEMP_SUFFIX):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(dirpath, name))
                    removed += 1
    return removed


@contextlib.contextmanager
def atomic_writer(path: Path, mode: str = "wb", permissions: int | None = None) -> Iterator[IO]:
    """Open a temporary file beside `path`; on success fsync it and rename it over `path`.

    On any exception the temporary file is removed and `path` is left as it was.
    `permissions` (for example 0o600 for biometric data) is applied before the rename, so the
    final file is never visible with looser permissions.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        if permissions is not None:
            os.fchmod(fd, permissions)
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


def write_bytes_atomic(path: Path, data: bytes, permissions: int | None = None) -> None:
    with atomic_writer(path, "wb", permissions) as handle:
        handle.write(data)


def write_text_atomic(path: Path, text: str, permissions: int | None = None) -> None:
    with atomic_writer(path, "w", permissions) as handle:
        handle.write(text)
