"""Write files so that a reader (or a crash) only ever sees the old content or the new, never half."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator


@contextlib.contextmanager
def atomic_writer(path: Path, mode: str = "wb", permissions: int | None = None) -> Iterator[IO]:
    """Open a temporary file beside `path`; on success fsync it and rename it over `path`.

    On any exception the temporary file is removed and `path` is left as it was.
    `permissions` (for example 0o600 for biometric data) is applied before the rename, so the
    final file is never visible with looser permissions.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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
