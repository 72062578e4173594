"""The latent speed's minima of a low-rank tanh network: every local minimum of q, in K dims.

With ``W = L R`` (rank K ≤ 3, :func:`~fixedpoints.low_rank_form`) the slowest state with latent
``κ = R r`` is ``lift(κ)`` (:func:`~fixedpoints.ghost_certificates.lift`) and its speed is
``G(κ)ᵀ (R Rᵀ)⁻¹ G(κ)`` (up to the leak's factor), ``G(κ) = κ − R tanh(c + L κ)``. So every local
minimum of q in state space is the lift of a local minimum of that K-dimensional function: for a
given latent the slowest state is its lift, and a minimum anywhere else could be lowered within
its latent's slice. Fixed points (``G = 0``), slow points and ghosts alike.

:func:`latent_minima` finds them on a grid over the box ``|κ_j| ≤ Σ_i |R_ji|`` that holds every
root (the grid's local minima, slowest first), polishes them by Newton in κ and lifts them. The
answer depends on the system only, not on sampled states. Its limits: a minimum narrower than
the grid's spacing (1/4000, 1/200 and 1/40 of the box per side for K = 1, 2, 3) can fall between
grid points, and one outside the root box is not looked for (there ``G ≈ κ`` dominates).

The finder (its candidates for low-rank networks, :mod:`fixedpoints.finder`) and the ghost
detector (its starts, :mod:`fixedpoints.ghosts`) both ask for them: the last forms' minima are
kept (:data:`_CACHED_FORMS`), so one checkpoint's grid is evaluated once.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Tuple

import numpy as np

from .ghost_certificates import kappa_speed_minimum, lift
from .lowrank import LowRankForm

__all__ = ["latent_minima"]

#: Grid points per latent dimension, by rank (4001, 201², 41³ points).
_KAPPA_GRID = {1: 4001, 2: 201, 3: 41}

#: Most Newton iterations in κ for a grid minimum. Those at a minimum stop after a few; one that
#: crawls through a region where the κ-Hessian is not definite needs more (a series
#: checkpoint's: 50 left it 0.03 from stationary, 80 reached it), and each κ iteration costs
#: about a tenth of the state-space Newton iteration that would otherwise finish the job.
_SEED_STEPS = 200

#: Grid minima polished and kept per form (the slowest; callers take a prefix).
_MAX_MINIMA = 64

#: Forms whose minima are kept (the finder and the ghost detector of one checkpoint ask in turn).
_CACHED_FORMS = 2

#: Grid entries (points × states) evaluated at once by _grid_speed: one buffer of 2 MiB, reused
#: (a fresh 32 MiB array per call cost more in page faults than its tanh).
_GRID_CHUNK = 1 << 18

_cache: "OrderedDict[Tuple[bytes, ...], np.ndarray]" = OrderedDict()


def latent_minima(form: LowRankForm, max_seeds: int) -> np.ndarray:
    """The lifted local minima of the latent speed, slowest first (module docstring).

    Parameters
    ----------
    form : LowRankForm
        Of rank 1, 2 or 3.
    max_seeds : int
        At most this many (the slowest grid minima, at most :data:`_MAX_MINIMA`).

    Returns
    -------
    ndarray of shape (m, n_states)
        The states, those whose polish left float64's range dropped; a new array.
    """
    key = (form.left.tobytes(), form.right.tobytes(), form.bias.tobytes(),
           str(form.left.shape).encode())
    seeds = _cache.get(key)
    if seeds is None:
        seeds = _polished_minima(form)
        _cache[key] = seeds
        while len(_cache) > _CACHED_FORMS:
            _cache.popitem(last=False)
    else:
        _cache.move_to_end(key)
    seeds = seeds[:max(int(max_seeds), 0)]
    return seeds[np.all(np.isfinite(seeds), axis=1)].copy()


def _polished_minima(form: LowRankForm) -> np.ndarray:
    """The :data:`_MAX_MINIMA` slowest grid minima, polished in κ and lifted, shape (m, n)."""
    from scipy.ndimage import minimum_filter

    k = form.rank
    metric = np.linalg.pinv(form.right @ form.right.T)
    box = form.box()
    axes = [np.linspace(box.lo[j], box.hi[j], _KAPPA_GRID[k]) for j in range(k)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, k)
    value = _grid_speed(form, grid, metric).reshape((_KAPPA_GRID[k],) * k)
    # a grid point is a local minimum when no neighbour (of the 3^K - 1) is lower
    local = value <= minimum_filter(value, size=3, mode="constant", cval=np.inf)
    flat = np.flatnonzero(local.ravel())
    flat = flat[np.argsort(value.ravel()[flat], kind="stable")][:_MAX_MINIMA]
    if not flat.size:
        return np.zeros((0, form.n_states))
    with np.errstate(all="ignore"):
        kappa, _ = kappa_speed_minimum(form, grid[flat], metric=metric, steps=_SEED_STEPS)
        return lift(form, kappa)


def _grid_speed(form: LowRankForm, grid: np.ndarray, metric: np.ndarray) -> np.ndarray:
    """``G(κ)ᵀ M G(κ)`` at each row of ``grid`` (b, K), shape (b,); the same numbers as
    ``form.residual``, computed in place in a reused buffer."""
    n = form.n_states
    speed = np.empty(len(grid))
    rows = max(1, _GRID_CHUNK // max(n, 1))
    buffer = np.empty((min(rows, len(grid)), n))
    for start in range(0, len(grid), rows):
        kappa = grid[start:start + rows]
        pre = np.matmul(kappa, form.left.T, out=buffer[:len(kappa)])
        pre += form.bias
        g = kappa - np.tanh(pre, out=pre) @ form.right.T
        speed[start:start + rows] = np.einsum("bi,ij,bj->b", g, metric, g)
    return speed
