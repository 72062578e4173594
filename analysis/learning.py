"""Training logs and abrupt learning: read the loss curve, find the abrupt drop.

Reading (:func:`read_training_log`): see :mod:`analysis.training_logs` (CSV, Lightning
``metrics.csv``, ``.npz`` with ``loss_history``, TensorBoard event files; ``log_offset``).

Abrupt drop (:func:`detect_drop`), with the parameters of :class:`DropOptions`
    1. The loss is smoothed with a running median over ``smooth`` epochs (a fraction of the
       log's length when < 1, else a count), which removes per-batch noise but keeps a step.
    2. A **plateau** ending at epoch t is a stretch of at least ``min_plateau`` epochs (fraction
       of the length or count) before t over which the smoothed loss stays within a band:
       ``max ≤ (1 + flatness) · min``. Its level P is the median of the smoothed loss there.
    3. A **drop** follows it when the smoothed loss falls below ``fraction · P`` (default half)
       within ``window`` epochs after t (fraction of the length or count) and stays there: the
       median of the smoothed loss over the ``window`` epochs after the crossing is below
       ``fraction · P`` too.
    4. The first plateau/drop pair in time is reported; ``Drop.epoch`` is the first epoch where
       the smoothed loss is below ``fraction · P``, ``Drop.start_epoch`` the end of the plateau.

The **lead time** of an event is ``drop.epoch − event epoch``: positive when the event happens
before the drop, negative after it. Its sign is never assumed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Dict, Optional

import numpy as np

from fixedpoints.options import resolve_options
from scipy.ndimage import maximum_filter1d, median_filter, minimum_filter1d

# The reading half lives in analysis.training_logs; its names stay importable from here.
from .training_logs import LossCurve, find_training_log, read_training_log

__all__ = ["LossCurve", "DropOptions", "Drop", "read_training_log", "find_training_log",
           "detect_drop", "lead_time"]

@dataclass(frozen=True)
class DropOptions:
    """Parameters of :func:`detect_drop` (see the module docstring).

    Values below 1 for ``min_plateau``, ``window`` and ``smooth`` are fractions of the log's
    length; values of 1 or more are numbers of logged epochs.

    Attributes
    ----------
    min_plateau : float, default 0.05
    window : float, default 0.05
    fraction : float, default 0.5
        The loss must fall below ``fraction`` times the plateau level.
    flatness : float, default 0.5
        Plateau band: ``max ≤ (1 + flatness) · min`` of the smoothed loss.
    smooth : float, default 0.01
    """

    min_plateau: float = 0.05
    window: float = 0.05
    fraction: float = 0.5
    flatness: float = 0.5
    smooth: float = 0.01

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"DropOptions.{f.name}={value!r} is invalid; pass a positive "
                                 f"number")
        if not self.fraction < 1:
            raise ValueError(f"DropOptions.fraction={self.fraction!r} is invalid; pass a number in "
                             f"(0, 1), e.g. 0.5 for a fall below half the plateau")

    @classmethod
    def make(cls, value=None) -> "DropOptions":
        """From None, a DropOptions, or a dict of its fields (unknown names raise)."""
        return resolve_options(cls, value, name="drop")

    def to_dict(self) -> Dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Drop:
    """An abrupt drop of the loss.

    Attributes
    ----------
    epoch : float
        First epoch where the smoothed loss is below ``fraction · plateau_level``.
    start_epoch : float
        Last epoch before the crossing at which the smoothed loss was still inside the plateau's
        band (where the fall began).
    plateau_start_epoch : float
        First epoch of the plateau window that qualified.
    plateau_level : float
        Median smoothed loss on the plateau.
    after_level : float
        Median smoothed loss over the window after the crossing.
    """

    epoch: float
    start_epoch: float
    plateau_start_epoch: float
    plateau_level: float
    after_level: float

    def to_dict(self) -> Dict[str, float]:
        return {f.name: float(getattr(self, f.name)) for f in fields(self)}


def _count(value: float, length: int) -> int:
    return max(1, int(round(value * length)) if value < 1 else int(value))


def detect_drop(epochs, loss=None, options: Optional[DropOptions] = None,
                **overrides) -> Optional[Drop]:
    """Find the first abrupt drop of a loss curve (see the module docstring for the rule).

    Parameters
    ----------
    epochs : array_like of shape (T,) or LossCurve
    loss : array_like of shape (T,), optional
        Needed unless ``epochs`` is a LossCurve.
    options : DropOptions, optional
        ``overrides`` replace single fields (``window=200``).

    Returns
    -------
    Drop or None
        None when no plateau is followed by a fall below ``fraction`` of its level.
    """
    if isinstance(epochs, LossCurve):
        epochs, loss = epochs.epochs, epochs.loss
    opts = DropOptions.make(options)
    if overrides:
        opts = DropOptions.make({**opts.to_dict(), **overrides})
    e = np.asarray(epochs, dtype=float).reshape(-1)
    y = np.asarray(loss, dtype=float).reshape(-1)
    if len(e) != len(y):
        raise ValueError(f"epochs ({len(e)}) and loss ({len(y)}) differ in length")
    ok = np.isfinite(y) & np.isfinite(e)
    e, y = e[ok], y[ok]
    T = len(y)
    if T < 4:
        return None
    smooth = _count(opts.smooth, T)
    ys = median_filter(y, size=smooth, mode="nearest") if smooth > 1 else y.copy()
    plateau = _count(opts.min_plateau, T)
    window = _count(opts.window, T)
    if plateau + 1 >= T:
        return None
    # running max/min/level over the `plateau` points ending at each index
    origin = (plateau - 1) // 2  # shift so the window [i - plateau + 1, i] ends at i
    hi = maximum_filter1d(ys, plateau, mode="nearest", origin=origin)
    lo = minimum_filter1d(ys, plateau, mode="nearest", origin=origin)
    flat = (hi <= (1.0 + opts.flatness) * lo) & (lo > 0)
    flat[: plateau - 1] = False
    # necessary condition (hi >= level): the minimum over the next `window` points is below
    # fraction * hi; it keeps the exact check below to a handful of candidates
    ahead_min = np.full(T, np.inf)
    tail_min = minimum_filter1d(ys, window, mode="nearest", origin=-(window // 2))
    ahead_min[:-1] = tail_min[1:]
    candidates = np.flatnonzero(flat & (ahead_min < opts.fraction * hi))
    for t in candidates:
        level = float(np.median(ys[t - plateau + 1: t + 1]))
        threshold = opts.fraction * level
        ahead = ys[t + 1: t + 1 + window]
        below = np.flatnonzero(ahead < threshold)
        if not len(below):
            continue
        cross = t + 1 + int(below[0])
        after = ys[cross: cross + window]
        after_level = float(np.median(after))
        if after_level >= threshold:
            continue
        band_low = float(lo[t])
        still = np.flatnonzero(ys[t: cross] >= band_low)
        began = t + (int(still[-1]) if len(still) else 0)
        return Drop(epoch=float(e[cross]), start_epoch=float(e[began]),
                    plateau_start_epoch=float(e[t - plateau + 1]), plateau_level=level,
                    after_level=after_level)
    return None


def lead_time(drop_epoch: Optional[float], event_epoch: float) -> Optional[float]:
    """Signed lead time ``drop_epoch − event_epoch`` (positive: the event came first)."""
    if drop_epoch is None:
        return None
    return float(drop_epoch) - float(event_epoch)
