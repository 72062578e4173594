"""A small trainer that writes a checkpoint series in the layout the reader reads.

Directory layout written by :func:`train`::

    out_dir/
        config.json          {"architecture", "model", "task", "training", "ghostscope_version",
                              "result" (added when training ends)}
        train_log.csv        header ``epoch,loss,accuracy,grad_norm``; one row per epoch 0..epochs
        model_epoch0.pt      torch.save of the model's state_dict (plain tensors)
        model_epoch{k}.pt    every ``save_every`` epochs, and always the last epoch

Epoch convention: **epoch e means the weights after e optimizer updates**. Row e of the log
holds the loss, accuracy and gradient norm of exactly those weights (the ones saved as
``model_epoch{e}.pt``), measured on the batch that update e + 1 then uses. The last row
(e = epochs) is one extra forward/backward pass without an update, so every saved checkpoint
has its own row. ``loss`` is the task's loss without the temporal-consistency penalty; the
penalty is reported separately in :class:`TrainResult`. ``grad_norm`` is the Euclidean norm of
the gradient of the objective (task loss + penalty) over all parameters.

Checkpoints and ``config.json`` are written to a temporary name and renamed; the log is appended
in whole lines whenever a checkpoint is saved, so an interrupted run leaves a consistent prefix.
"""
from __future__ import annotations

import configparser
import csv
import inspect
import io
import json
import logging
import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Union

import numpy as np
import torch

from .models import ARCHITECTURES, build_model
from .tasks import Task, get_task

__all__ = ["TrainResult", "train", "tcr_penalty", "LOG_COLUMNS", "checkpoint_name", "FLIPFLOP_DEMO"]

_LOG = logging.getLogger(__name__)

#: Header of ``train_log.csv``.
LOG_COLUMNS = ("epoch", "loss", "accuracy", "grad_norm")
_OPTIMIZERS = ("adam", "sgd")
_DTYPES = {"float32": torch.float32, "float64": torch.float64}
_CHECKPOINT_RE = re.compile(r"^model_epoch\d+\.pt$")
_OWN_FILES = ("config.json", "train_log.csv")


#: Settings measured to train a clean 3-bit flip-flop leaky RNN (100 units, Adam): accuracy 1.0
#: and exactly 8 stable fixed points (plus the 12 + 6 + 1 saddles of the cube) in 10 of 10
#: seeds, in about 5-15 s on one core. Use as ``train(out_dir=..., **FLIPFLOP_DEMO)``.
FLIPFLOP_DEMO = MappingProxyType({
    "task": MappingProxyType({"name": "flipflop", "n_bits": 3, "trial_steps": 50,
                              "pulse_prob": 0.1}),
    "architecture": "leaky_rnn", "n_states": 100, "epochs": 500, "lr": 1e-2,
    "optimizer": "adam", "batch_size": 64, "seed": 0,
})


def checkpoint_name(epoch: int) -> str:
    """File name of the checkpoint of ``epoch``: ``model_epoch{epoch}.pt``."""
    return f"model_epoch{int(epoch)}.pt"


@dataclass(frozen=True, eq=False)
class TrainResult:
    """What :func:`train` returns.

    Attributes
    ----------
    out_dir : Path or None
        The directory written (None when training ran without files).
    model : RecurrentModel
        The trained model (weights after ``epochs`` updates).
    final_loss : float
        Task loss of the final weights (the last log row).
    losses : ndarray of shape (epochs + 1,)
        Task loss of the weights after e updates, e = 0..epochs.
    accuracies : ndarray of shape (epochs + 1,)
    grad_norms : ndarray of shape (epochs + 1,)
        Norm of the gradient of the objective at those weights.
    penalties : ndarray of shape (epochs + 1,)
        Temporal-consistency penalty (before multiplying by λ); zeros when λ = 0.
    objectives : ndarray of shape (epochs + 1,)
        The minimized objective, ``losses + tcr_lambda * penalties``.
    config : dict
        The content of ``config.json``.
    elapsed_s : float
        Wall-clock training time in seconds.
    """

    out_dir: Optional[Path]
    model: torch.nn.Module
    final_loss: float
    losses: np.ndarray
    accuracies: np.ndarray
    grad_norms: np.ndarray
    penalties: np.ndarray
    objectives: np.ndarray
    config: Dict[str, Any]
    elapsed_s: float


# ------------------------------------------------------------------------------------ helpers
def tcr_penalty(states: torch.Tensor, x0: torch.Tensor,
                weights: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Temporal-consistency penalty: mean over trials and (weighted) steps of ‖h_t − h_{t−1}‖².

    Parameters
    ----------
    states : Tensor of shape (b, T, n)
        ``states[:, t]`` is the state after step t.
    x0 : Tensor of shape (b, n)
        The initial states (h_{−1}), so step t's change is ``states[:, t] − states[:, t−1]``.
    weights : Tensor of shape (T,), optional
        Non-negative weight (time mask) of each step; all ones when omitted.

    Returns
    -------
    Tensor of shape ()
        ``Σ_t w_t · mean_b ‖Δh_t‖² / Σ_t w_t``.
    """
    previous = torch.cat([x0[:, None, :], states[:, :-1]], dim=1)
    squared = ((states - previous) ** 2).sum(dim=-1).mean(dim=0)  # (T,)
    if weights is None:
        return squared.mean()
    return (weights * squared).sum() / weights.sum()


def _ghostscope_version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version
        try:
            return version("ghostscope")
        except PackageNotFoundError:
            pass
    except ImportError:  # pragma: no cover
        pass
    setup_cfg = Path(__file__).resolve().parent.parent / "setup.cfg"
    if setup_cfg.is_file():
        parser = configparser.ConfigParser()
        try:
            parser.read(setup_cfg)
            return parser.get("metadata", "version", fallback="unknown")
        except configparser.Error:
            return "unknown"
    return "unknown"


def _temporary(path: Path) -> Path:
    """The project's one temporary-name scheme (``fixedpoints.serialization.temporary_path``;
    this package does not import fixedpoints): ``.<name>.<pid>.tmp``."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = _temporary(path)
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def _save_checkpoint(model: torch.nn.Module, out_dir: Path, epoch: int) -> None:
    path = out_dir / checkpoint_name(epoch)
    tmp = _temporary(path)
    state = {key: value.detach().cpu() for key, value in model.state_dict().items()}
    torch.save(state, tmp)
    os.replace(tmp, path)


def _write_config(out_dir: Path, config: Dict[str, Any]) -> None:
    _atomic_write_bytes(out_dir / "config.json",
                        (json.dumps(config, indent=2, allow_nan=True) + "\n").encode())


def _prepare_dir(out_dir: Union[str, os.PathLike], overwrite: bool) -> Path:
    path = Path(out_dir)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"train: out_dir={str(path)!r} is a file; pass a directory path")
    if path.is_dir() and any(path.iterdir()):
        if not overwrite:
            raise FileExistsError(f"train: out_dir={str(path)!r} is not empty; pass an empty "
                                  "or new directory, or overwrite=True to replace its "
                                  "checkpoints, log and config")
        for entry in path.iterdir():
            name = entry.name
            stale = (name in _OWN_FILES or _CHECKPOINT_RE.match(name)
                     or (name.startswith(".") and name.endswith(".tmp")))
            if stale and entry.is_file():
                entry.unlink()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _resolve_task(task: Union[Task, str, Dict[str, Any]]) -> Task:
    if isinstance(task, Task):
        return task
    if isinstance(task, str):
        return get_task(task)
    if isinstance(task, Mapping):
        params = dict(task)
        if "name" not in params:
            raise ValueError(f"train: task dict {task!r} has no 'name'; pass e.g. "
                             "{'name': 'flipflop', 'n_bits': 3}")
        return get_task(params.pop("name"), **params)
    raise TypeError(f"train: task must be a Task, a task name or a dict with 'name', got "
                    f"{type(task).__name__}")


def _model_kwargs(architecture: str, task: Task, n_states: Optional[int], rank: Optional[int],
                  confidence: Optional[float],
                  model_kwargs: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    if architecture not in ARCHITECTURES:
        raise ValueError(f"train: unknown architecture {architecture!r}; pass one of "
                         f"{sorted(ARCHITECTURES)}")
    signature = inspect.signature(ARCHITECTURES[architecture]).parameters
    accepted = set(signature) - {"self"}
    size_key = "hidden_size" if "hidden_size" in accepted else "n_states"
    kwargs = dict(model_kwargs or {})
    for name, value in (("rank", rank), ("confidence", confidence)):
        if value is None:
            continue
        if name not in accepted:
            raise ValueError(f"train: architecture {architecture!r} takes no {name}; its arguments "
                             f"are {sorted(accepted)}")
        if name in kwargs and kwargs[name] != value:
            raise ValueError(f"train: {name}={value!r} contradicts model_kwargs[{name!r}]="
                             f"{kwargs[name]!r}; give it once")
        kwargs[name] = value
    if n_states is not None:
        if kwargs.get(size_key, n_states) != n_states:
            raise ValueError(f"train: n_states={n_states} contradicts model_kwargs[{size_key!r}]="
                             f"{kwargs[size_key]!r}; give it once")
        kwargs[size_key] = n_states
    if size_key in signature and signature[size_key].default is inspect.Parameter.empty \
            and size_key not in kwargs:
        raise ValueError(f"train: architecture {architecture!r} needs a network size; pass "
                         f"n_states=... (e.g. n_states=100)")
    for name in ("n_inputs", "n_outputs"):
        wanted = getattr(task, name)
        if name in accepted:
            if kwargs.get(name, wanted) != wanted:
                raise ValueError(f"train: model_kwargs[{name!r}]={kwargs[name]!r} but task "
                                 f"{task.name!r} has {name}={wanted}; drop it from model_kwargs")
            kwargs[name] = wanted
    return kwargs


def _time_weights(tcr_mask: Any, n_steps: int, dtype: torch.dtype,
                  device: torch.device) -> Optional[torch.Tensor]:
    if tcr_mask is None:
        return None
    weights = torch.as_tensor(np.asarray(tcr_mask, dtype=np.float64), dtype=dtype, device=device)
    if weights.dim() != 1 or weights.shape[0] != n_steps:
        raise ValueError(f"train: tcr_mask has shape {tuple(weights.shape)}; pass one weight per "
                         f"time step, shape ({n_steps},), or None for all steps")
    if (not bool(torch.isfinite(weights).all()) or bool((weights < 0).any())
            or float(weights.sum()) <= 0):
        raise ValueError("train: tcr_mask must hold finite non-negative weights with a positive "
                         f"sum, got {np.asarray(tcr_mask).tolist()}")
    return weights


def _check_number(name: str, value: Any, *, minimum: float = 0.0, integer: bool = False,
                  strict: bool = False) -> None:
    ok_type = (isinstance(value, int) if integer else isinstance(value, (int, float)))
    if isinstance(value, bool) or not ok_type or not math.isfinite(value) or value < minimum \
            or (strict and value == minimum):
        kind = "an integer" if integer else "a number"
        bound = ">" if strict else ">="
        raise ValueError(f"train: {name}={value!r} is invalid; pass {kind} {bound} {minimum:g}")


def _make_progress(progress: Any, epochs: int) -> Optional[Callable[[int, float, float], None]]:
    if progress is None or progress is False:
        return None
    if progress is True:
        from tqdm.auto import tqdm

        bar = tqdm(total=epochs + 1, desc="train", unit="epoch")

        def update(epoch: int, loss: float, accuracy: float) -> None:
            bar.update(1)
            if epoch % 50 == 0 or epoch == epochs:
                bar.set_postfix(loss=f"{loss:.4g}", acc=f"{accuracy:.3f}", refresh=False)
            if epoch == epochs:
                bar.close()
        return update
    if callable(progress):
        return progress
    raise TypeError(f"train: progress={progress!r}; pass None, True (a tqdm bar) or a callable "
                    "progress(epoch, loss, accuracy)")


class _LogWriter:
    """Appends whole rows to train_log.csv; rows are buffered and flushed at checkpoints."""

    def __init__(self, path: Optional[Path]):
        self.path = path
        self.rows: list = []
        if path is not None:
            with open(path, "w", newline="") as fh:
                fh.write(",".join(LOG_COLUMNS) + "\n")

    def add(self, epoch: int, loss: float, accuracy: float, grad_norm: float) -> None:
        if self.path is not None:
            self.rows.append((epoch, loss, accuracy, grad_norm))

    def flush(self) -> None:
        if self.path is None or not self.rows:
            return
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerows((e, repr(float(loss)), repr(float(a)), repr(float(g)))
                         for e, loss, a, g in self.rows)
        with open(self.path, "a", newline="") as fh:
            fh.write(buffer.getvalue())
        self.rows.clear()


# ------------------------------------------------------------------------------------ trainer
def train(task: Union[Task, str, Dict[str, Any]], architecture: str,
          out_dir: Optional[Union[str, os.PathLike]], *, epochs: int, lr: float,
          optimizer: str = "adam", seed: int = 0, batch_size: Optional[int] = None,
          save_every: int = 1, n_states: Optional[int] = None, rank: Optional[int] = None,
          confidence: Optional[float] = None, tcr_lambda: float = 0.0,
          tcr_mask: Optional[Sequence[float]] = None, model_kwargs: Optional[Dict[str, Any]] = None,
          optimizer_kwargs: Optional[Dict[str, Any]] = None, grad_clip: Optional[float] = None,
          dtype: Union[str, torch.dtype] = torch.float32, device: Union[str, torch.device] = "cpu",
          overwrite: bool = False, progress: Any = None,
          log: Optional[logging.Logger] = None) -> TrainResult:
    """Train a built-in model on a task and write a checkpoint series.

    Parameters
    ----------
    task : Task, str or dict
        A task object, a registry name (default parameters) or ``{"name": ..., **params}``.
    architecture : str
        A key of :data:`checkpoints.models.ARCHITECTURES` (``"leaky_rnn"``, ``"rank_one_rnn"``,
        ...).
    out_dir : path or None
        Directory to write (created if missing; must be empty unless ``overwrite``). None trains
        without writing anything.
    epochs : int
        Number of optimizer updates (one batch each). Checkpoints and log rows cover 0..epochs.
    lr : float
        Learning rate (>= 0).
    optimizer : {"adam", "sgd"}
        Plain SGD (no momentum unless given in ``optimizer_kwargs``) or Adam.
    seed : int
        Seeds the model initialization (torch's global generator is seeded inside a forked RNG
        state, so the caller's RNG state is left untouched) and, through a derived seed, the
        task's trial generator.
    batch_size : int, optional
        Trials per epoch; the task's ``default_batch_size`` when omitted (1 for delayed activation).
    save_every : int
        Save ``model_epoch{e}.pt`` when ``e % save_every == 0`` (epoch 0 included) and at the end.
    n_states, rank, confidence : optional
        Shortcuts for the model's size, low rank K and readout confidence c (merged into
        ``model_kwargs``; the task fixes ``n_inputs`` and ``n_outputs``).
    tcr_lambda : float
        Weight λ of the temporal-consistency penalty ``λ · mean ‖h_t − h_{t−1}‖²`` (see
        :func:`tcr_penalty`); 0 disables it.
    tcr_mask : sequence of float, optional
        One non-negative weight per time step for the penalty (a 0/1 time mask); all steps when
        omitted.
    model_kwargs, optimizer_kwargs : dict, optional
        Extra constructor arguments of the model / the torch optimizer.
    grad_clip : float, optional
        Clip the gradient to this total norm before each update (the logged norm is the
        unclipped one).
    dtype : torch.dtype or {"float32", "float64"}
        Parameter and data type (float32 by default, as in SCIENCE.md's re-runs).
    device : str or torch.device
    overwrite : bool
        Replace the checkpoints, log and config of a non-empty ``out_dir``.
    progress : None, True or callable
        True shows a tqdm bar; a callable is called as ``progress(epoch, loss, accuracy)`` after
        every epoch.
    log : logging.Logger, optional
        Where to log start, checkpoints at 10% intervals and the end (this module's logger by
        default).

    Returns
    -------
    TrainResult

    Raises
    ------
    ValueError, TypeError
        Invalid arguments (the message names the argument, the value and the fix).
    FileExistsError
        ``out_dir`` is not empty and ``overwrite`` is False.
    FloatingPointError
        The loss or gradient became NaN/inf; the log and checkpoints up to that epoch are kept.
    """
    log = log if log is not None else _LOG
    task = _resolve_task(task)
    _check_number("epochs", epochs, integer=True)
    _check_number("lr", lr)
    _check_number("save_every", save_every, minimum=1, integer=True)
    _check_number("tcr_lambda", tcr_lambda)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"train: seed={seed!r} is invalid; pass a non-negative integer")
    if grad_clip is not None:
        _check_number("grad_clip", grad_clip, strict=True)
    optimizer_name = str(optimizer).lower()
    if optimizer_name not in _OPTIMIZERS:
        raise ValueError(f"train: optimizer={optimizer!r} is unknown; pass one of "
                         f"{list(_OPTIMIZERS)}")
    if isinstance(dtype, str):
        if dtype not in _DTYPES:
            raise ValueError(f"train: dtype={dtype!r} is unknown; pass one of {sorted(_DTYPES)}")
        dtype = _DTYPES[dtype]
    if dtype not in _DTYPES.values():
        raise ValueError(f"train: dtype={dtype!r} is unsupported; pass torch.float32 or "
                         "torch.float64")
    dtype_name = str(dtype).replace("torch.", "")
    device = torch.device(device)
    batch_size = task.default_batch_size if batch_size is None else batch_size
    _check_number("batch_size", batch_size, minimum=1, integer=True)

    kwargs = _model_kwargs(architecture, task, n_states, rank, confidence, model_kwargs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(architecture, **kwargs)
    model = model.to(device=device, dtype=dtype)
    if model.n_inputs != task.n_inputs or model.n_outputs != task.n_outputs:
        raise ValueError(f"train: architecture {architecture!r} has n_inputs={model.n_inputs}, "
                         f"n_outputs={model.n_outputs} but task {task.name!r} needs "
                         f"{task.n_inputs} and {task.n_outputs}; choose a matching architecture "
                         f"(e.g. 'rank_one_rnn' only fits delayed_activation)")
    weights = _time_weights(tcr_mask, task.n_steps, dtype, device)

    parameters = [p for p in model.parameters() if p.requires_grad]
    opt_kwargs = dict(optimizer_kwargs or {})
    opt_class = torch.optim.Adam if optimizer_name == "adam" else torch.optim.SGD
    try:
        opt = opt_class(parameters, lr=lr, **opt_kwargs)
    except TypeError as exc:
        raise ValueError(f"train: optimizer_kwargs={opt_kwargs!r} not accepted by "
                         f"{opt_class.__name__}: {exc}") from exc

    data_seed = int(np.random.SeedSequence([seed, 0x7C5]).generate_state(1)[0])
    generator = torch.Generator().manual_seed(data_seed)
    config: Dict[str, Any] = {
        "architecture": model.architecture,
        "model": model.config(),
        "task": task.params(),
        "training": {
            "optimizer": optimizer_name, "lr": lr, "epochs": epochs, "seed": seed,
            "data_seed": data_seed, "batch_size": batch_size, "save_every": save_every,
            "tcr_lambda": tcr_lambda,
            "tcr_mask": None if weights is None else [float(w) for w in weights.tolist()],
            "optimizer_kwargs": opt_kwargs, "grad_clip": grad_clip, "dtype": dtype_name,
            "device": str(device),
        },
        "ghostscope_version": _ghostscope_version(),
    }

    path = None if out_dir is None else _prepare_dir(out_dir, overwrite)
    if path is not None:
        _write_config(path, config)
    writer = _LogWriter(None if path is None else path / "train_log.csv")
    report = _make_progress(progress, epochs)

    n = epochs + 1
    losses, accuracies = np.empty(n), np.empty(n)
    grad_norms, penalties = np.empty(n), np.zeros(n)
    fixed_batch = None
    if getattr(task, "deterministic", False):
        fixed_batch = tuple(t.to(device) for t in task.sample(batch_size, generator, dtype=dtype))
    log_every = max(1, n // 10)
    log.info("train: %s on %s, %d epochs, %s lr=%g, seed %d -> %s", model.architecture, task.name,
             epochs, optimizer_name, lr, seed, path)
    start = time.perf_counter()
    for epoch in range(n):
        if fixed_batch is None:
            sample = task.sample(batch_size, generator, dtype=dtype)
            inputs, targets, mask = (t.to(device) for t in sample)
        else:
            inputs, targets, mask = fixed_batch
        x0 = model.initial_state(batch_size)
        outputs, states = model(inputs, x0)
        loss = task.loss(outputs, targets, mask)
        objective = loss
        if tcr_lambda > 0:
            penalty = tcr_penalty(states, x0, weights)
            objective = loss + tcr_lambda * penalty
            penalties[epoch] = penalty.item()
        opt.zero_grad(set_to_none=True)
        objective.backward()
        grads = [p.grad for p in parameters if p.grad is not None]
        grad_norm = float(torch.nn.utils.get_total_norm(grads)) if grads else 0.0
        losses[epoch] = loss.item()
        accuracies[epoch] = task.accuracy(outputs.detach(), targets, mask)
        grad_norms[epoch] = grad_norm
        writer.add(epoch, losses[epoch], accuracies[epoch], grad_norm)
        if report is not None:
            report(epoch, float(losses[epoch]), float(accuracies[epoch]))
        last = epoch == epochs
        if path is not None and (epoch % save_every == 0 or last):
            _save_checkpoint(model, path, epoch)
            writer.flush()
        if not (math.isfinite(losses[epoch]) and math.isfinite(grad_norm)):
            writer.flush()
            kept = ("nothing was written (out_dir=None)" if path is None else
                    f"the log and checkpoints up to this epoch are kept in {str(path)!r}")
            raise FloatingPointError(
                f"train: loss={float(losses[epoch])!r}, grad_norm={grad_norm!r} at epoch {epoch} "
                f"({task.name}, {model.architecture}, lr={lr}); lower lr, set grad_clip, or use "
                f"dtype='float64'; {kept}")
        if epoch % log_every == 0 and epoch:
            log.info("train: epoch %d/%d loss %.6g accuracy %.4g grad_norm %.4g", epoch, epochs,
                     losses[epoch], accuracies[epoch], grad_norm)
        if last:
            break
        if grad_clip is not None:
            torch.nn.utils.clip_grads_with_norm_(parameters, grad_clip, torch.tensor(grad_norm))
        opt.step()
    elapsed = time.perf_counter() - start
    writer.flush()

    config["result"] = {"final_loss": float(losses[-1]), "final_accuracy": float(accuracies[-1]),
                        "elapsed_s": elapsed}
    if path is not None:
        _write_config(path, config)
    log.info("train: done in %.1f s, final loss %.6g, accuracy %.4g", elapsed, losses[-1],
             accuracies[-1])
    return TrainResult(out_dir=path, model=model, final_loss=float(losses[-1]), losses=losses,
                       accuracies=accuracies, grad_norms=grad_norms, penalties=penalties,
                       objectives=losses + tcr_lambda * penalties, config=config,
                       elapsed_s=elapsed)
