"""Analysis during training: snapshot the model every k epochs, analyze it in the background.

One call in a plain PyTorch loop::

    from analysis import watch
    with watch(model, every=5, out="runs/watch") as w:
        for epoch in range(epochs):
            loss = train_one_epoch(model)
            w.step(epoch, loss=loss)

or, with PyTorch Lightning, ``Trainer(callbacks=[WatchCallback(every=5, out="runs/watch")])``.
As with any multiprocessing (and DataLoader workers), a script starts training under
``if __name__ == "__main__":``: the background process imports the script's main module.

:meth:`Watcher.step` copies the recurrent part's state dict to NumPy (the only work in the
training process) and queues it; ONE background process (started like the project's workers,
:mod:`analysis.execution`: single-threaded, at a lower priority (nice +10), it exits when this
process does) saves it as
``OUT/checkpoints/epoch_XXXX.pt`` with ``OUT/checkpoints/train_log.csv``, analyzes it with
:func:`analysis.analyze_series` into ``OUT`` (``epochs/epoch_XXXX.{json,npz}``,
``summary.json``, ``events.csv`` ... the layout of ``ghostscope analyze``; epochs already there
are reused) and refreshes ``OUT/report.html``. ``ghostscope analyze OUT/checkpoints --out OUT``
therefore resumes from it: it reuses every epoch the watcher analyzed.
"""
from __future__ import annotations

import copy
import logging
import math
import os
import queue as queue_module
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

#: ``WatchCallback`` is also public: made on first access (module ``__getattr__``), so that
#: importing this module does not import Lightning
__all__ = ["watch", "Watcher", "recurrent_part"]

logger = logging.getLogger(__name__)


def recurrent_part(model: Any, rnn: Any = None) -> Any:
    """The module to analyze inside ``model``.

    Parameters
    ----------
    model : torch.nn.Module
    rnn : str or nn.Module, optional
        A submodule name (``"encoder.rnn"``) or the module itself. By default ``model`` when it
        is an ``nn.RNN``/``GRU``/``LSTM`` (or cell) or has ``step``/``velocity``, else its only
        ``nn.RNN``/``GRU``/``LSTM`` submodule.
    """
    from torch import nn

    if isinstance(rnn, nn.Module):
        return rnn
    if isinstance(rnn, str):
        return model.get_submodule(rnn)
    if rnn is not None:
        raise ValueError(f"rnn={rnn!r}: pass a submodule name or an nn.Module")
    if (isinstance(model, (nn.RNNBase, nn.RNNCellBase)) or hasattr(model, "step")
            or hasattr(model, "velocity")):
        return model
    found = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.RNNBase)]
    if len(found) != 1:
        names = ", ".join(n for n, _ in found) or "none"
        raise ValueError(f"{type(model).__name__}: cannot tell which module to analyze "
                         f"(nn.RNN/GRU/LSTM submodules: {names}); pass rnn='name'")
    return found[0][1]


def _snapshot(module: Any) -> Dict[str, np.ndarray]:
    return {k: v.detach().to("cpu", copy=True).numpy() for k, v in module.state_dict().items()}


def _write_log(path: Path, losses: Dict[int, float]) -> None:
    from fixedpoints.serialization import write_text

    lines = ["epoch,loss"] + [f"{e},{v!r}" for e, v in sorted(losses.items())
                              if math.isfinite(v)]
    write_text(path, "\n".join(lines) + "\n")


def _worker_main(jobs: Any, replies: Any, lifeline: Any, template: Any, out: str,
                 options: Dict[str, Any], report: bool) -> None:
    """The background process: analyze each snapshot as it arrives (see the module docstring)."""
    from .execution import _init_worker

    _init_worker(lifeline)
    try:  # training comes first: the analysis takes what CPU is left
        os.nice(10)
    except OSError:  # pragma: no cover - not allowed here: run at the same priority
        pass
    import torch

    from .api import analyze_series
    from .run_options import RunOptions

    out_dir = Path(out)
    ckpt_dir = out_dir / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    series: List[Tuple[int, Any]] = []
    losses: Dict[int, float] = {}
    done = False
    while not done:
        batch = [jobs.get()]
        while True:  # take every snapshot already waiting: one analysis for all of them
            try:
                batch.append(jobs.get_nowait())
            except queue_module.Empty:
                break
        for item in batch:
            if item is None:
                done = True
                continue
            epoch, state, loss = item
            model = copy.deepcopy(template)
            model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
            torch.save({k: torch.from_numpy(v) for k, v in state.items()},
                       ckpt_dir / f"epoch_{epoch:04d}.pt")
            series = [s for s in series if s[0] != epoch] + [(epoch, model)]
            if loss is not None:
                losses[epoch] = float(loss)
        if not series or all(item is None for item in batch):
            continue
        series.sort(key=lambda s: s[0])
        try:
            log = None
            if losses:
                _write_log(ckpt_dir / "train_log.csv", losses)
                log = ckpt_dir / "train_log.csv"
            # the saved files, as `ghostscope analyze OUT/checkpoints` reads them: results are
            # labelled by file, so that command reuses them
            analysis = analyze_series(str(ckpt_dir.resolve()), model=template,
                                      run=RunOptions(out=out_dir), log=log, **options)
            if report and analysis.results:
                from .report import write_report

                write_report(analysis, out_dir, models=dict(series),
                             title=f"ghostscope: {out_dir.name} (during training)",
                             source=str(out_dir.resolve()))
            replies.put(("analyzed", [s[0] for s in series], None))
        except Exception as error:  # noqa: BLE001 - reported to the training process
            logger.warning("watch: analysis failed (%s)", error)
            replies.put(("failed", [s[0] for s in series], f"{type(error).__name__}: {error}"))
    replies.put(("closed", [s[0] for s in series], None))


class Watcher:
    """Snapshots a model every ``every`` epochs and analyzes them in one background process.

    Made by :func:`watch`; use :meth:`step` once per epoch, then :meth:`close` (or a ``with``
    block). Attributes ``analyzed`` (epochs in the last finished analysis) and ``errors``
    (messages of analyses that failed) are updated by :meth:`poll`, :meth:`wait` and
    :meth:`close`.
    """

    def __init__(self, model: Any, *, every: int = 1, out: Union[str, os.PathLike],
                 rnn: Any = None, report: bool = True, **options: Any) -> None:
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"every={every!r}: pass a positive number of epochs")
        from .execution import _worker_context

        self.module = recurrent_part(model, rnn)
        self.every = every
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.analyzed: List[int] = []
        self.errors: List[str] = []
        self._sent: List[int] = []
        self._closed = False
        template = copy.deepcopy(self.module).to("cpu")
        context = _worker_context(_worker_main)
        self._jobs = context.Queue()
        self._replies = context.Queue()
        lifeline_read, self._lifeline = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_worker_main, daemon=True, name="ghostscope-watch",
            args=(self._jobs, self._replies, lifeline_read, template, str(self.out),
                  dict(options), bool(report)))
        self._process.start()
        lifeline_read.close()

    def step(self, epoch: int, loss: Optional[float] = None) -> bool:
        """Call once per epoch: snapshots the model when ``epoch % every == 0``.

        Returns whether a snapshot was queued. Only the copy of the state dict happens here.
        """
        if self._closed:
            raise RuntimeError("this watcher is closed; make a new one with analysis.watch()")
        self.poll()
        epoch = int(epoch)
        if epoch % self.every:
            return False
        value = None if loss is None else float(loss)
        self._jobs.put((epoch, _snapshot(self.module), value))
        self._sent.append(epoch)
        return True

    def _take(self, message: Tuple[str, List[int], Optional[str]]) -> bool:
        kind, epochs, error = message
        if kind == "failed" and error is not None:
            self.errors.append(error)
        elif epochs:
            self.analyzed = list(epochs)
        return kind == "closed"

    def _next(self, deadline: Optional[float]) -> Optional[Tuple[str, List[int], Optional[str]]]:
        """The next message, taken in (None at ``deadline``; RuntimeError if the process died)."""
        while deadline is None or time.monotonic() < deadline:
            try:
                message = self._replies.get(timeout=0.5)
            except queue_module.Empty:
                if not self._process.is_alive():
                    raise RuntimeError(f"watch: the background analysis process ended (exit code"
                                       f" {self._process.exitcode}) before finishing") from None
                continue
            self._take(message)
            return message
        return None

    def poll(self) -> None:
        """Take the background process' news without waiting."""
        while True:
            try:
                self._take(self._replies.get_nowait())
            except queue_module.Empty:
                return

    def wait(self, timeout: Optional[float] = None) -> None:
        """Block until every queued snapshot is analyzed (``TimeoutError`` after ``timeout``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not set(self._sent) <= set(self.analyzed) and not self.errors:
            if not self._next(deadline):
                raise TimeoutError(f"watch: epochs {sorted(set(self._sent) - set(self.analyzed))}"
                                   f" not analyzed after {timeout} s") from None

    def close(self, wait: bool = True, timeout: Optional[float] = None) -> None:
        """Stop the background process: after analyzing what is queued when ``wait``."""
        if self._closed:
            return
        self._closed = True
        if wait:
            self._jobs.put(None)
            deadline = None if timeout is None else time.monotonic() + timeout
            try:
                while True:
                    message = self._next(deadline)
                    if message is None:
                        logger.warning("watch: the background analysis did not finish in %s s",
                                       timeout)
                        break
                    if message[0] == "closed":
                        break
            except RuntimeError as error:
                self.errors.append(str(error))
                logger.warning("%s", error)
            self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=10)
        self._lifeline.close()
        for q in (self._jobs, self._replies):
            q.close()
            q.join_thread()

    def __enter__(self) -> "Watcher":
        return self

    def __exit__(self, kind: Any, value: Any, traceback: Any) -> None:
        self.close(wait=kind is None)


def watch(model: Any, *, every: int = 1, out: Union[str, os.PathLike], rnn: Any = None,
          report: bool = True, **options: Any) -> Watcher:
    """Analyze ``model`` every ``every`` epochs during training, in a background process.

    Parameters
    ----------
    model : torch.nn.Module
        The model being trained (its recurrent part is found by :func:`recurrent_part`).
    every : int, default 1
        Snapshot when ``epoch % every == 0``.
    out : path
        The output directory (the layout of ``ghostscope analyze``, plus ``checkpoints/``).
    rnn : str or nn.Module, optional
        Which submodule to analyze (see :func:`recurrent_part`).
    report : bool, default True
        Refresh ``report.html`` after each analysis.
    **options
        Passed to :func:`analysis.analyze_series` (``n_initial=``, ``ghosts=``, ``input=`` ...).

    Returns
    -------
    Watcher
        Call ``.step(epoch, loss=None)`` once per epoch, then ``.close()`` (or use ``with``).
    """
    return Watcher(model, every=every, out=out, rnn=rnn, report=report, **options)


def _lightning_callback_base() -> type:
    try:
        from pytorch_lightning import Callback
    except ImportError:
        raise ImportError("WatchCallback needs PyTorch Lightning; pip install "
                          "'ghostscope[lightning]'") from None
    return Callback


def _make_callback_class() -> type:
    base = _lightning_callback_base()

    class WatchCallback(base):  # type: ignore[misc, valid-type]
        """A PyTorch Lightning callback: :func:`watch` at every ``every``-th training epoch end.

        Parameters are those of :func:`watch` (``every``, ``out``, ``rnn``, ``report``,
        analysis options); ``monitor`` names the logged metric stored as the epoch's loss
        (``train_loss_epoch``, else ``train_loss``, else none). The background process starts
        at ``on_fit_start`` and finishes its queue at ``on_fit_end``.
        """

        def __init__(self, *, every: int = 1, out: Union[str, os.PathLike], rnn: Any = None,
                     report: bool = True, monitor: Optional[str] = None,
                     **options: Any) -> None:
            super().__init__()
            self.kwargs = dict(every=every, out=out, rnn=rnn, report=report, **options)
            self.monitor = monitor
            self.watcher: Optional[Watcher] = None

        def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
            self.watcher = Watcher(pl_module, **self.kwargs)

        def _loss(self, trainer: Any) -> Optional[float]:
            metrics = trainer.callback_metrics
            names = [self.monitor] if self.monitor else ["train_loss_epoch", "train_loss",
                                                          "loss"]
            for name in names:
                if name in metrics:
                    return float(metrics[name])
            return None

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            if self.watcher is not None:
                self.watcher.step(trainer.current_epoch, loss=self._loss(trainer))

        def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
            if self.watcher is not None:
                self.watcher.close()

        def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
            if self.watcher is not None:
                self.watcher.close(wait=False)

    return WatchCallback


def __getattr__(name: str) -> Any:
    if name == "WatchCallback":  # Lightning is imported only when the callback is asked for
        cls = _make_callback_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


