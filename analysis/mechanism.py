"""How a network holds state, one label per checkpoint (after Kurtkaya, Dinc et al. 2025).

:func:`mechanism_of` reads an epoch's topology (or, without one, its fixed points, slow regions
and ghosts) and returns the first label whose condition holds, in this order:

``limit_cycle``
    A stable periodic orbit (a topology node of kind ``limit_cycle``): the state is held in an
    oscillation, whatever the fixed points are (typically one unstable focus).
``slow_manifold``
    A slow region (line attractor / slow manifold, a ``slow_region`` node): memory along a
    continuum of slow states.
``fixed_point_attractors``
    Two or more stable fixed points: memory in discrete attractors.
``ghost``
    A ghost (the slow remnant of a saddle-node): the state is held transiently by slow passage.
``none``
    None of these (one stable point, or nothing): no state-holding structure.
"""
from __future__ import annotations

from typing import Any, Dict, List

import numpy as np

__all__ = ["MECHANISMS", "mechanism_of", "mechanism_counts", "mechanism_timeline"]

#: The labels, in the order they are tested.
MECHANISMS = ("limit_cycle", "slow_manifold", "fixed_point_attractors", "ghost", "none")


def mechanism_counts(result) -> Dict[str, int]:
    """The counts :func:`mechanism_of` decides from: stable cycles, slow regions, stable fixed
    points and ghosts of an epoch analysis (anything with ``fixed_points``, ``ghosts`` and
    ``topology``)."""
    topo = getattr(result, "topology", None)
    fp = result.fixed_points
    ghosts = getattr(result, "ghosts", None)
    if topo is not None:
        kinds = np.asarray(topo.node_kind)
        return {"limit_cycle": int(np.sum(kinds == "limit_cycle")),
                "slow_region": int(np.sum(kinds == "slow_region")),
                "stable": int(np.sum(kinds == "stable")),
                "ghost": int(np.sum(kinds == "ghost"))}
    return {"limit_cycle": 0, "slow_region": len(fp.slow_regions),
            "stable": int(np.sum(np.asarray(fp.kind) == "stable")),
            "ghost": 0 if ghosts is None else int(len(ghosts.x))}


def mechanism_of(result) -> str:
    """The mechanism label of one epoch analysis; one of :data:`MECHANISMS`.

    Parameters
    ----------
    result : analysis.EpochAnalysis
        Or anything with ``fixed_points``, ``ghosts`` and ``topology`` (None allowed).

    Returns
    -------
    str
    """
    c = mechanism_counts(result)
    if c["limit_cycle"]:
        return "limit_cycle"
    if c["slow_region"]:
        return "slow_manifold"
    if c["stable"] >= 2:
        return "fixed_point_attractors"
    if c["ghost"]:
        return "ghost"
    return "none"


def mechanism_timeline(results) -> List[Dict[str, Any]]:
    """``[{"epoch": e, "mechanism": label}, ...]`` for a sequence of epoch analyses."""
    return [{"epoch": int(r.epoch), "mechanism": mechanism_of(r)} for r in results]

