"""facebatch.atomicio: which leftovers a later run may delete.  Plain files in tmp_path, no photos."""
from facebatch.atomicio import TEMP_SUFFIX, remove_stale_temporaries, temporary_prefix, write_bytes_atomic


def test_only_our_temporaries_are_removed_never_other_dotfiles(tmp_path):
    # a killed run's leftovers, beside files that belong to the user or to other programs
    ours = [tmp_path / f"{temporary_prefix('report.csv')}k3j9x2ab{TEMP_SUFFIX}",
            tmp_path / "sub" / f"{temporary_prefix('a.jpg')}0123abcd{TEMP_SUFFIX}"]
    theirs = [tmp_path / ".nomedia", tmp_path / "sub" / ".gitignore", tmp_path / "sub" / ".a.jpg.0123abcd.part",
              tmp_path / f"photo{TEMP_SUFFIX}"]  # not dot-prefixed: not a name we ever make
    for path in ours + theirs:
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"x")
    assert remove_stale_temporaries(tmp_path) == 2
    assert not any(p.exists() for p in ours) and all(p.exists() for p in theirs)


def test_a_stem_limits_removal_to_that_files_temporaries_and_recursive_false_to_the_folder(tmp_path):
    mine = tmp_path / f"{temporary_prefix('db.json')}aaaaaaaa{TEMP_SUFFIX}"
    other = tmp_path / f"{temporary_prefix('report.csv')}bbbbbbbb{TEMP_SUFFIX}"
    below = tmp_path / "sub" / f"{temporary_prefix('db.json')}cccccccc{TEMP_SUFFIX}"
    below.parent.mkdir()
    for path in (mine, other, below):
        path.write_bytes(b"x")
    assert remove_stale_temporaries(tmp_path, recursive=False, stem="db.json") == 1
    assert not mine.exists() and other.exists() and below.exists()


def test_a_finished_write_leaves_no_temporary_behind(tmp_path):
    write_bytes_atomic(tmp_path / "out.bin", b"data")
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]
    assert remove_stale_temporaries(tmp_path) == 0
