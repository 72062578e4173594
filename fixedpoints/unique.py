"""De-duplication of converged points, keeping the slowest point of each cluster."""
from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

__all__ = ["deduplicate"]


def deduplicate(x: np.ndarray, speed: np.ndarray, tol) -> np.ndarray:
    """Indices of unique points: the slowest point of each cluster of radius ``tol``.

    Points are visited from slowest to fastest; each point not yet claimed becomes a
    representative and claims every unclaimed point within its radius (Euclidean).

    Parameters
    ----------
    x : ndarray of shape (k, n)
    speed : ndarray of shape (k,)
        q at each point (lower is kept).
    tol : float or ndarray of shape (k,)
        Cluster radius in state units, or one radius per point (used by the point that claims).

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
    radius = tol[order] if np.ndim(tol) else tol
    neighbours = tree.query_ball_point(x[order], r=radius)
    claimed = np.zeros(k, dtype=bool)
    kept = []
    for rank, i in enumerate(order):
        if claimed[i]:
            continue
        kept.append(i)
        claimed[neighbours[rank]] = True
    return np.asarray(kept, dtype=int)
