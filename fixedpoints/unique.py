"""De-duplication of converged points, keeping the slowest point of each cluster."""
from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

__all__ = ["deduplicate"]


def deduplicate(x: np.ndarray, speed: np.ndarray, tol: float) -> np.ndarray:
    """Indices of unique points: the slowest point of each cluster of radius ``tol``.

    Points are visited from slowest to fastest; each point not yet claimed becomes a
    representative and claims every unclaimed point within ``tol`` of it (Euclidean).

    Parameters
    ----------
    x : ndarray of shape (k, n)
    speed : ndarray of shape (k,)
        q at each point (lower is kept).
    tol : float
        Cluster radius, in state units.

    Returns
    -------
    ndarray of shape (m,), int
        Indices into ``x`` of the kept points, slowest first.
    """
    x = np.asarray(x, dtype=float)
    k = len(x)
    if k == 0:
        return np.zeros(0, dtype=int)
    order = np.argsort(np.asarray(speed), kind="stable")
    tree = cKDTree(x)
    neighbours = tree.query_ball_point(x[order], r=tol)
    claimed = np.zeros(k, dtype=bool)
    kept = []
    for rank, i in enumerate(order):
        if claimed[i]:
            continue
        kept.append(i)
        claimed[neighbours[rank]] = True
    return np.asarray(kept, dtype=int)
