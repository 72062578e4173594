"""Training logs as training code writes them: the loss curve over epochs.

Formats (:func:`read_training_log`)
    * a CSV file with a header: ``train_log.csv`` of ``checkpoints.train`` (columns
      ``epoch,loss,accuracy,grad_norm``) or PyTorch Lightning's CSVLogger ``metrics.csv``
      (columns ``epoch, step, train_loss[_step|_epoch], val_loss, …``, blank cells where a
      metric was not logged). The loss column is the one named, else ``loss``, else the first
      of ``train_loss_epoch, train_loss, loss_epoch, train/loss, val_loss_epoch, val_loss,
      val/loss``, else the first column holding "loss". Rows are placed by their ``epoch``
      column (else ``step``, else the row number); several rows of one epoch (a per-step
      metric) are averaged into one value for that epoch;
    * an ``.npz`` file with a ``loss_history`` array (or the key named), epochs from an
      ``epochs`` / ``epoch`` array of the same length, else ``0, 1, 2, ...``;
    * a TensorBoard event file (``events.out.tfevents.*``, read with the ``tensorboard``
      package's event reader, in the ``[lightning]`` extra): the scalar tag is chosen by name as
      the CSV column is; steps are turned into epochs through an ``epoch`` scalar when one is
      logged (Lightning logs it), values of one epoch averaged;
    * a directory: the first log found by :func:`find_training_log`.

Alignment (``offset``, CLI ``--log-offset``)
    Log entry i is placed at epoch ``epoch_i + offset``. The ghost paper's ``final.npz``
    (``loss_history`` with ``grad_history``) stores at index e the loss computed *before*
    update e, which is the loss of ``model_epoch{e-1}.pt`` (saved after update e-1): its
    offset is -1, and ``offset=None`` (the default) applies -1 to exactly such a file and 0 to
    everything else. Pass an integer to override.

Where logs are looked for (:func:`find_training_log`)
    the checkpoint folder, then its parent, then any folder passed in ``also`` (the run root):
    in each, ``train_log.csv``, ``metrics.csv``, an ``.npz`` holding ``loss_history``, then the
    newest TensorBoard event file.
"""
from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = ["LossCurve", "LOG_NAMES", "LOSS_NAMES", "find_training_log", "read_training_log",
           "curves_summary"]

LOG_NAMES = ("train_log.csv", "metrics.csv")
LOSS_NAMES = ("loss", "train_loss_epoch", "train_loss", "loss_epoch", "train/loss",
              "val_loss_epoch", "val_loss", "val/loss")
_EVENTS = "events.out.tfevents.*"
_AUTHORS_OFFSET = -1


@dataclass(frozen=True)
class LossCurve:
    """A training loss over epochs.

    Attributes
    ----------
    epochs : ndarray of shape (T,)
        Epoch of each entry, the offset applied.
    loss : ndarray of shape (T,)
    source : str
        The file it came from.
    column : str
        The column, key or tag read.
    offset : float
        What was added to the log's own epoch numbers (see the module docstring).
    note : str
        How the log was read (offset chosen, rows averaged per epoch, …).
    """

    epochs: np.ndarray
    loss: np.ndarray
    source: str = ""
    column: str = "loss"
    offset: float = 0.0
    note: str = ""

    def __post_init__(self):
        e = np.asarray(self.epochs, dtype=float).reshape(-1)
        v = np.asarray(self.loss, dtype=float).reshape(-1)
        if len(e) != len(v):
            raise ValueError(f"epochs ({len(e)}) and loss ({len(v)}) differ in length"
                             f"{' in ' + self.source if self.source else ''}")
        order = np.argsort(e, kind="stable")
        object.__setattr__(self, "epochs", e[order])
        object.__setattr__(self, "loss", v[order])

    def __len__(self) -> int:
        return int(len(self.epochs))

    def at(self, epoch: float) -> float:
        """Loss at an epoch (NaN when that epoch is not logged)."""
        hit = np.flatnonzero(self.epochs == epoch)
        return float(self.loss[hit[-1]]) if len(hit) else math.nan


# ------------------------------------------------------------------------------ finding
def _npz_with_loss(directory: Path) -> Optional[Path]:
    for p in sorted(directory.glob("*.npz")):
        try:
            with np.load(p, allow_pickle=False) as data:
                if "loss_history" in data.files:
                    return p
        except Exception:  # noqa: BLE001 - a checkpoint .npz or a broken file: not a log
            continue
    return None


def _log_in(directory: Path) -> Optional[Path]:
    for name in LOG_NAMES:
        if (directory / name).is_file():
            return directory / name
    found = _npz_with_loss(directory)
    if found is not None:
        return found
    events = sorted(p for p in directory.glob(_EVENTS) if p.is_file())
    return events[-1] if events else None


def find_training_log(directory: Union[str, os.PathLike],
                      also: Iterable[Union[str, os.PathLike]] = (),
                      parent: bool = True) -> Optional[Path]:
    """The training log of a checkpoint folder, or None.

    Parameters
    ----------
    directory : path
        The checkpoint folder.
    also : iterable of paths
        More folders to look in after the folder and its parent (the run root).
    parent : bool, default True
        Look in the folder's parent too (where the ghost paper's ``final.npz`` and Lightning's
        ``metrics.csv`` lie).

    Returns
    -------
    Path or None
        ``train_log.csv``, ``metrics.csv``, an ``.npz`` with ``loss_history`` or a TensorBoard
        event file, from the first folder that has one (see the module docstring).
    """
    d = Path(directory)
    if not d.is_dir():
        return None
    seen: List[Path] = []
    for folder in [d, *([d.resolve().parent] if parent else []), *(Path(a) for a in also)]:
        folder = folder.resolve()
        if folder in seen or not folder.is_dir():
            continue
        seen.append(folder)
        found = _log_in(folder)
        if found is not None:
            return found
    return None


# ------------------------------------------------------------------------------ reading
def read_training_log(path: Union[str, os.PathLike], column: Optional[str] = None,
                      offset: Optional[float] = None) -> LossCurve:
    """Read a training loss curve.

    Parameters
    ----------
    path : str or path
        A CSV file, an ``.npz`` file, a TensorBoard event file, or a directory holding one (see
        the module docstring).
    column : str, optional
        The CSV column, ``.npz`` key or TensorBoard tag holding the loss.
    offset : float, optional
        Added to every entry's epoch; None: -1 for the ghost paper's ``final.npz``, else 0.

    Returns
    -------
    LossCurve

    Raises
    ------
    FileNotFoundError
        Nothing readable at ``path``.
    ValueError
        The column/key/tag is missing (the message lists those present) or holds non-numbers;
        a TensorBoard file without the ``tensorboard`` package.
    """
    p = Path(path)
    if p.is_dir():
        found = find_training_log(p, parent=False)
        if found is None:
            raise FileNotFoundError(f"{p} holds no train_log.csv, metrics.csv, .npz with "
                                    f"loss_history or TensorBoard event file; pass the log file "
                                    f"and column explicitly (log=..., log_column=...)")
        p = found
    if not p.is_file():
        raise FileNotFoundError(f"training log {p} does not exist; pass a CSV, .npz or "
                                f"TensorBoard event file")
    if p.suffix == ".npz":
        epochs, loss, key, note, default = _read_npz(p, column)
    elif p.name.startswith("events.out.tfevents"):
        epochs, loss, key, note = _read_tensorboard(p, column)
        default = 0
    else:
        epochs, loss, key, note = _read_csv(p, column)
        default = 0
    if offset is None:
        offset = default
        if default:
            note = (f"{note}; " if note else "") + (
                f"log_offset={default}: the ghost paper's final.npz stores at index e the loss "
                f"before update e, which belongs to model_epoch{{e-1}} (pass --log-offset 0 to "
                f"keep the raw index)")
    elif offset:
        note = (f"{note}; " if note else "") + f"log_offset={offset:g} given"
    if not (isinstance(offset, (int, float)) and math.isfinite(offset)):
        raise ValueError(f"offset={offset!r} is invalid; pass a whole number of epochs")
    return LossCurve(np.asarray(epochs, float) + float(offset), np.asarray(loss, float), str(p),
                     key, float(offset), note)


def _read_npz(p: Path, column: Optional[str]):
    key = column or "loss_history"
    with np.load(p, allow_pickle=False) as data:
        if key not in data.files:
            raise ValueError(f"{p} has no array {key!r}; it has {sorted(data.files)}. Pass the "
                             f"key holding the loss as log_column=")
        loss = np.asarray(data[key], dtype=float).reshape(-1)
        epochs = None
        for name in ("epochs", "epoch"):
            if name in data.files and data[name].size == loss.size:
                epochs = np.asarray(data[name], dtype=float).reshape(-1)
                break
        authors = key == "loss_history" and "grad_history" in data.files and epochs is None
    if epochs is None:
        epochs = np.arange(len(loss), dtype=float)
    return epochs, loss, key, "", (_AUTHORS_OFFSET if authors else 0)


def _pick(names: Sequence[str], column: Optional[str], p: Path, what: str) -> str:
    if column is not None:
        if column not in names:
            raise ValueError(f"{p} has no {what} {column!r}; its {what}s are {list(names)}. "
                             f"Pass the {what} holding the loss as log_column=")
        return column
    for name in LOSS_NAMES:
        if name in names:
            return name
    lossy = [n for n in names if "loss" in n.lower()]
    lossy.sort(key=lambda n: ("train" not in n.lower(), "val" in n.lower()))
    if lossy:
        return lossy[0]
    raise ValueError(f"{p} has no {what} named loss; its {what}s are {list(names)}. Pass the "
                     f"{what} holding the loss as log_column=")


def _per_epoch(x: np.ndarray, y: np.ndarray) -> Tuple[np.ndarray, np.ndarray, int]:
    """Average the values of repeated x; returns (x, y, largest number of rows averaged)."""
    if len(np.unique(x)) == len(x):
        return x, y, 1
    keys, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.zeros(len(keys))
    np.add.at(sums, inverse, y)
    return keys, sums / counts, int(counts.max())


def _read_csv(p: Path, column: Optional[str]):
    with open(p, newline="") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        key = column or ("loss" if "loss" in header else None)
        if key is None:
            key = _pick(header, None, p, "column")
        elif key not in header:
            raise ValueError(f"{p} has no column {key!r}; its columns are {header}. Pass the "
                             f"column holding the loss as log_column=")
        epoch_key = next((k for k in ("epoch", "step") if k in header and k != key), None)
        epochs, loss = [], []
        for row_number, row in enumerate(reader):
            text = row.get(key)
            if text is None or str(text).strip() == "":
                continue  # Lightning leaves a metric's cell blank in rows that log others
            try:
                value = float(text)
            except (TypeError, ValueError):
                raise ValueError(f"{p} row {row_number + 2}: {key}={text!r} is not a number; "
                                 f"fix the file or pick another column") from None
            where = row.get(epoch_key) if epoch_key else None
            try:
                epochs.append(float(where) if where is not None else float(row_number))
            except (TypeError, ValueError):
                raise ValueError(f"{p} row {row_number + 2}: {epoch_key}={where!r} is not a "
                                 f"number; fix the file") from None
            loss.append(value)
    if not loss:
        raise ValueError(f"{p} has no value in column {key!r}; nothing to read (pick another "
                         f"column with log_column=)")
    x, y, averaged = _per_epoch(np.array(epochs), np.array(loss))
    note = f"up to {averaged} rows per {epoch_key} averaged" if averaged > 1 else ""
    return x, y, key, note


def _read_tensorboard(p: Path, column: Optional[str]):
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError as exc:
        raise ValueError(f"{p} is a TensorBoard event file and reading it needs the tensorboard "
                         f"package: pip install 'ghostscope[lightning]' (or tensorboard)") from exc
    accumulator = EventAccumulator(str(p), size_guidance={"scalars": 0})
    try:
        accumulator.Reload()
    except Exception as exc:
        raise ValueError(f"{p} cannot be read as a TensorBoard event file "
                         f"({type(exc).__name__}: {exc}); pass another log with --log") from exc
    tags = list(accumulator.Tags().get("scalars", []))
    tag = _pick([t for t in tags if t != "epoch"], column, p, "scalar tag")
    events = accumulator.Scalars(tag)
    steps = np.array([e.step for e in events], float)
    values = np.array([e.value for e in events], float)
    note = "by step (no epoch scalar logged)"
    if "epoch" in tags:
        marks = accumulator.Scalars("epoch")
        mark_steps = np.array([m.step for m in marks], float)
        mark_epochs = np.array([m.value for m in marks], float)
        order = np.argsort(mark_steps, kind="stable")
        mark_steps, mark_epochs = mark_steps[order], mark_epochs[order]
        index = np.searchsorted(mark_steps, steps, side="right") - 1
        index = np.clip(index, 0, len(mark_steps) - 1)
        x = mark_epochs[index]
        x, values, averaged = _per_epoch(x, values)
        note = "steps mapped to epochs by the epoch scalar" + (
            f", up to {averaged} values per epoch averaged" if averaged > 1 else "")
        return x, values, tag, note
    x, values, _ = _per_epoch(steps, values)
    return x, values, tag, note


def curves_summary(curve: LossCurve) -> Dict[str, object]:
    """A JSON-able description of a curve (for ``info`` and reports)."""
    return {"path": curve.source, "column": curve.column, "rows": len(curve),
            "first_epoch": float(curve.epochs[0]) if len(curve) else None,
            "first_loss": float(curve.loss[0]) if len(curve) else None,
            "last_loss": float(curve.loss[-1]) if len(curve) else None,
            "offset": curve.offset, "note": curve.note}
