"""The Python API: analyze a whole checkpoint series (the CLI calls only this and
:func:`analysis.analyze_checkpoint`).

Example
-------
>>> from analysis import analyze_series                                   # doctest: +SKIP
>>> result = analyze_series("runs/flipflop", jobs=2, out="runs/flipflop_analysis")  # doctest: +SKIP
>>> result.events[0].kind, result.drop_epoch                              # doctest: +SKIP
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .epoch import EpochAnalysis, EpochSettings, analyze_checkpoint, make_settings

__all__ = ["SeriesAnalysis", "FailedEpoch", "analyze_series", "analyze_checkpoint"]


@dataclass(frozen=True)
class FailedEpoch:
    """A checkpoint that could not be analyzed.

    Attributes
    ----------
    epoch : int or None
        Its epoch, when known.
    source : str
        The file (or model description).
    reason : str
        What went wrong and what to do.
    """

    epoch: Optional[int]
    source: str
    reason: str


@dataclass(frozen=True)
class SeriesAnalysis:
    """Per-epoch analyses of a checkpoint series and the restructuring between them.

    Attributes
    ----------
    results : tuple of EpochAnalysis
        One per analyzed checkpoint, in epoch order.
    events : tuple of analysis.events.RestructuringEvent
        Restructuring events between consecutive analyzed checkpoints (each with
        ``epoch_before``, ``epoch_after``, ``kind``, ``points``, ``detail``; ``lead_time`` is
        ``drop_epoch - epoch_after`` when a drop was found: positive = before the drop).
    tracks : tuple of analysis.matching.Track
        Each point followed across epochs.
    failed : tuple of FailedEpoch
    loss : analysis.learning.LossCurve or None
        The training loss read beside the checkpoints (or given).
    drop : analysis.learning.Drop or None
        The abrupt drop of the loss, when one was found.
    settings : EpochSettings
    options : dict
        Event, drop and run options used.
    """

    results: Tuple[EpochAnalysis, ...]
    events: Tuple[Any, ...]
    tracks: Tuple[Any, ...]
    failed: Tuple[FailedEpoch, ...]
    loss: Any
    drop: Any
    settings: EpochSettings
    options: Dict[str, Any] = field(default_factory=dict)

    @property
    def epochs(self) -> List[int]:
        """Analyzed epochs, in order."""
        return [r.epoch for r in self.results]

    @property
    def drop_epoch(self) -> Optional[float]:
        """Epoch of the abrupt loss drop, or None."""
        return None if self.drop is None else self.drop.epoch

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, i) -> EpochAnalysis:
        return self.results[i]

    def result_at(self, epoch: int) -> EpochAnalysis:
        """The analysis at a given epoch (KeyError if it was not analyzed)."""
        raise NotImplementedError

    def to_dir(self, out) -> Path:
        """Write ``summary.json``, ``events.csv`` and ``epochs/epoch_XXXX.{json,npz}`` to ``out``."""
        raise NotImplementedError

    @classmethod
    def from_dir(cls, out) -> "SeriesAnalysis":
        """Read a directory written by :meth:`to_dir`."""
        raise NotImplementedError


def analyze_series(path_or_series, model=None, *, jobs: int = 1, scheduler=None,
                   device: str = "cpu", progress: bool = False, strict: bool = False,
                   out=None, force: bool = False, log=None, log_column: Optional[str] = None,
                   drop=None, events=None, localize: bool = False, interpolate=None,
                   **options) -> SeriesAnalysis:
    """Analyze every checkpoint of a series and track restructuring across epochs.

    Parameters
    ----------
    path_or_series : str, path, checkpoints.CheckpointSeries, or sequence of (epoch, model)
        A directory of checkpoints, a series, or pairs of epoch and model/Dynamics (synthetic).
    model : optional
        Passed to ``CheckpointSeries.from_dir`` (a model or factory to load state dicts into).
    jobs : int, default 1
        Worker processes (via ``analysis.execution.run_tasks``).
    scheduler : str or dask client, optional
    device : str, default "cpu"
    progress : bool, default False
    strict : bool, default False
        Raise on the first bad checkpoint instead of recording it in ``.failed``.
    out : path, optional
        Write results there; epochs already analyzed there with the same settings are reused.
    force : bool, default False
        Re-analyze even what ``out`` already holds.
    log : path, optional
        Training log (train_log.csv or .npz with ``loss_history``); looked up beside the
        checkpoints when omitted.
    log_column : str, optional
        Column (CSV) or key (.npz) of the loss.
    drop : analysis.learning.DropOptions or dict, optional
    events : analysis.events.EventOptions or dict, optional
    localize : bool, default False
        Bisect along the interpolated weights to locate each event between its checkpoints.
    interpolate : callable, optional
        ``interpolate(epoch_before, epoch_after, alpha) -> model or Dynamics`` for synthetic
        series (``nn.Module`` checkpoints are interpolated through their state dicts).
    **options
        Fields of :class:`EpochSettings`.

    Returns
    -------
    SeriesAnalysis
    """
    raise NotImplementedError
