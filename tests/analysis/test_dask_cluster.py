"""A real Dask cluster: `dask scheduler` and two `dask worker` processes on 127.0.0.1, started
as a user would, one worker killed (SIGKILL, its whole process group) while it holds a
checkpoint. Its checkpoints are retried on the other worker; nothing is lost or duplicated and
the outputs equal a ``--jobs 1`` run's. Every process is bounded in time and cleaned up."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parents[2]
DASK = Path(sys.executable).parent / "dask"
FAST = ["--n-initial", "48", "-q", "--no-report"]
EPOCHS = list(range(0, 31, 3))  # 11 checkpoints


def _env():
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               OMP_WAIT_POLICY="PASSIVE")
    return env


def _start(args, log):
    """A process in its own session (so it and its children die together), output to log."""
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=_env(), cwd=ROOT,
                            start_new_session=True)


def _kill(proc):
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=30)


def _wait(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture(scope="module")
def many_checkpoints(tmp_path_factory):
    from checkpoints.train import train

    path = tmp_path_factory.mktemp("run") / "ckpts"
    train("flipflop", "leaky_rnn", path, epochs=30, lr=0.02, save_every=3, n_states=6, seed=1)
    return path


@pytest.mark.slow  # four Python processes that import torch: ~2 min on the shared 2 cores
@pytest.mark.skipif(not DASK.exists(), reason="the `dask` command is not installed")
def test_killed_worker_checkpoints_are_retried_on_the_other(many_checkpoints, tmp_path):
    from analysis.cli import main

    logs = tmp_path / "logs"
    logs.mkdir()
    procs = []
    try:
        with open(logs / "scheduler.log", "w") as log:
            procs.append(_start([str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0",
                                 "--no-dashboard", "--scheduler-file",
                                 str(tmp_path / "scheduler.json")], log))
        info = _wait(lambda: (tmp_path / "scheduler.json").exists()
                     and json.loads((tmp_path / "scheduler.json").read_text() or "{}"),
                     60, "the scheduler to write its address")
        address = info["address"]
        assert address.startswith("tcp://127.0.0.1:")
        workers = {}
        for name in ("a", "b"):
            with open(logs / f"worker-{name}.log", "w") as log:
                workers[name] = _start([str(DASK), "worker", address, "--name", name,
                                        "--nthreads", "1", "--nworkers", "1",
                                        "--host", "127.0.0.1", "--no-dashboard",
                                        "--memory-limit", "0"], log)
            procs.append(workers[name])
        client = distributed.Client(address, timeout="60s")
        try:
            client.wait_for_workers(2, timeout=60)
            names = {addr: w["name"] for addr, w in client.scheduler_info()["workers"].items()}
            out = tmp_path / "cluster"
            with open(logs / "analyze.log", "w") as log:
                analyze = _start([sys.executable, "-m", "analysis", "analyze",
                                  str(many_checkpoints), "--out", str(out), "--scheduler",
                                  address, *FAST], log)
            procs.append(analyze)

            def a_is_busy():
                processing = client.processing()
                return any(names.get(addr) == "a" and keys for addr, keys in processing.items())
            _wait(a_is_busy, 120, "worker a to hold a checkpoint")
            _kill(workers["a"])
            assert analyze.wait(timeout=300) == 0, (logs / "analyze.log").read_text()[-3000:]
            # the scheduler saw worker a die and kept only b
            survivors = {w["name"] for w in client.scheduler_info()["workers"].values()}
            assert survivors == {"b"}
        finally:
            client.close()
    finally:
        for proc in reversed(procs):
            _kill(proc)
    assert all(proc.poll() is not None for proc in procs)

    # the same analysis in one process
    assert main(["analyze", str(many_checkpoints), "--out", str(tmp_path / "serial"),
                 "--jobs", "1", *FAST]) == 0
    cluster, serial = (json.loads((tmp_path / d / "summary.json").read_text())
                       for d in ("cluster", "serial"))
    assert cluster["epochs"] == serial["epochs"] == EPOCHS  # nothing lost, nothing twice
    assert [p["epoch"] for p in cluster["per_epoch"]] == EPOCHS
    assert [p["counts"] for p in cluster["per_epoch"]] == [p["counts"] for p in serial["per_epoch"]]
    files = sorted(p.name for p in (tmp_path / "cluster" / "epochs").glob("epoch_*.npz"))
    assert files == [f"epoch_{e:04d}.npz" for e in EPOCHS]
    for e in EPOCHS:
        a = np.load(tmp_path / "cluster" / "epochs" / f"epoch_{e:04d}.npz")
        b = np.load(tmp_path / "serial" / "epochs" / f"epoch_{e:04d}.npz")
        assert sorted(a.files) == sorted(b.files)
        np.testing.assert_allclose(a["fp.x"], b["fp.x"], atol=1e-9)
