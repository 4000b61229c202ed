import json
import os
import stat

import numpy as np
import pytest

from facebatch import gallery
from facebatch.errors import DatabaseError, OutputError


CROP = "stretched-0.30"


def sample(model="facenet", crop=CROP):
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(3, 128)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return gallery.Gallery(model, 128, {
        "ada": [gallery.Enrollment("ada/1.jpg", "a" * 64, vectors[0], crop),
                gallery.Enrollment("ada/2.jpg", "b" * 64, vectors[1], CROP)],
        "bob": [gallery.Enrollment("bob.jpg", "c" * 64, vectors[2], CROP)],
    })


def test_round_trip_is_exact_and_private(tmp_path):
    path = tmp_path / "db" / "DataBase.json"
    original = sample()
    gallery.save(path, original)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = gallery.load(path, "facenet")
    assert loaded.fingerprint() == original.fingerprint()
    np.testing.assert_array_equal(loaded.people["ada"][1].embedding, original.people["ada"][1].embedding)
    document = json.loads(path.read_text())
    assert document["format"] == "facebatch-database" and document["version"] == 2 and document["embedding_size"] == 128


def test_a_rewrite_keeps_the_mode_its_owner_gave_and_a_read_only_database_is_not_touched(tmp_path):
    path = tmp_path / "db.json"
    gallery.save(path, sample())
    path.chmod(0o640)  # shared with a group
    group = 4242 if os.geteuid() == 0 else os.getgid()  # (only root may give a file a group it is not in)
    os.chown(path, -1, group)
    gallery.save(path, sample())
    assert stat.S_IMODE(path.stat().st_mode) == 0o640 and path.stat().st_gid == group
    path.chmod(0o440)
    before = path.read_bytes()
    with pytest.raises(OutputError, match=r"db\.json: the database is read-only \(mode 0440\); nothing was changed, "
                                          r"make it writable \(chmod u\+w\)"):
        gallery.refuse_read_only(path)
    with gallery.locked(path):  # a run that changes nothing may read it under the lock
        pass
    with pytest.raises(OutputError, match="read-only"):
        gallery.save(path, gallery.Gallery("facenet", 128))
    assert path.read_bytes() == before and stat.S_IMODE(path.stat().st_mode) == 0o440


def test_each_embedding_records_its_crop_and_outdated_ones_are_refused_for_matching(tmp_path):
    path = tmp_path / "db.json"
    gallery.save(path, sample(crop="square-0.10"))
    assert [e["crop"] for e in json.loads(path.read_text())["people"]["ada"]] == ["square-0.10", CROP]
    assert gallery.load(path, "facenet").people["ada"][0].crop == "square-0.10"  # enroll and people may read it
    with pytest.raises(DatabaseError, match=r"1 embeddings \(ada\) were made by an older facebatch.*facebatch enroll"):
        gallery.load(path, "facenet", CROP)
    gallery.save(path, sample())
    assert gallery.load(path, "facenet", CROP).outdated(CROP) == []


def test_thresholds_apply_only_to_the_crop_they_were_measured_on(tmp_path):
    path = tmp_path / "db.json"
    original = sample()
    original.thresholds, original.thresholds_crop = {"annotate": 1.1, "verify": 1.0}, CROP
    gallery.save(path, original)
    loaded = gallery.load(path, "facenet")
    assert loaded.calibrated(CROP) == {"annotate": 1.1, "verify": 1.0}
    assert loaded.calibrated("square-0.10") == {}


def test_version_1_database_is_read_as_the_legacy_square_crop(tmp_path):
    path = tmp_path / "db.json"
    gallery.save(path, sample())
    document = json.loads(path.read_text())
    document["version"] = 1
    for entries in document["people"].values():
        for entry in entries:
            del entry["crop"]
    document["thresholds"] = {"annotate": 1.0}
    path.write_text(json.dumps(document))
    loaded = gallery.load(path, "facenet")
    assert {e.crop for entries in loaded.people.values() for e in entries} == {"square-0.10"}
    assert loaded.calibrated("square-0.10") == {"annotate": 1.0} and loaded.calibrated(CROP) == {}
    with pytest.raises(DatabaseError, match="older facebatch"):
        gallery.load(path, "facenet", CROP)


def test_matrix_groups_embeddings_by_person():
    names, known, starts = sample().matrix()
    assert names == ["ada", "bob"] and known.shape == (3, 128) and starts.tolist() == [0, 2]


def test_fingerprint_changes_with_everything_matching_uses():
    from dataclasses import replace

    original = sample().fingerprint()
    assert sample().fingerprint() == original
    fewer = sample()
    fewer.people.pop("bob")
    renamed = sample()
    renamed.people["cy"] = renamed.people.pop("bob")  # the same face under another name
    other_embedding = sample()
    other_embedding.people["bob"][0] = replace(other_embedding.people["bob"][0],
                                               embedding=-other_embedding.people["bob"][0].embedding)
    named = sample()  # a face named from a group: a centroid of its own (Gallery.matrix)
    named.people["ada"][1] = replace(named.people["ada"][1], box=(1, 2, 30, 40), group="g0001")
    regrouped = sample()
    regrouped.people["ada"][1] = replace(regrouped.people["ada"][1], box=(1, 2, 30, 40), group="g0002")
    prints = [g.fingerprint() for g in (fewer, renamed, other_embedding, named, regrouped)]
    assert original not in prints and len(set(prints)) == len(prints)
    # what matching does not use leaves it alone: the photo's folder and hash
    moved = sample()
    moved.people["bob"][0] = replace(moved.people["bob"][0], folder="/elsewhere", sha256="d" * 64)
    assert moved.fingerprint() == original


def test_missing_database_says_to_enroll_first(tmp_path):
    with pytest.raises(DatabaseError, match="run facebatch enroll first"):
        gallery.load(tmp_path / "none.json", "facenet")


def test_other_model_is_refused_with_how_to_reenroll(tmp_path):
    path = tmp_path / "db.json"
    gallery.save(path, sample("facenet-casia512"))
    with pytest.raises(DatabaseError, match=r"made with model facenet-casia512, not facenet; .*facebatch enroll"):
        gallery.load(path, "facenet")


def test_old_flat_format_is_refused(tmp_path):
    path = tmp_path / "db.json"
    path.write_text(json.dumps({"ada": [0.1] * 128}))
    with pytest.raises(DatabaseError, match=r"old flat \{name: \[floats\]\} database.*facebatch enroll"):
        gallery.load(path, "facenet")


@pytest.mark.parametrize("content", [b"{\"format\": \"facebatch-database\", \"vers", b"\x80\x04\x95pickle", b"\xff\xfe",
                                     b'{"format": "facebatch-database", "version": 1, "model": "facenet", '
                                     b'"embedding_size": 128, "people": {"ada": [{"source": "a", "sha256": "x", '
                                     b'"embedding": "AAAA"}]}}'])
def test_corrupt_database_is_reported_and_left_untouched(tmp_path, content):
    path = tmp_path / "db.json"
    path.write_bytes(content)
    with pytest.raises(DatabaseError, match=str(path)):
        gallery.load(path, "facenet")
    assert path.read_bytes() == content


@pytest.mark.parametrize("name,problem", [("", "empty"), ("  ", "empty"), ("a/b", "path separator"),
                                          ("a\\b", "path separator"), ("ad\na", "control"), ("unknown", "reserved"),
                                          ("\uff35\uff2e\uff2b\uff2e\uff2f\uff37\uff2e", "reserved"),
                                          (" Unknown ", "reserved"),
                                          ("x" * 201, "longer than 200")])
def test_bad_person_names(name, problem):
    assert problem in gallery.name_problem(name)


def test_good_person_names():
    assert gallery.name_problem("Zoë O'Brien-Smith") is None


@pytest.mark.parametrize("change", [lambda d: d["people"]["ada"][0].pop("crop"),
                                    lambda d: d["people"]["ada"][0].update(crop=7),
                                    lambda d: d.update(thresholds={"annotate": 1.1})])  # no thresholds_crop
def test_a_damaged_crop_record_is_reported_and_left_untouched(tmp_path, change):
    path = tmp_path / "db.json"
    gallery.save(path, sample())
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))
    before = path.read_bytes()
    with pytest.raises(DatabaseError, match=r"damaged database \(.*\); the file is left untouched"):
        gallery.load(path, "facenet")
    assert path.read_bytes() == before


def test_an_embedding_size_the_model_does_not_make_is_refused(tmp_path):
    path = tmp_path / "db.json"
    empty = gallery.Gallery("facenet", 512)  # no embedding to betray it: only the declared size
    gallery.save(path, empty)
    before = path.read_bytes()
    with pytest.raises(DatabaseError, match=r"damaged database \(embedding_size 512, but facenet makes 128\).*left "
                                            r"untouched"):
        gallery.load_or_new(path, "facenet", 128)
    assert path.read_bytes() == before


def test_a_database_link_to_nothing_is_refused_and_creates_nothing(tmp_path):
    link = tmp_path / "db.json"
    link.symlink_to(tmp_path / "unmounted" / "db.json")
    for action in (lambda: gallery.load(link, "facenet"), lambda: gallery.locked(link).__enter__()):
        with pytest.raises(DatabaseError, match=r"db.json: a link to .*unmounted/db.json, which does not exist; fix "
                                                r"the link or pass another --db"):
            action()
    assert not (tmp_path / "unmounted").exists()


def test_one_person_however_the_name_is_spelled_in_unicode_and_spaces():
    nfc, nfd = "Ard\u00e9rn", "Arde\u0301rn"
    assert nfc != nfd and gallery.canonical_name(nfd) == nfc
    assert gallery.canonical_name("  Barack   Obama ") == "Barack Obama"


def _hand_edited(tmp_path, edit) -> tuple:
    path = tmp_path / "db.json"
    gallery.save(path, sample())
    text = edit(path.read_text())
    path.write_text(text)
    return path, path.read_bytes()


def _with_a_box_on_bob(box: str):
    return lambda text: text.replace('"source": "bob.jpg",', f'"source": "bob.jpg", "box": {box},')


@pytest.mark.parametrize("edit,why", [
    (lambda t: t.replace('"bob"', '"UNKNOWN"'), "reserved"),  # a match would be reported as no match
    (lambda t: t.replace('"bob"', '""'), "empty"),
    (lambda t: t.replace('"bob"', '"b\\u001b]0;pwned\\u0007b"'), "control"),
    (lambda t: t.replace('"bob"', '"../../x"'), "path separator"),
    (lambda t: t.replace('"bob"', '"ada"'), "appears twice"),  # JSON readers keep one: faces under another name
    (lambda t: t.replace('"embedding_size": 128', '"embedding_size": Infinity'), "damaged"),
    (lambda t: t.replace('"people": {', '"deep": ' + "[" * 100000 + "]" * 100000 + ', "people": {'), "nested"),
    # JSON's true is 1 to Python: a version, a size or a threshold of true is damage, not 1
    (lambda t: t.replace('"version": 2', '"version": true'), "version True is not a whole number"),
    (lambda t: t.replace('"embedding_size": 128', '"embedding_size": 128.9'), "not a positive whole number"),
    (lambda t: t.replace('"embedding_size": 128', '"embedding_size": "128"'), "not a positive whole number"),
    (lambda t: t.replace('"people": {', '"thresholds": {"annotate": true}, "thresholds_crop": "x", "people": {'),
     "not numbers"),
    # a box marks an entry as named from a group: a stray one would move an enrolled photo there
    *[(_with_a_box_on_bob(box), why) for box, why in [
        ("[1, 2]", "box is not four whole numbers"), ('"1234"', "box is not four whole numbers"),
        ("[5, 5, 1, 9]", "box is not a face's box"), ("[-1, 0, 9, 9]", "box is not a face's box"),
        ("[0, 0, 10000000000000, 9]", "box is not a face's box")]],
])
def test_hand_edited_names_and_values_are_refused_and_the_file_left_untouched(tmp_path, edit, why):
    path, before = _hand_edited(tmp_path, edit)
    with pytest.raises(DatabaseError, match=why) as caught:
        gallery.load(path, "facenet")
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)
    assert "ada/" not in str(caught.value)  # the entry before the bad one is not blamed
    assert path.read_bytes() == before


def test_older_spellings_of_one_name_load_as_one_person(tmp_path):
    path, _ = _hand_edited(tmp_path, lambda t: t.replace('"bob"', '"ada "'))
    loaded = gallery.load(path, "facenet")
    assert sorted(loaded.people) == ["ada"] and len(loaded.people["ada"]) == 3


def test_a_folder_given_as_the_database_is_one_line(tmp_path):
    with pytest.raises(DatabaseError, match="is a directory; pass the database file with --db"):
        gallery.load(tmp_path, "facenet")
