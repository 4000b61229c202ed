"""The same annotate run on a Dask cluster (joblib's Dask backend) gives the same report, row for row."""
from __future__ import annotations

import csv
import shutil

import pytest
from click.testing import CliRunner

from facebatch.cli import cli

distributed = pytest.importorskip("distributed")


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_local_cluster_report_matches_the_local_run(tmp_path, celebrity, insightface_dir, models_root):
    images = tmp_path / "images"
    shutil.copytree(celebrity / "val", images)
    shutil.copy(insightface_dir / "t1.jpg", images / "group.jpg")
    db = tmp_path / "db.json"
    assert run("enroll", celebrity / "train", "--db", db, "--model-dir", models_root, "-j", "1", "-q").exit_code == 0
    local = run("annotate", images, "--db", db, "--out", tmp_path / "local", "--model-dir", models_root, "-j", "1", "-q")
    assert local.exit_code == 0, local.output

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        remote = run("annotate", images, "--db", db, "--out", tmp_path / "dask", "--model-dir", models_root, "-q",
                     "--scheduler", cluster.scheduler_address)
    assert remote.exit_code == 0, remote.output

    def rows(folder):
        with open(tmp_path / folder / "report.csv", newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))

    local_rows, dask_rows = rows("local"), rows("dask")
    assert len(local_rows) == len(dask_rows) == 32
    for a, b in zip(local_rows, dask_rows):
        assert {k: a[k] for k in a if k != "distance"} == {k: b[k] for k in b if k != "distance"}
        assert abs(float(a["distance"]) - float(b["distance"])) < 1e-3
    assert (tmp_path / "dask" / "group.jpg").is_file()


def test_unreachable_scheduler_is_a_clear_error(tmp_path, models_root, celebrity):
    db = tmp_path / "db.json"
    run("enroll", celebrity / "train" / "madonna", "--db", db, "--model-dir", models_root, "-j", "1", "-q")
    (tmp_path / "images").mkdir()
    shutil.copy(sorted((celebrity / "val" / "madonna").glob("*.jpg"))[0], tmp_path / "images" / "a.jpg")
    result = run("annotate", tmp_path / "images", "--db", db, "--out", tmp_path / "out", "--model-dir", models_root,
                 "--scheduler", "tcp://127.0.0.1:9")
    assert result.exit_code == 1
    assert result.output.startswith("Error: cannot reach the Dask scheduler at tcp://127.0.0.1:9 (")
    assert result.output.strip().endswith("check the address and that the scheduler is running")
