"""facebatch.groups without photos or TensorFlow: a manifest in tmp_path holding made-up faces."""
import numpy as np

from facebatch import cluster, groups
from facebatch.detect import Face
from facebatch.results import UNKNOWN, ImageResult, LabelledFace
from facebatch.state import ImageRecord, RunState


def manifest_with_one_unknown_face(path) -> RunState:
    manifest = RunState(path)
    face = LabelledFace(Face(0, 0, 100, 100, 0.999), UNKNOWN, 1.3)
    result = ImageResult("a.jpg", "ok", (face,), embeddings=np.eye(4, dtype=np.float32)[:1])
    manifest.put_many([ImageRecord(result, "detection", "labels")])
    return manifest


def test_after_a_rebuild_group_numbers_already_given_out_are_never_given_again(tmp_path):
    # The manifest's counter says g0005 is next, but the review folder shows g0005 was given out
    # (the manifest was restored or rebuilt): the new group must be g0006, never g0005 again.
    manifest = manifest_with_one_unknown_face(tmp_path / "m.sqlite")
    try:
        groups.save(manifest, groups.Groups(cluster.ClusterState((), 5)))
        found = groups.refresh(manifest, [], 4, "crop", numbers_used=5)
        assert [g.id for g in found.clusters.groups] == ["g0006"] and found.clusters.next_number == 7
    finally:
        manifest.close()


def test_a_counter_above_the_numbers_given_out_is_kept(tmp_path):
    manifest = manifest_with_one_unknown_face(tmp_path / "m.sqlite")
    try:
        groups.save(manifest, groups.Groups(cluster.ClusterState((), 9)))
        assert [g.id for g in groups.refresh(manifest, [], 4, "crop", numbers_used=5).clusters.groups] == ["g0009"]
    finally:
        manifest.close()
