"""Continuation across a series: search each checkpoint from its neighbours' fixed points.

Checkpoints are analyzed independently, each from states sampled on its own trajectories. A
fixed point whose basin none of those trajectories entered is then missed at one checkpoint and
found at the next, which the event rules would read as a birth or a saddle-node that never
happened. Since nearby weights have nearby fixed points, the fixed points of checkpoint k − 1 and
k + 1 are good initial states for checkpoint k (numerical continuation in the training epoch).

:func:`continue_series` does this after the first pass: for every checkpoint, the finder starts
from its neighbours' fixed points (cheap: a few dozen states); when that finds a fixed point the
checkpoint's analysis lacks (farther than ``rtol · scale`` from all of them), the checkpoint is
analyzed again with those states added to its own, so ghosts and topology stay consistent. The
pass repeats on the neighbours of the checkpoints that changed (a point found at k can seed
k + 1, so a point propagates one checkpoint per pass) until nothing new is found, at most
``max_passes`` times (default: as many as there are checkpoints, enough to carry a point across
the whole series). Checkpoints whose exhaustive low-rank search was complete (no box left
unresolved: every fixed point is certified) are skipped: there is no fixed point left to find.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from numpy.typing import NDArray

__all__ = ["neighbour_seeds", "continue_series", "continuation_task"]

logger = logging.getLogger(__name__)


def neighbour_seeds(results: Sequence[Any], k: int) -> NDArray[np.float64]:
    """The fixed points (not slow points) of the checkpoints next to ``results[k]``.

    Returns
    -------
    ndarray of shape (m, n_states)
    """
    n = results[k].n_states
    parts = []
    for j in (k - 1, k + 1):
        if 0 <= j < len(results) and results[j].n_states == n:
            fp = results[j].fixed_points
            parts.append(fp.x[fp.kind != "slow"].reshape(-1, n))
    return np.concatenate(parts) if parts else np.zeros((0, n))


def _has_new_points(found, known: NDArray[np.float64], scale: float, rtol: float) -> bool:
    x = found.x[found.kind != "slow"]
    if not len(x):
        return False
    if not len(known):
        return True
    d = np.min(np.linalg.norm(x[:, None, :] - known[None, :, :], axis=2), axis=1)
    return bool(np.any(d > rtol * scale))


def continuation_task(load: Callable[[], Any], result, seeds: NDArray[np.float64], settings,
                      device: str, rtol: float = 0.02):
    """Re-analyze one checkpoint from its neighbours' points when they reveal a new fixed point.

    Parameters
    ----------
    load : callable
        Returns the checkpoint's model (nn.Module or Dynamics).
    result : EpochAnalysis
        The checkpoint's first analysis.
    seeds : ndarray of shape (m, n_states)
    settings : EpochSettings
    device : str
    rtol : float
        Relative distance beyond which a found point is new.

    Returns
    -------
    EpochAnalysis or None
        None when the seeds found nothing new.
    """
    import warnings

    import torch

    from fixedpoints import find_fixed_points

    from .epoch import analyze_dynamics
    from .sources import as_dynamics

    if not len(seeds):
        return None
    model = load()
    dynamics = as_dynamics(model, input=settings.input, time=settings.time, device=device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        found = find_fixed_points(dynamics, seeds, settings.finder)
    fp = result.fixed_points
    known = fp.x[fp.kind != "slow"]
    if not _has_new_points(found, known, result.scale, rtol):
        return None
    module = model if isinstance(model, torch.nn.Module) else None
    again = analyze_dynamics(dynamics, settings, epoch=result.epoch, loss=result.loss,
                             source=result.source, module=module, extra_initial=seeds)
    info = {**again.info, "continuation_seeds": int(len(seeds))}
    return replace(again, info=info, source_stamp=result.source_stamp)


def _complete(result: Any) -> bool:
    """Whether the checkpoint's fixed points come from an exhaustive search that left no box
    unresolved (:mod:`fixedpoints.complete`): continuation can add nothing there."""
    fp = result.fixed_points
    unresolved = getattr(fp, "unresolved", None)
    return bool(getattr(fp, "complete", False)) and (unresolved is None or len(unresolved) == 0)


def continue_series(results: Sequence[Any], run_task: Callable[[List[Tuple]], Any],
                    make_args: Callable[[int, NDArray[np.float64]], Tuple],
                    max_passes: Optional[int] = None, start: Optional[Sequence[int]] = None
                    ) -> Tuple[List[Any], Dict[str, Any]]:
    """Continuation passes over a series of epoch analyses (see the module docstring).

    Parameters
    ----------
    results : sequence of EpochAnalysis, in epoch order
    run_task : callable
        ``run_task(list of argument tuples)`` yields ``(position, EpochAnalysis, None or an
        exception)`` for :func:`continuation_task` (serially or in workers).
    make_args : callable
        ``make_args(k, seeds)``: the argument tuple of :func:`continuation_task` for result k.
    max_passes : int, optional
        Default: the number of results.
    start : sequence of int, optional
        Positions searched in the first pass (default: all; a re-run passes those next to a
        change since a converged earlier run, :func:`analysis.reuse.continuation_start`).

    Returns
    -------
    list of EpochAnalysis
        The results, re-analyzed where continuation found new points.
    dict
        ``{"passes": int, "reanalyzed_epochs": [...], "failed": {epoch: reason},
        "converged": bool, "skipped_complete": int}`` (converged: the last pass found nothing
        new; skipped_complete: checkpoints left alone because their exhaustive search was
        complete, counted once per pass).
    """
    current = list(results)
    report: Dict[str, Any] = {"passes": 0, "reanalyzed_epochs": [], "failed": {},
                              "skipped_complete": 0}
    todo = (list(range(len(current))) if start is None else sorted(set(start))) \
        if len(current) > 1 else []
    for _ in range(len(current) if max_passes is None else int(max_passes)):
        if not todo:
            break
        report["passes"] += 1
        # a checkpoint whose exhaustive search was complete has no fixed point beyond the
        # certified ones (seeds would find the same roots again): nothing to continue there
        complete = {k for k in todo if _complete(current[k])}
        report["skipped_complete"] += len(complete)
        seeds = {k: neighbour_seeds(current, k) for k in todo if k not in complete}
        positions = [k for k, found in seeds.items() if len(found)]
        args = [make_args(k, seeds[k]) for k in positions]
        changed: List[int] = []
        for j, value in run_task(args):
            k = positions[j]
            if isinstance(value, BaseException):
                report["failed"][int(current[k].epoch)] = f"{type(value).__name__}: {value}"
                logger.warning("continuation at epoch %s failed: %s", current[k].epoch, value)
            elif value is not None:
                current[k] = value
                changed.append(k)
                report["reanalyzed_epochs"].append(int(value.epoch))
        todo = sorted({j for k in changed for j in (k - 1, k + 1) if 0 <= j < len(current)})
    report["reanalyzed_epochs"] = sorted(set(report["reanalyzed_epochs"]))
    report["converged"] = not todo
    return current, report


