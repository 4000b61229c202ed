"""The same annotate run gives the same report, row for row, on every backend.

One in-process worker is the reference; two threads sharing one model (the default), two loky
processes, and a Dask LocalCluster of two worker processes (joblib's Dask backend) must match it.
"""
from __future__ import annotations

import shutil

import pytest

from cli_helpers import report_rows, run


@pytest.fixture(scope="module")
def workload(tmp_path_factory, celebrity, insightface_dir, models_root):
    """(images folder, database, report rows of the one-worker reference run): 25 portraits and a group photo."""
    root = tmp_path_factory.mktemp("backends")
    images = root / "images"
    shutil.copytree(celebrity / "val", images)
    shutil.copy(insightface_dir / "t1.jpg", images / "group.jpg")
    db = root / "db.json"
    assert run("enroll", celebrity / "train", "--db", db, "--model-dir", models_root, "-j", "1", "-q").exit_code == 0
    reference = run("annotate", images, "--db", db, "--out", root / "one-worker", "--model-dir", models_root,
                    "-j", "1", "-q")
    assert reference.exit_code == 0, reference.output
    rows = report_rows(root / "one-worker" / "report.csv")
    # 25 portraits and t1.jpg; how many are named is test_accuracy's business, not this file's
    assert len(rows) >= 32 and sum(r["name"] not in ("", "UNKNOWN") for r in rows) >= 20
    return images, db, rows


def assert_same_results(expected: list[dict], actual: list[dict]) -> None:
    assert len(actual) == len(expected)
    for a, b in zip(expected, actual):
        assert {k: a[k] for k in a if k != "distance"} == {k: b[k] for k in b if k != "distance"}
        assert (a["distance"] == b["distance"] == "") or abs(float(a["distance"]) - float(b["distance"])) < 1e-3


@pytest.mark.parametrize("backend", ["threads", "processes"])
def test_two_workers_on_this_machine_match_one(backend, workload, tmp_path, models_root):
    images, db, expected = workload
    result = run("annotate", images, "--db", db, "--out", tmp_path / "out", "--model-dir", models_root, "-q",
                 "-j", "2", "--backend", backend)
    assert result.exit_code == 0, result.output
    assert_same_results(expected, report_rows(tmp_path / "out" / "report.csv"))
    assert (tmp_path / "out" / "group.jpg").is_file()


def test_local_cluster_report_matches_the_local_run(workload, tmp_path, models_root):
    distributed = pytest.importorskip("distributed")
    images, db, expected = workload
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        remote = run("annotate", images, "--db", db, "--out", tmp_path / "dask", "--model-dir", models_root, "-q",
                     "--scheduler", cluster.scheduler_address)
    assert remote.exit_code == 0, remote.output
    assert_same_results(expected, report_rows(tmp_path / "dask" / "report.csv"))
    assert (tmp_path / "dask" / "group.jpg").is_file()


def test_unreachable_scheduler_is_a_clear_error(tmp_path, models_root, celebrity):
    pytest.importorskip("distributed")
    db = tmp_path / "db.json"
    run("enroll", celebrity / "train" / "madonna", "--db", db, "--model-dir", models_root, "-j", "1", "-q")
    (tmp_path / "images").mkdir()
    shutil.copy(sorted((celebrity / "val" / "madonna").glob("*.jpg"))[0], tmp_path / "images" / "a.jpg")
    result = run("annotate", tmp_path / "images", "--db", db, "--out", tmp_path / "out", "--model-dir", models_root,
                 "--scheduler", "tcp://127.0.0.1:9")
    assert result.exit_code == 1
    assert result.output.startswith("Error: cannot reach the Dask scheduler at tcp://127.0.0.1:9 (")
    assert result.output.strip().endswith("check the address and that the scheduler is running")


def _pid_of_worker(chunk):
    import os

    return os.getpid()


def test_worker_processes_are_at_most_one_per_core_and_per_chunk(monkeypatch):
    import os

    import distributed

    from facebatch.runner import run_ordered

    pids = set(run_ordered(_pid_of_worker, [[1], [2], [3], [4], [5]], 10000, backend="processes"))
    assert 1 <= len(pids) <= min(os.cpu_count() or 1, 5)

    started = []

    class CountingCluster(distributed.LocalCluster):
        def __init__(self, *args, n_workers, **kwargs):
            started.append(n_workers)
            super().__init__(*args, n_workers=n_workers, **kwargs)

    import dask.distributed

    monkeypatch.setattr(dask.distributed, "LocalCluster", CountingCluster)  # where the runner takes it from
    assert list(run_ordered(_pid_of_worker, [[1]], 6, backend="dask"))
    assert started == [1]  # one chunk of work: one worker, not six


def _how_the_gallery_arrived(chunk, gallery):
    import numpy as np

    return type(gallery).__name__, isinstance(gallery, np.memmap), float(gallery.sum())


def test_worker_processes_get_a_large_gallery_through_memory_not_a_pickle_on_disk(tmp_path, monkeypatch):
    """joblib pickles an argument over 1 MB into a file for its workers to map: a gallery of about
    1,000 people's embeddings would land under /dev/shm.  It must travel in memory instead."""
    import numpy as np

    from facebatch.runner import run_ordered

    monkeypatch.setenv("JOBLIB_TEMP_FOLDER", str(tmp_path))
    gallery = np.ones((2_000, 128))  # 2 MB of float64, as match.KnownPeople holds its centroids
    arrivals = list(run_ordered(_how_the_gallery_arrived, [[1], [2]], 2, gallery, backend="processes"))
    assert arrivals == [("ndarray", False, 256_000.0)] * 2
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def _spill_settings(chunk):
    import os

    import dask

    return (os.getpid(), dask.config.get("distributed.worker.memory.target"),
            dask.config.get("distributed.worker.memory.spill"))


def test_a_local_dask_cluster_never_spills_to_disk():
    """Dask workers short of memory pickle what they hold (the gallery included) to disk."""
    import os

    from facebatch.runner import run_ordered

    settings = list(run_ordered(_spill_settings, [[1], [2]], 2, backend="dask"))
    assert all(pid != os.getpid() for pid, _, _ in settings)  # asked in the workers themselves
    assert [(target, spill) for _, target, spill in settings] == [(False, False)] * 2
