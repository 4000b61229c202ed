"""How TensorFlow's thread pools are sized for each way of running workers."""
from facebatch import config


def test_threads_share_one_model_that_may_use_every_core(monkeypatch):
    monkeypatch.setattr(config, "default_jobs", lambda: 8)
    assert config.tensorflow_threads("threads", 4) == 0  # 0: TensorFlow's own default, all cores
    assert config.tensorflow_threads("processes", 1) == 0


def test_local_processes_split_the_cores(monkeypatch):
    monkeypatch.setattr(config, "default_jobs", lambda: 8)
    assert config.tensorflow_threads("processes", 4) == 2
    assert config.tensorflow_threads("dask", 2) == 4  # a LocalCluster on this machine
    assert config.tensorflow_threads("processes", 16) == 1  # never 0 threads


def test_remote_dask_workers_size_their_own_pools(monkeypatch):
    monkeypatch.setattr(config, "default_jobs", lambda: 8)
    assert config.tensorflow_threads("dask", 2, scheduler="tcp://10.0.0.1:8786") == 0
