"""Run one function over many argument tuples: serially, in worker processes, or on Dask.

:func:`run_tasks` is the single place where ghostscope decides *where* per-checkpoint work runs.
It yields ``(index, result_or_exception)`` pairs as tasks complete, keeps only a bounded number of
tasks in flight (so a long series is streamed, never held in memory at once) and returns failures
instead of raising them, so one bad checkpoint does not stop a series.

Worker processes are forked from a fork server that imported torch once (where the platform
has one; fresh ``spawn``-ed interpreters elsewhere, or with ``GHOSTSCOPE_START_METHOD=spawn``),
with ``OMP_NUM_THREADS=1``, ``MKL_NUM_THREADS=1``, ``OMP_WAIT_POLICY=PASSIVE`` and one torch
thread each: N workers on N cores then use the cores without oversubscribing them.

Worker processes never outlive the process that started them: each holds the reading end of a
*lifeline* pipe whose only writing end stays in the main process, and a watcher thread in the
worker exits the worker as soon as the pipe reports end of file (the main process ended, however:
``kill -9`` included). Workers ignore SIGINT (a Ctrl-C reaches the whole process group; the main
process decides), and a pool left early (an exception, an interrupt, a consumer that stops
iterating) terminates its workers instead of waiting for their tasks. The fork server and the
resource tracker end on their own once no worker holds their pipes. :func:`interrupt_on_signals`
turns SIGTERM and SIGHUP into the same :class:`KeyboardInterrupt` as Ctrl-C, so that a terminated
command cleans up like an interrupted one.
"""
from __future__ import annotations

import collections
import concurrent.futures as cf
import contextlib
import logging
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
import traceback
from typing import (Any, Callable, Deque, Dict, Iterable, Iterator, List, Optional, Sequence,
                    Tuple)

__all__ = ["run_tasks", "TaskError", "resolve_jobs", "prepare_workers", "WORKER_ENVIRONMENT",
           "Interrupted", "interrupt_on_signals", "max_jobs"]

logger = logging.getLogger(__name__)

#: Environment given to worker processes (before they import torch).
WORKER_ENVIRONMENT = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_WAIT_POLICY": "PASSIVE",
}

#: How long to wait for a Dask scheduler to answer before giving up.
CONNECT_TIMEOUT = "10s"

#: How many times a task is retried when the worker running it died (killed, out of memory).
_MAX_ATTEMPTS = 2


class TaskError(RuntimeError):
    """A task's exception that could not be sent back from a worker as itself.

    Attributes
    ----------
    type_name : str
        The original exception's class name.
    remote_traceback : str
        The traceback text from the worker.
    """

    def __init__(self, type_name: str, message: str, remote_traceback: str = ""):
        super().__init__(type_name, message, remote_traceback)
        self.type_name = type_name
        self.message = message
        self.remote_traceback = remote_traceback

    def __str__(self) -> str:
        return f"{self.type_name}: {self.message}" if self.message else self.type_name


def max_jobs() -> int:
    """Most worker processes :func:`resolve_jobs` accepts: 4 per core, at least 8 (each worker
    holds a model and its Jacobians; more than the cores only adds memory)."""
    return max(8, 4 * (os.cpu_count() or 1))


def resolve_jobs(jobs: Optional[int]) -> int:
    """Number of worker processes for ``jobs``: ``None`` or a negative value means all cores.

    Raises
    ------
    ValueError
        For ``jobs == 0`` or more than :func:`max_jobs`.
    """
    if jobs is None or jobs < 0:
        return max(1, os.cpu_count() or 1)
    if jobs == 0:
        raise ValueError("jobs=0 runs nothing; use jobs=1 for one process, jobs=N for N worker "
                         "processes, or jobs=-1 for all cores")
    if jobs > max_jobs():
        raise ValueError(f"jobs={jobs} is more worker processes than this machine's "
                         f"{os.cpu_count()} cores can use (at most {max_jobs()}); pass jobs=-1 "
                         f"for one per core")
    return int(jobs)


def _as_args(item: Any) -> tuple:
    return item if isinstance(item, tuple) else (item,)


def _call(func: Callable, args: tuple) -> Any:
    """Call ``func(*args)``; return (never raise) an exception, with the traceback text attached."""
    try:
        return func(*args)
    except Exception as error:  # noqa: BLE001 - failures are results here
        text = traceback.format_exc()
        try:
            error.remote_traceback = text  # type: ignore[attr-defined]  # any exception may carry it
        except Exception:  # noqa: BLE001 - exceptions with __slots__
            pass
        try:  # make sure it survives the trip back from a worker
            pickle.loads(pickle.dumps(error))
            return error
        except Exception:  # noqa: BLE001 - any pickling failure: send a plain TaskError instead
            return TaskError(type(error).__name__, str(error), text)


#: Serializes tasks that share one process on Dask: torch.func's forward-mode AD keeps
#: process-wide state, so two analyses in two threads of one worker corrupt each other.
_PROCESS_LOCK = threading.Lock()


def _call_serialized(func: Callable, args: tuple) -> Any:
    """:func:`_call` holding the process-wide lock (Dask workers may run several threads)."""
    with _PROCESS_LOCK:
        return _call(func, args)


class Interrupted(KeyboardInterrupt):
    """A :class:`KeyboardInterrupt` raised by :func:`interrupt_on_signals` for ``signum``."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = int(signum)

    @property
    def exit_status(self) -> int:
        """The shell's status for a process ended by this signal (128 + its number)."""
        return 128 + self.signum


def _raise_interrupted(signum: int, frame: Any) -> None:
    raise Interrupted(signum)


@contextlib.contextmanager
def interrupt_on_signals(signums: Optional[Sequence[int]] = None) -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP (or ``signums``) raise :class:`Interrupted`.

    Python's default for SIGTERM ends the process at once, so ``finally`` blocks do not run and
    worker processes are left to notice on their own; as an exception, the signal unwinds the
    stack like Ctrl-C does: pools terminate their workers, temporary files are removed. Does
    nothing outside the main thread (signal handlers can only be set there).
    """
    if signums is None:
        signums = [getattr(signal, name) for name in ("SIGTERM", "SIGHUP")
                   if hasattr(signal, name)]
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {}
    for signum in signums:
        try:
            saved[signum] = signal.signal(signum, _raise_interrupted)
        except (OSError, ValueError):  # pragma: no cover - a signal this platform refuses
            continue
    try:
        yield
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)


def _watch_lifeline(lifeline: Any) -> None:
    """Exit this worker process as soon as ``lifeline`` (a pipe's reading end) is closed."""
    try:
        while True:
            try:
                lifeline.recv_bytes()  # nothing is ever sent: this returns only at EOF
            except (EOFError, OSError):
                break
    finally:
        os._exit(3)


def _init_worker(lifeline: Any = None) -> None:
    """Process-pool initializer: one thread per worker, no SIGINT, and a watch on the parent.

    Parameters
    ----------
    lifeline : multiprocessing.connection.Connection, optional
        The reading end of a pipe whose writing end only the main process holds; the worker
        exits when it closes (the main process ended or left the pool early).
    """
    for name, value in WORKER_ENVIRONMENT.items():
        os.environ[name] = value
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except (OSError, ValueError):  # pragma: no cover - not the worker's main thread
        pass
    if lifeline is not None:
        threading.Thread(target=_watch_lifeline, args=(lifeline,), daemon=True,
                         name="ghostscope-lifeline").start()
    try:
        import torch
        torch.set_num_threads(1)
    except Exception:  # noqa: BLE001 - torch missing or already configured: nothing to do
        pass


@contextlib.contextmanager
def _environment(values: Dict[str, str]):
    """Temporarily set environment variables (spawned children inherit them at start)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class _StartsWithWorkerEnvironment:
    """Process mix-in: :meth:`start` runs with :data:`WORKER_ENVIRONMENT` set, so that a spawned
    interpreter (or the fork server, on its first start) inherits it before importing torch."""

    def start(self) -> None:
        with _environment(WORKER_ENVIRONMENT):
            super().start()  # type: ignore[misc]  # a mix-in: the Process it joins has start()


class _SingleThreadSpawnProcess(_StartsWithWorkerEnvironment,
                                multiprocessing.context.SpawnProcess):
    """A spawned process that starts with :data:`WORKER_ENVIRONMENT`."""


class _SingleThreadSpawnContext(multiprocessing.context.SpawnContext):
    """The spawn context, with :class:`_SingleThreadSpawnProcess` as its process class."""

    Process = _SingleThreadSpawnProcess


class _SingleThreadForkServerProcess(_StartsWithWorkerEnvironment,
                                     multiprocessing.context.ForkServerProcess):
    """A process forked from the fork server (started with :data:`WORKER_ENVIRONMENT`)."""


class _SingleThreadForkServerContext(multiprocessing.context.ForkServerContext):
    """The forkserver context, with :class:`_SingleThreadForkServerProcess`."""

    Process = _SingleThreadForkServerProcess


def _use_fork_server() -> bool:
    return (os.environ.get("GHOSTSCOPE_START_METHOD", "") != "spawn"
            and "forkserver" in multiprocessing.get_all_start_methods())


def _worker_context(func: Callable):
    """Where worker processes come from.

    Spawning a fresh interpreter costs every worker the import of torch (over a second of CPU).
    Where the platform has it, workers are instead forked from a fork server that imported
    torch and ``func``'s module once, in a clean single-threaded process. (Forking the caller
    itself would be cheaper still, but a child forked from a process whose OpenMP pool has run
    hangs in its first parallel region; a fork server has never run one.) The fork server
    lives as long as this process, so later pools start at once too.
    ``GHOSTSCOPE_START_METHOD=spawn`` forces fresh interpreters.
    """
    if not _use_fork_server():
        return _SingleThreadSpawnContext()
    module = getattr(func, "__module__", None)
    prepare_workers([module] if module and module != "__main__" else [])
    return _SingleThreadForkServerContext()


def prepare_workers(modules: Sequence[str] = ()) -> bool:
    """Start the fork server that worker processes are forked from, importing ``modules``.

    It returns at once: the server imports torch and ``modules`` in the background, while the
    caller goes on (the ``ghostscope`` command calls this before importing torch itself, so
    the two imports overlap). Modules named after the server has started are imported by each
    worker instead.

    Parameters
    ----------
    modules : sequence of str
        Modules the workers will need, e.g. ``["analysis.api"]``.

    Returns
    -------
    bool
        False where workers are spawned instead (no fork server on this platform, or
        ``GHOSTSCOPE_START_METHOD=spawn``).
    """
    if not _use_fork_server():
        return False
    from multiprocessing import forkserver

    forkserver.set_forkserver_preload(["torch", *modules])
    with _environment(WORKER_ENVIRONMENT):
        forkserver.ensure_running()
    return True


class _Progress:
    """A tqdm bar on a terminal, log lines otherwise, nothing when disabled."""

    def __init__(self, enabled: bool, total: Optional[int], desc: str):
        self.enabled = bool(enabled)
        self.total = total
        self.desc = desc or "tasks"
        self.done = 0
        self.failed = 0
        self.bar = None
        self.started = time.perf_counter()
        if self.enabled and sys.stderr is not None and sys.stderr.isatty():
            from tqdm.auto import tqdm
            self.bar = tqdm(total=total, desc=self.desc, unit="task", dynamic_ncols=True,
                            file=sys.stderr, leave=True)

    def update(self, failed: bool, count: int = 1) -> None:
        self.done += count
        self.failed += count * int(failed)
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(count)
            if self.failed:
                self.bar.set_postfix(failed=self.failed)
        else:
            of = f"/{self.total}" if self.total is not None else ""
            logger.info("%s: %d%s done (%d failed, %.1f s)", self.desc, self.done, of,
                        self.failed, time.perf_counter() - self.started)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_tasks(func: Callable, args_list: Iterable[Any], *, jobs: Optional[int] = 1,
              scheduler: Any = None, progress: bool = False, desc: str = "",
              max_in_flight: Optional[int] = None,
              weights: Optional[Sequence[int]] = None) -> Iterator[Tuple[int, Any]]:
    """Call ``func`` on every element of ``args_list``; yield ``(index, result)`` as each completes.

    Parameters
    ----------
    func : callable
        A module-level function (it is pickled to reach worker processes or Dask workers).
    args_list : iterable
        One element per task: a tuple of positional arguments, or a single non-tuple argument
        (wrap a tuple that is itself the one argument as ``(t,)``). May be a lazy iterator; it is
        consumed only as fast as tasks are submitted.
    jobs : int, optional
        1 (default): run in this process, in order. N > 1: N spawned worker processes with one
        thread each. ``None`` or -1: one worker per core.
    scheduler : str or distributed.Client, optional
        Address of a running Dask distributed scheduler (``"tcp://host:8786"``) or a
        ``Client``; tasks are submitted there and ``jobs`` is ignored. Needs ``dask[distributed]``.
        Tasks that land in one worker process run one at a time (torch.func keeps process-wide
        state); for parallelism start workers with one thread each and several processes
        (``dask worker ADDRESS --nworkers N --nthreads 1``).
    progress : bool
        Show a tqdm progress bar when stderr is a terminal; log one INFO line per task otherwise.
    desc : str
        Label for the progress bar and log lines.
    max_in_flight : int, optional
        Most tasks submitted but not yet yielded (default ``2 * workers``); bounds memory.
    weights : sequence of int, optional
        How many units of work each task holds (e.g. checkpoints per chunk): the progress bar
        counts those units instead of tasks.

    Yields
    ------
    index : int
        Position of the task in ``args_list``.
    result : object
        ``func``'s return value, or the exception it raised (with the worker's traceback text in
        ``.remote_traceback`` when available). Exceptions are returned, not raised; a
        ``KeyboardInterrupt`` in this process cancels pending tasks and propagates.

    Notes
    -----
    Results arrive in completion order, which for ``jobs > 1`` or a scheduler need not be the
    input order; use ``index`` to place them.
    """
    try:
        total: Optional[int] = len(args_list)  # type: ignore[arg-type]
    except TypeError:
        total = None
    if weights is not None:
        weights = [int(w) for w in weights]
        total = sum(weights)
    bar = _Progress(progress, total, desc)
    try:
        if scheduler is not None:
            source = _run_dask(func, args_list, scheduler, max_in_flight)
        else:
            workers = resolve_jobs(jobs)
            if workers == 1:
                source = _run_serial(func, args_list)
            else:
                source = _run_pool(func, args_list, workers, max_in_flight)
        for index, result in source:
            bar.update(isinstance(result, BaseException),
                       1 if weights is None else weights[index])
            yield index, result
    finally:
        bar.close()


def _run_serial(func: Callable, args_list: Iterable[Any]) -> Iterator[Tuple[int, Any]]:
    for index, item in enumerate(args_list):
        yield index, _call(func, _as_args(item))


def _broken_message(error: BaseException) -> TaskError:
    return TaskError("WorkerDied", "the worker process running this task died (killed or out of "
                     "memory); run with fewer --jobs or on a machine with more memory",
                     str(error))


def _start_failure() -> TaskError:
    return TaskError("WorkerStartFailed", "worker processes die before finishing any task. If "
                     "this runs from a script, put the call under `if __name__ == \"__main__\":` "
                     "(spawned workers import the main script again); otherwise run with jobs=1 "
                     "to see the error")


def _run_pool(func: Callable, args_list: Iterable[Any], workers: int,
              max_in_flight: Optional[int]) -> Iterator[Tuple[int, Any]]:
    limit = max(workers, max_in_flight or 2 * workers)
    items = enumerate(args_list)
    # tasks that were in flight when a worker died: rerun one at a time, so that only the task
    # that kills its worker is blamed (on its second death)
    suspects: Deque[Tuple[int, Any]] = collections.deque()
    attempts: Dict[int, int] = collections.defaultdict(int)
    exhausted = False
    context = _worker_context(func)

    lifelines: List[Any] = []

    def new_pool() -> cf.ProcessPoolExecutor:
        reader, writer = context.Pipe(duplex=False)
        lifelines[:] = [reader, writer]
        return cf.ProcessPoolExecutor(max_workers=workers, mp_context=context,
                                      initializer=_init_worker, initargs=(reader,))

    def end_pool(pool: cf.ProcessPoolExecutor, terminate: bool) -> None:
        """Shut a pool down; with ``terminate``, end its workers now instead of after their
        tasks (an interrupt, an error, a pool replaced after a worker died)."""
        if terminate:
            for connection in lifelines:  # the workers' watchers see EOF and exit
                connection.close()
            for process in list((getattr(pool, "_processes", None) or {}).values()):
                with contextlib.suppress(Exception):
                    process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
        for connection in lifelines:
            connection.close()

    pool = new_pool()
    finished = False
    pending: Dict[cf.Future, Tuple[int, Any]] = {}
    completed = 0     # tasks that came back (with a result or an exception)
    solo_deaths = 0   # tasks that killed their worker while running alone, in a row
    held: List[Tuple[int, BaseException]] = []  # such tasks, before anything ever completed
    try:
        while True:
            if suspects:
                if not pending:
                    index, item = suspects.popleft()
                    attempts[index] += 1
                    pending[pool.submit(_call, func, _as_args(item))] = (index, item)
            else:
                while len(pending) < limit and not exhausted:
                    try:
                        index, item = next(items)
                    except StopIteration:
                        exhausted = True
                        break
                    attempts[index] += 1
                    pending[pool.submit(_call, func, _as_args(item))] = (index, item)
            if not pending:
                finished = True
                for i, cause in held:
                    yield i, _broken_message(cause)
                return
            done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
            broken = False
            blamed: List[Tuple[int, BaseException]] = []
            for future in done:
                index, item = pending.pop(future)
                try:
                    result = future.result()
                except cf.process.BrokenProcessPool as error:
                    broken = True
                    if attempts[index] < _MAX_ATTEMPTS:
                        suspects.append((index, item))
                    else:
                        blamed.append((index, error))
                    continue
                except Exception as error:  # noqa: BLE001 - e.g. unpicklable arguments
                    result = error
                attempts.pop(index, None)
                completed += 1
                solo_deaths = 0
                yield index, result
                while held:  # workers do run: the tasks held back really killed theirs
                    i, cause = held.pop()
                    yield i, _broken_message(cause)
            if broken:
                solo_deaths += len(blamed)
                if completed == 0:  # hold them until we know whether any worker can work
                    held.extend(blamed)
                    blamed = []
                if solo_deaths >= 2 and completed == 0:
                    # two different tasks, each alone, killed their worker and nothing ever
                    # finished: the workers cannot start; stop retrying
                    failure = _start_failure()
                    logger.error("%s", failure)
                    for future in pending:
                        future.cancel()
                    stranded = ([i for i, _ in held] + [i for i, _ in pending.values()]
                                + [i for i, _ in suspects])
                    held.clear()
                    pending.clear()
                    suspects.clear()
                    for index in sorted(stranded):
                        yield index, failure
                    finished = True
                    for index, _ in items:
                        yield index, failure
                    return
                for index, cause in blamed:
                    attempts.pop(index, None)
                    yield index, _broken_message(cause)
                logger.warning("a worker process died; restarting the pool and rerunning the "
                               "tasks it held one at a time")
                for future, (index, item) in list(pending.items()):
                    future.cancel()
                    suspects.append((index, item))
                    attempts[index] = max(0, attempts[index] - 1)  # not its fault (yet)
                pending.clear()
                end_pool(pool, terminate=True)
                pool = new_pool()
    finally:
        for future in pending:
            future.cancel()
        end_pool(pool, terminate=not finished)


def _connect(scheduler: Any):
    try:
        from distributed import Client
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("scheduler= needs Dask distributed; install it with "
                          "`pip install 'ghostscope[distributed]'`") from error
    if isinstance(scheduler, Client):
        return scheduler, False
    if hasattr(scheduler, "scheduler_address"):  # a LocalCluster / other cluster object
        return Client(scheduler), True
    if not isinstance(scheduler, str):
        raise TypeError(f"scheduler={scheduler!r} is not an address; pass the scheduler's "
                        f"address such as 'tcp://127.0.0.1:8786' or a distributed.Client")
    try:
        return Client(scheduler, timeout=CONNECT_TIMEOUT), True
    except OSError as error:
        raise ConnectionError(f"could not reach the Dask scheduler at {scheduler!r} ({error}); "
                              f"start one with `dask scheduler` and pass the address it prints"
                              ) from error


def _run_dask(func: Callable, args_list: Iterable[Any], scheduler: Any,
              max_in_flight: Optional[int]) -> Iterator[Tuple[int, Any]]:
    from distributed import as_completed

    client, owned = _connect(scheduler)
    try:
        if max_in_flight is None:
            threads = sum(client.nthreads().values()) or 1
            max_in_flight = 2 * threads
        limit = max(1, max_in_flight)
        items = enumerate(args_list)
        futures: Dict[Any, int] = {}
        queue = as_completed()
        submitted = 0

        def submit_next() -> bool:
            nonlocal submitted
            try:
                index, item = next(items)
            except StopIteration:
                return False
            future = client.submit(_call_serialized, func, _as_args(item), pure=False,
                                   key=f"ghostscope-task-{index}-{os.getpid()}-{id(queue)}")
            futures[future] = index
            queue.add(future)
            submitted += 1
            return True

        while len(futures) < limit and submit_next():
            pass
        for future in queue:
            index = futures.pop(future)
            try:
                result = future.result()
            except Exception as error:  # noqa: BLE001 - worker lost, cancelled, ...
                result = error
            future.release()
            yield index, result
            while len(futures) < limit and submit_next():
                pass
    finally:
        for future in list(locals().get("futures", {})):
            future.cancel()
        if owned:
            client.close()
