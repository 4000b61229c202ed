"""facebatch.state's messages, without photos or TensorFlow."""
import sqlite3

import pytest

from facebatch.errors import OutputError
from facebatch.state import RunState


def test_a_manifest_that_is_there_but_cannot_be_opened_says_so(tmp_path, monkeypatch):
    # (as root, chmod 000 does not stop sqlite; what it raises for other users is stood in for)
    manifest = tmp_path / "report.state.sqlite"
    manifest.write_bytes(b"")

    def refused(*args, **kwargs):
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr(sqlite3, "connect", refused)
    with pytest.raises(OutputError, match=r"report.state.sqlite: cannot open the manifest \(.*\); make it readable and "
                                          r"writable \(chmod 600\), or choose another --report"):
        RunState(manifest)
    manifest.unlink()
    with pytest.raises(OutputError, match=r"cannot create the manifest .*check the report folder is writable"):
        RunState(manifest)


def test_a_folder_where_the_manifest_goes_is_named_as_one(tmp_path):
    (tmp_path / "report.state.sqlite").mkdir()
    with pytest.raises(OutputError, match=r"cannot open the manifest .*; a folder stands there: move it aside, or "
                                          r"choose another --report"):
        RunState(tmp_path / "report.state.sqlite")


def test_a_name_taken_off_a_record_leaves_no_copy_in_the_manifest_file(tmp_path, monkeypatch):
    """A person removed, then relabelled away: SQLite keeps replaced rows in its free pages unless
    secure_delete is on, which is not its default (this system's build may turn it on: the test
    turns it off first, as such a build would have it)."""
    import numpy as np

    from facebatch.detect import Face
    from facebatch.results import UNKNOWN, ImageResult, LabelledFace
    from facebatch.state import ImageRecord

    connect = sqlite3.connect

    def connect_as_sqlite_defaults(*args, **kwargs):
        db = connect(*args, **kwargs)
        db.execute("PRAGMA secure_delete=OFF")
        return db

    monkeypatch.setattr(sqlite3, "connect", connect_as_sqlite_defaults)
    manifest_path = tmp_path / "report.state.sqlite"
    manifest = RunState(manifest_path)

    def record(path: str, name: str) -> ImageRecord:
        face = LabelledFace(Face(0, 0, 100, 100, 0.999), name, 0.5)
        embedding = np.random.default_rng(0).random((1, 128), dtype=np.float32)
        return ImageRecord(ImageResult(path, "ok", (face,), embeddings=embedding), "detection", "labels")

    manifest.put_many([record(f"{i}.jpg", "Zebedee_Quux" if i % 3 == 0 else "Ann") for i in range(300)])
    manifest.put_many([record(f"{i}.jpg", UNKNOWN) for i in range(0, 300, 3)])  # relabelled after the removal
    manifest.close()
    on_disk = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("report.state.sqlite"))
    assert b"Ann" in on_disk and b"Zebedee_Quux" not in on_disk


def test_a_manifest_from_before_secure_delete_is_rebuilt_once_leaving_no_freed_name(tmp_path):
    import numpy as np

    from facebatch.detect import Face
    from facebatch.results import ImageResult, LabelledFace
    from facebatch.state import ImageRecord

    path = tmp_path / "report.state.sqlite"
    manifest = RunState(path)
    face = LabelledFace(Face(0, 0, 100, 100, 0.999), "Zebedee_Quux", 0.5)
    embedding = np.random.default_rng(0).random((1, 128), dtype=np.float32)
    manifest.put_many([ImageRecord(ImageResult(f"{i}.jpg", "ok", (face,), embeddings=embedding), "d", "l")
                       for i in range(300)])
    manifest.close()
    # as a facebatch before secure_delete left it: the name relabelled away, still in free pages
    old = sqlite3.connect(path, isolation_level=None)
    old.execute("PRAGMA secure_delete=OFF")
    old.execute("CREATE TEMP TABLE relabelled AS SELECT * FROM images")
    old.execute("UPDATE relabelled SET labels=replace(labels, 'Zebedee_Quux', 'UNKNOWN')")
    old.execute("INSERT OR REPLACE INTO images SELECT * FROM relabelled")  # as put_many writes
    old.execute("DELETE FROM meta WHERE key='zeroed'")
    old.close()
    assert b"Zebedee_Quux" in path.read_bytes()
    RunState(path).close()
    assert b"Zebedee_Quux" not in path.read_bytes()
