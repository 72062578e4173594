"""run_tasks: serial, process pool and Dask runs give the same results; failures are returned."""
import os
import threading
import time

import pytest

from analysis.execution import TaskError, resolve_jobs, run_tasks


def square(x):
    return x * x


def add(a, b):
    return a + b


def fail_on_three(x):
    if x == 3:
        raise ValueError(f"bad checkpoint {x}")
    return x


class NeedsTwoArgs(Exception):
    """An exception that cannot be rebuilt from its args (unpicklable as itself)."""

    def __init__(self, path, reason):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


def raise_unpicklable(x):
    raise NeedsTwoArgs(f"file{x}.pt", "truncated")


def worker_threads(_):
    import torch
    return (os.environ.get("OMP_NUM_THREADS"), os.environ.get("OMP_WAIT_POLICY"),
            torch.get_num_threads(), os.getpid())


def sleep_then(x):
    time.sleep(1.5 if x == 0 else 0.0)  # a margin for worker start-up on a loaded machine
    return x


def die_on_two(x):
    if x == 2:
        os._exit(3)  # the worker process dies abruptly
    return x


def test_serial_yields_in_order_and_unpacks_tuples():
    assert list(run_tasks(square, [1, 2, 3])) == [(0, 1), (1, 4), (2, 9)]
    assert list(run_tasks(add, [(1, 2), (3, 4)])) == [(0, 3), (1, 7)]


def test_serial_is_lazy_over_an_iterator():
    consumed = []

    def items():
        for i in range(5):
            consumed.append(i)
            yield i

    stream = run_tasks(square, items())
    assert next(stream) == (0, 0)
    assert consumed == [0]  # nothing beyond the first task was pulled yet
    stream.close()


def test_failures_are_returned_not_raised():
    results = dict(run_tasks(fail_on_three, range(5)))
    assert [results[i] for i in (0, 1, 2, 4)] == [0, 1, 2, 4]
    assert isinstance(results[3], ValueError)
    assert "bad checkpoint 3" in str(results[3])
    assert "fail_on_three" in results[3].remote_traceback


def test_resolve_jobs():
    assert resolve_jobs(3) == 3
    assert resolve_jobs(-1) == (os.cpu_count() or 1)
    with pytest.raises(ValueError, match="jobs=0"):
        resolve_jobs(0)


def test_process_pool_matches_serial_and_returns_failures():
    results = dict(run_tasks(fail_on_three, range(8), jobs=2))
    assert sorted(results) == list(range(8))
    assert isinstance(results[3], ValueError) and "fail_on_three" in results[3].remote_traceback
    assert all(results[i] == i for i in range(8) if i != 3)


def test_process_pool_workers_are_single_threaded():
    seen = [r for _, r in run_tasks(worker_threads, range(4), jobs=2)]
    assert {r[:3] for r in seen} == {("1", "PASSIVE", 1)}
    assert all(r[3] != os.getpid() for r in seen)  # really other processes


def test_spawned_workers_when_asked(monkeypatch):
    """GHOSTSCOPE_START_METHOD=spawn: fresh interpreters, the same environment and results."""
    import analysis.execution as execution

    monkeypatch.setenv("GHOSTSCOPE_START_METHOD", "spawn")
    assert isinstance(execution._worker_context(square), execution._SingleThreadSpawnContext)
    assert execution.prepare_workers(["analysis.api"]) is False
    seen = [r for _, r in run_tasks(worker_threads, range(2), jobs=2)]
    assert {r[:3] for r in seen} == {("1", "PASSIVE", 1)}


def test_fork_server_prepared_ahead_runs_tasks():
    import multiprocessing

    from analysis.execution import prepare_workers

    expected = "forkserver" in multiprocessing.get_all_start_methods()
    assert prepare_workers(["analysis.api"]) is expected
    assert dict(run_tasks(square, range(5), jobs=2)) == {i: i * i for i in range(5)}


def test_the_command_line_starts_without_torch():
    """``import analysis.cli`` must not import torch: the command starts its workers' imports
    before its own, and answers --help at once."""
    import subprocess
    import sys

    code = "import sys, analysis.cli; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_process_pool_yields_as_completed():
    order = [i for i, _ in run_tasks(sleep_then, range(4), jobs=2)]
    assert sorted(order) == [0, 1, 2, 3]
    assert order[0] != 0  # task 0 sleeps; a faster one comes back first


def test_unpicklable_exception_becomes_task_error():
    (_, result), = list(run_tasks(raise_unpicklable, [7], jobs=2))
    assert isinstance(result, TaskError)
    assert result.type_name == "NeedsTwoArgs" and "file7.pt: truncated" in str(result)


def test_dead_worker_fails_only_its_task():
    results = dict(run_tasks(die_on_two, range(6), jobs=2))
    assert sorted(results) == list(range(6))
    assert isinstance(results[2], TaskError) and "died" in str(results[2])
    assert all(results[i] == i for i in range(6) if i != 2)


def always_die(x):
    os._exit(3)


def test_workers_that_always_die_fail_fast_with_a_hint():
    started = time.perf_counter()
    results = dict(run_tasks(always_die, range(12), jobs=2))
    assert sorted(results) == list(range(12))
    assert all(isinstance(r, TaskError) and r.type_name == "WorkerStartFailed"
               for r in results.values())
    assert "__main__" in str(results[0])
    assert time.perf_counter() - started < 60  # not 12 tasks x 2 attempts x a pool start


def test_progress_logs_when_not_a_tty(caplog):
    with caplog.at_level("INFO", logger="analysis.execution"):
        list(run_tasks(square, range(3), progress=True, desc="epochs"))
    lines = [r.getMessage() for r in caplog.records if r.name == "analysis.execution"]
    assert len(lines) == 3 and lines[-1].startswith("epochs: 3/3 done (0 failed")


def test_dask_local_cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster:
        results = dict(run_tasks(fail_on_three, range(6), scheduler=cluster.scheduler_address,
                                 max_in_flight=3))
        assert sorted(results) == list(range(6))
        assert isinstance(results[3], ValueError)
        assert all(results[i] == i for i in range(6) if i != 3)
        # our own Client was closed; the cluster is still usable
        with distributed.Client(cluster) as client:
            assert client.submit(square, 5).result() == 25


def overlap_probe(_):
    """Records how many probes run at once in this process."""
    with _PROBE_LOCK:
        _PROBE["now"] += 1
        _PROBE["max"] = max(_PROBE["max"], _PROBE["now"])
    time.sleep(0.05)
    with _PROBE_LOCK:
        _PROBE["now"] -= 1
    return _PROBE["max"]


_PROBE = {"now": 0, "max": 0}
_PROBE_LOCK = threading.Lock()


def test_dask_tasks_in_one_worker_process_do_not_overlap():
    """torch.func is not thread-safe: a multi-threaded worker must run tasks one at a time."""
    distributed = pytest.importorskip("distributed")
    _PROBE.update(now=0, max=0)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=4, processes=False,
                                  dashboard_address=None) as cluster:
        results = dict(run_tasks(overlap_probe, range(8), scheduler=cluster.scheduler_address))
    assert sorted(results) == list(range(8))
    assert _PROBE["max"] == 1


def test_dask_unreachable_scheduler_names_the_address(monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setattr("analysis.execution.CONNECT_TIMEOUT", "1s")
    with pytest.raises((ConnectionError, OSError), match="127.0.0.1:1"):
        list(run_tasks(square, [1], scheduler="tcp://127.0.0.1:1"))
