"""What one checkpoint's analysis will cost, checked before it starts.

The per-epoch analysis (:func:`analysis.analyze_checkpoint`) holds about one ``n × n`` matrix
per start of its search at the peak and solves ``n × n`` systems, so its memory grows as
``starts · n²`` and its time as ``starts · n²`` to ``starts · n³``: a 5000-unit GRU with the
default 128 starts (256 with the segment seeds) wants about 50 GB and most of an hour.
:func:`estimate_cost` gives the figures (constants calibrated with ``bench/resources.py``);
:func:`check_cost` refuses a model whose estimate exceeds the memory this process may use, with
one line naming the option that allows it anyway (``--max-states``, ``max_states=``), and logs a
warning when it will be slow.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Optional

__all__ = ["CostEstimate", "ResourceLimits", "TooLarge", "estimate_cost", "check_cost",
           "available_memory", "state_count", "SLOW_SECONDS"]

logger = logging.getLogger(__name__)

#: A checkpoint whose analysis is estimated to take longer than this gets a warning.
SLOW_SECONDS = 120.0

#: Bytes resident besides the ``n × n`` matrices (the batch's vectors, the model).
_BASE_BYTES = 64 * 2 ** 20
#: ``n × n`` float64 matrices alive per start at the peak. Measured with bench/resources.py
#: (256 starts, one thread): 0.85-1.05 per start at n = 512 and 1024, leaky RNN and GRU.
_MATRICES_PER_START = 1.0
#: Seconds per start per ``n²`` and per ``n³``, fitted to the same runs (13-21 s at n = 512,
#: 72-90 s at n = 1024); the polish batch shrinks as n grows, so n² dominates up to n ~ 5000.
_SECONDS_PER_SQUARE = 3e-7
_SECONDS_PER_CUBE = 4.5e-11
#: Fixed seconds per checkpoint (sampling, topology, deduplication).
_BASE_SECONDS = 0.3


class TooLarge(ValueError):
    """A checkpoint whose analysis would not fit in memory (the message says how to allow it)."""


@dataclass(frozen=True)
class CostEstimate:
    """Estimated peak memory and time of one checkpoint's analysis.

    Attributes
    ----------
    n_states : int
    starts : int
        Initial states of the fixed-point search (``n_initial`` plus segment seeds).
    bytes : float
        Peak memory, in bytes.
    seconds : float
        Wall time on one thread.
    """

    n_states: int
    starts: int
    bytes: float
    seconds: float

    def __post_init__(self) -> None:
        if self.n_states < 0 or self.starts < 0:
            raise ValueError(f"n_states={self.n_states}, starts={self.starts}: pass counts >= 0")

    def describe(self) -> str:
        """``"about 21 GB and 40 min"``."""
        return f"about {_size(self.bytes)} and {_duration(self.seconds)}"


@dataclass(frozen=True)
class ResourceLimits:
    """What a checkpoint's analysis may use.

    Attributes
    ----------
    max_states : int, optional
        Models with at most this many states are analyzed whatever the memory estimate says
        (the user's explicit permission); None: refuse what does not fit.
    share : float
        Fraction of the machine's available memory one analysis may use (``1 / jobs`` when
        several run side by side).
    warn_slow : bool
        Log a warning when the analysis will take longer than :data:`SLOW_SECONDS` (a series
        warns once, before it starts, rather than once per checkpoint).
    free : int, optional
        Bytes available when the run started (a series measures once, so that its own
        workers' memory does not count against later checkpoints); None: measure at each check.
    """

    max_states: Optional[int] = None
    share: float = 1.0
    warn_slow: bool = True
    free: Optional[int] = None

    def __post_init__(self) -> None:
        if self.max_states is not None and (isinstance(self.max_states, bool)
                                            or not isinstance(self.max_states, int)
                                            or self.max_states < 1):
            raise ValueError(f"max_states={self.max_states!r} is invalid; pass a positive "
                             f"integer or None")
        if not (isinstance(self.share, (int, float)) and 0 < self.share <= 1):
            raise ValueError(f"share={self.share!r} is invalid; pass a fraction in (0, 1]")
        if self.free is not None and (not isinstance(self.free, int) or self.free < 0):
            raise ValueError(f"free={self.free!r} is invalid; pass bytes >= 0 or None")


def _size(n: float) -> str:
    for unit, scale in (("TB", 2 ** 40), ("GB", 2 ** 30), ("MB", 2 ** 20)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n / 2 ** 10:.3g} kB"


def _duration(s: float) -> str:
    if s >= 7200:
        return f"{s / 3600:.3g} h"
    if s >= 120:
        return f"{s / 60:.3g} min"
    return f"{s:.2g} s"


def available_memory(device: Optional[str] = None) -> Optional[int]:
    """Bytes available to new allocations: the GPU's free memory for a CUDA ``device``, else
    the machine's (``MemAvailable`` on Linux); None when unknown."""
    if device is not None and str(device).startswith("cuda"):
        try:
            import torch
            return int(torch.cuda.mem_get_info(torch.device(device))[0])
        except Exception:  # noqa: BLE001 - no CUDA here: the device check reports that
            return None
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):
        return None


def state_count(model: Any) -> int:
    """Number of states of a model or :class:`fixedpoints.Dynamics` (as the analysis sees it)."""
    from fixedpoints import Dynamics, from_module

    if isinstance(model, Dynamics):
        return int(model.n_states)
    return int(from_module(model).n_states)


def estimate_cost(n_states: int, settings: Any = None) -> CostEstimate:
    """Estimated peak memory and time of one checkpoint's analysis.

    Parameters
    ----------
    n_states : int
        States of the model.
    settings : EpochSettings, optional
        The analysis settings (defaults when omitted): ``n_initial``, ``segment_seeds`` and
        the finder's ``batch_size`` set the number of starts held at once.

    Returns
    -------
    CostEstimate
    """
    from .epoch import make_settings

    settings = make_settings(settings)
    n = int(n_states)
    starts = int(settings.n_initial + 32 * settings.segment_seeds)
    batch = min(starts, int(settings.finder.batch_size))
    memory = _BASE_BYTES + _MATRICES_PER_START * batch * 8.0 * n * n
    seconds = _BASE_SECONDS + starts * (_SECONDS_PER_CUBE * n ** 3 + _SECONDS_PER_SQUARE * n * n)
    return CostEstimate(n, starts, float(memory), float(seconds))


def check_cost(model: Any, settings: Any = None, *, limits: Optional[ResourceLimits] = None,
               source: str = "", free: Optional[int] = None,
               device: Optional[str] = None) -> CostEstimate:
    """Refuse a checkpoint whose analysis cannot fit in memory; warn when it will be slow.

    Parameters
    ----------
    model : nn.Module or fixedpoints.Dynamics, or int
        The model (or its number of states).
    settings : EpochSettings, optional
    limits : ResourceLimits, optional
    source : str
        The file, for the messages.
    free : int, optional
        Available bytes (default: ``limits.free``, else :func:`available_memory` of
        ``device``).
    device : str, optional
        Where the analysis runs (a CUDA device is limited by its own memory).

    Returns
    -------
    CostEstimate

    Raises
    ------
    TooLarge
        The estimate exceeds the memory this analysis may use and ``limits.max_states`` does not
        allow a model of this size.
    """
    limits = limits or ResourceLimits()
    n = int(model) if isinstance(model, int) else state_count(model)
    cost = estimate_cost(n, settings)
    where = f"{source}: " if source else ""
    allowed = limits.max_states is not None and n <= limits.max_states
    if free is None:
        free = limits.free if limits.free is not None else available_memory(device)
    if free is not None and not allowed:
        budget = free * limits.share
        if cost.bytes > budget:
            shared = "" if limits.share >= 1 else f" (1/{round(1 / limits.share)} per job)"
            raise TooLarge(
                f"{where}a {n}-state model needs {cost.describe()} per checkpoint with "
                f"{cost.starts} starts, but {_size(budget)} of memory is free{shared}; pass "
                f"--max-states {n} (max_states={n}) to analyze it anyway, or lower --n-initial "
                f"or --jobs")
    if limits.warn_slow and cost.seconds > SLOW_SECONDS:
        logger.warning("%sa %d-state model: the analysis will take %s per checkpoint "
                       "(%d starts; lower --n-initial to go faster)", where, n,
                       _duration(cost.seconds), cost.starts)
    return cost

