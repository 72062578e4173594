"""Training logs and abrupt learning: read the loss curve, find the abrupt drop.

Reading (:func:`read_training_log`): see :mod:`analysis.training_logs` (CSV, Lightning
``metrics.csv``, ``.npz`` with ``loss_history``, TensorBoard event files; ``log_offset``).

Abrupt drop (:func:`detect_drop`), with the parameters of :class:`DropOptions`
Rule A, ``method="changepoint"`` (the default): a change of slope of the log-loss.
    1. z = log(loss) is smoothed with a running median over ``smooth`` epochs (a fraction of
       the log's length when < 1, else a count), which removes per-batch noise but keeps a step.
    2. The **rate of fall** r(t) = −dz/dt is the slope of a least-squares line through the
       2·``slope_window`` + 1 logged epochs around t (a Savitzky–Golay derivative). A smooth
       exponential decay is a straight line in z: its rate is constant and it has no change
       point. Rates are per *logged* epoch (position in the log).
    3. Candidates are the stretches where r is fast enough that a fall of ``min_size`` could
       happen within ``max_duration`` (r ≥ −log(1 − min_size) / max_duration); in each, the
       **steepest point** is where r peaks. The **onset** is the last epoch before it where r is
       back below ``edge`` times the peak (the end of the plateau), the **end** the first after
       it (at most ``max_duration`` after the onset: a fall that goes on slowly is cut there).
    4. The fall qualifies when (a) the onset leaves room for a plateau of ``min_plateau`` epochs
       before it, (b) its size ``1 − loss(end)/loss(onset)`` is at least ``min_size`` and its
       log-size at least ``noise_factor`` times the noise of z on the plateau (1.4826 · MAD of
       z minus its running median over the ``min_plateau`` epochs before the onset: an
       oscillating loss after the drop, as at an oscillatory minimum, does not count), and (c)
       its mean rate is at least ``contrast`` times the plateau's (the log-loss decline over
       the ``min_plateau`` epochs before the onset, per epoch), and
       (d) it stays down: over the ``window`` logged epochs after the end the median log-loss
       keeps at least half the fall (a dip that recovers, or a fall in the log's last
       ``window`` epochs, is not reported).
       The first qualifying fall in time is reported: ``Drop.epoch`` is its steepest point,
       ``start_epoch`` the onset, ``end_epoch`` the end, ``size`` the relative fall.
    A halving step, a 15% step within 2% of training after a plateau, and a shoulder spread over
    5% of training all qualify; a smooth exponential decay and a noisy plateau do not. For a
    smooth (logistic) shoulder, onset and end at 10% of the peak rate cover about 70% of the
    whole fall, so ``size`` is then smaller than the plateau-to-floor ratio.

Rule B, ``method="half"`` (the former rule, kept as an option): a fall below half the plateau.
    1. The loss (not its log) is smoothed with a running median over ``smooth`` epochs.
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
from typing import Any, Dict, Optional

import numpy as np
from numpy.typing import NDArray
from scipy.ndimage import maximum_filter1d, median_filter, minimum_filter1d

from fixedpoints.options import resolve_options

# The reading half lives in analysis.training_logs; its names stay importable from here.
from .training_logs import LossCurve, find_training_log, read_training_log

__all__ = ["LossCurve", "DropOptions", "Drop", "read_training_log", "find_training_log",
           "local_slope", "detect_drop", "lead_time", "DROP_METHODS"]

#: Rules of :func:`detect_drop`.
DROP_METHODS = ("changepoint", "half")


@dataclass(frozen=True)
class DropOptions:
    """Parameters of :func:`detect_drop` (see the module docstring).

    Values below 1 for ``min_plateau``, ``window``, ``smooth``, ``slope_window`` and
    ``max_duration`` are fractions of the log's length; values of 1 or more are numbers of
    logged epochs.

    Attributes
    ----------
    method : {"changepoint", "half"}, default "changepoint"
        ``"changepoint"``: the abrupt change of slope of the log-loss (rule A); ``"half"``: the
        loss falls below ``fraction`` of a flat plateau (rule B, the former default).
    min_plateau : float, default 0.05
        Both rules: length of the plateau before the drop.
    smooth : float, default 0.01
        Both rules: running-median window.
    min_size : float, default 0.1
        Rule A: smallest relative fall ``1 − loss(end) / loss(onset)``.
    max_duration : float, default 0.1
        Rule A: longest fall (onset to end).
    contrast : float, default 4.0
        Rule A: the fall's mean rate (in log-loss per epoch) must be at least this many times
        the plateau's.
    edge : float, default 0.1
        Rule A: onset and end are where the rate of fall is back below ``edge`` times its peak.
    slope_window : float, default 0.005
        Rule A: half-width of the local linear fit that gives the rate of fall.
    noise_factor : float, default 3.0
        Rule A: the fall must exceed this many times the noise of the log-loss.
    window : float, default 0.05
        Rule A: the loss must stay down this many epochs after the fall's end. Rule B: the loss
        must cross within this many epochs after the plateau and stay below.
    fraction : float, default 0.5
        Rule B: the loss must fall below ``fraction`` times the plateau level.
    flatness : float, default 0.5
        Rule B: plateau band ``max ≤ (1 + flatness) · min`` of the smoothed loss.
    """

    method: str = "changepoint"
    min_plateau: float = 0.05
    smooth: float = 0.01
    min_size: float = 0.1
    max_duration: float = 0.1
    contrast: float = 4.0
    edge: float = 0.1
    slope_window: float = 0.005
    noise_factor: float = 3.0
    window: float = 0.05
    fraction: float = 0.5
    flatness: float = 0.5

    def __post_init__(self):
        if self.method not in DROP_METHODS:
            raise ValueError(f"DropOptions.method={self.method!r} is invalid; pass one of "
                             f"{list(DROP_METHODS)}")
        for f in fields(self):
            if f.name == "method":
                continue
            value = getattr(self, f.name)
            if (isinstance(value, bool) or not isinstance(value, (int, float))
                    or not math.isfinite(value) or value <= 0):
                raise ValueError(f"DropOptions.{f.name}={value!r} is invalid; pass a positive "
                                 f"number")
        for name in ("fraction", "min_size", "edge"):
            if not getattr(self, name) < 1:
                raise ValueError(f"DropOptions.{name}={getattr(self, name)!r} is invalid; pass "
                                 f"a number in (0, 1), e.g. 0.5 for a fall below half the "
                                 f"plateau")

    @classmethod
    def make(cls, value=None) -> "DropOptions":
        """From None, a DropOptions, or a dict of its fields (unknown names raise)."""
        return resolve_options(cls, value, name="drop")

    def to_dict(self) -> Dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Drop:
    """An abrupt drop of the loss.

    Attributes
    ----------
    epoch : float
        The epoch lead times are measured to: the steepest point of the fall (rule A), the first
        epoch below ``fraction · plateau_level`` (rule B).
    start_epoch : float
        The onset: the end of the plateau, where the fall began.
    plateau_start_epoch : float
        First epoch of the plateau window that qualified.
    plateau_level : float
        Median smoothed loss on the plateau.
    after_level : float
        Smoothed loss at the end of the fall (rule A), median over the window after the crossing
        (rule B).
    end_epoch : float
        Where the fall ended (rule A), the crossing (rule B).
    size : float
        Relative fall ``1 − after_level / loss at the onset`` (rule A), ``1 − after_level /
        plateau_level`` (rule B).
    method : str
        The rule that found it.
    """

    epoch: float
    start_epoch: float
    plateau_start_epoch: float
    plateau_level: float
    after_level: float
    end_epoch: float = math.nan
    size: float = math.nan
    method: str = "half"

    @property
    def onset_epoch(self) -> float:
        """The end of the plateau (``start_epoch``)."""
        return self.start_epoch

    @property
    def steepest_epoch(self) -> float:
        """The epoch of the steepest fall (rule A; the crossing for rule B)."""
        return self.epoch

    def to_dict(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {f.name: float(getattr(self, f.name)) for f in fields(self)
                               if f.name != "method"}
        out["method"] = self.method
        return out


def _count(value: float, length: int) -> int:
    return max(1, int(round(value * length)) if value < 1 else int(value))


def detect_drop(epochs, loss=None, options: Optional[DropOptions] = None,
                **overrides) -> Optional[Drop]:
    """Find the first abrupt drop of a loss curve (see the module docstring for the rules).

    Parameters
    ----------
    epochs : array_like of shape (T,) or LossCurve
    loss : array_like of shape (T,), optional
        Needed unless ``epochs`` is a LossCurve.
    options : DropOptions, optional
        ``overrides`` replace single fields (``window=200``, ``method="half"``).

    Returns
    -------
    Drop or None
        None when no plateau is followed by an abrupt fall.
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
    if len(y) < 8:
        return None
    if opts.method == "half":
        return _half_plateau_drop(e, y, opts)
    return _changepoint_drop(e, y, opts)


def local_slope(z: NDArray[np.float64], width: int) -> NDArray[np.float64]:
    """Least-squares slope of ``z (T,)`` over a centred window of odd ``width`` < T.

    What ``scipy.signal.savgol_filter(z, width, 1, deriv=1, mode="interp")`` computes (a line
    fitted to each window; the first and last ``width // 2`` values are the slope of the line
    fitted to the first and last ``width`` samples), without importing ``scipy.signal``, whose
    import costs more than a re-run of a small series.

    Returns
    -------
    ndarray of shape (T,)
    """
    z = np.asarray(z, dtype=float)
    if width % 2 != 1 or not 1 < width <= len(z):
        raise ValueError(f"width={width} is invalid; pass an odd width in 3..{len(z)}")
    half = width // 2
    offsets = np.arange(-half, half + 1, dtype=float)
    weights = offsets / np.sum(offsets ** 2)
    out = np.empty_like(z)
    out[half:len(z) - half] = np.correlate(z, weights, mode="valid")
    out[:half] = np.dot(z[:width], weights)
    out[len(z) - half:] = np.dot(z[len(z) - width:], weights)
    return out


def _changepoint_drop(e: NDArray[np.float64], y: NDArray[np.float64],
                      opts: DropOptions) -> Optional[Drop]:
    """Rule A: an abrupt change of slope of the smoothed log-loss after a slow stretch."""
    T = len(y)
    positive = y[y > 0]
    if not len(positive):
        return None
    z = np.log(np.maximum(y, 1e-12 * float(np.max(positive))))
    smooth = _count(opts.smooth, T)
    zs = median_filter(z, size=smooth, mode="nearest") if smooth > 1 else z.copy()
    half = _count(opts.slope_window, T)
    width = 2 * half + 1
    if width >= T:
        return None
    rate = -local_slope(zs, width)   # fall per logged epoch
    residual = z - zs
    plateau = _count(opts.min_plateau, T)
    longest = _count(opts.max_duration, T)
    hold = max(width, _count(opts.window, T))
    min_fall = -math.log1p(-opts.min_size)
    # a fall of min_fall within `longest` epochs has a peak rate of at least min_fall / longest
    fast = rate >= min_fall / longest
    starts = np.flatnonzero(fast & ~np.concatenate([[False], fast[:-1]]))
    for s in starts:
        run_end = s + int(np.argmin(fast[s:])) if not fast[s:].all() else T
        peak_at = s + int(np.argmax(rate[s:run_end]))
        peak = float(rate[peak_at])
        low = rate <= opts.edge * peak
        before = np.flatnonzero(low[:peak_at])
        after = np.flatnonzero(low[peak_at:])
        onset = int(before[-1]) if len(before) else 0
        end = min(peak_at + int(after[0]) if len(after) else T - 1, onset + longest, T - 1)
        if onset < plateau or end <= peak_at or end + hold > T:
            continue
        fall = float(zs[onset] - zs[end])
        calm = residual[onset - plateau: onset + 1]
        noise = 1.4826 * float(np.median(np.abs(calm - np.median(calm))))
        if float(np.median(z[end: end + hold])) > zs[onset] - 0.5 * fall:
            continue  # it did not stay down (or the log ends before we can tell)
        if fall < min_fall or fall < opts.noise_factor * noise:
            continue
        plateau_rate = max(0.0, float(zs[onset - plateau] - zs[onset])) / plateau
        if fall / max(end - onset, 1) < opts.contrast * plateau_rate:
            continue
        level = float(np.exp(np.median(zs[onset - plateau: onset + 1])))
        return Drop(epoch=float(e[peak_at]), start_epoch=float(e[onset]),
                    plateau_start_epoch=float(e[onset - plateau]), plateau_level=level,
                    after_level=float(np.exp(zs[end])), end_epoch=float(e[end]),
                    size=float(-math.expm1(-fall)), method="changepoint")
    return None


def _half_plateau_drop(e: NDArray[np.float64], y: NDArray[np.float64],
                       opts: DropOptions) -> Optional[Drop]:
    """Rule B: the smoothed loss falls below ``fraction`` of a flat plateau and stays there."""
    T = len(y)
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
                    after_level=after_level, end_epoch=float(e[cross]),
                    size=1.0 - after_level / level, method="half")
    return None


def lead_time(drop_epoch: Optional[float], event_epoch: float) -> Optional[float]:
    """Signed lead time ``drop_epoch − event_epoch`` (positive: the event came first)."""
    if drop_epoch is None:
        return None
    return float(drop_epoch) - float(event_epoch)
