"""Certificates of a low-rank network's fixed points from the proof in κ space.

:func:`~fixedpoints.lowrank.solve_reduced` proves, for each root κ* of
``G(κ) = κ − R tanh(c + L κ)``, an enclosure E ∋ κ* and a box Z ⊇ E in which κ* is the only
root. Every fixed point of the network is ``x = tanh(c + L κ)`` with ``κ = R x`` a root of G,
so the n-dimensional certificates of :func:`~fixedpoints.certify.certify_points` follow
without an n-dimensional Krawczyk test (same meaning, max-norm, outward rounded):

* ``error_bound``: ``x* = tanh(c + L κ*)`` lies in the enclosure ``X = tanh(c + L E)``, so
  ``‖x* − x̂‖∞ ≤ max(x̂ − X.lo, X.hi − x̂)``;
* ``certified_radius``: with ``s_j = Σ_i |R_ji|``, any fixed point y in the cube ``x̂ ± ρ`` has
  ``R y ∈ R x̂ ± s ρ``; when that box lies in a box where the root is unique, ``R y = κ*`` and
  ``y = x*``: the cube holds at most one fixed point, and exactly one once ``ρ ≥ error_bound``.
  The boxes are Z and, tried on a ladder ``ρ = scale · 10^-i``, ``Y = R x̂ ± s ρ`` itself,
  proved by the K-dimensional Krawczyk test ``K(Y) ⊂ int Y`` (cheap: K ≤ 3). ρ is the largest
  radius proved, capped at ``scale`` (NaN when it is below the error bound);
* ``stability_certified``: the spectrum reduces to the K eigenvalues of ``R diag(d) L``
  (:func:`fixedpoints.certify._reduced_stability`), with d over the enclosure of tanh' on
  ``c + L E``.

This holds only when the enclosure that :func:`~fixedpoints.certify.certify_points` would use
is the form's own network (same L, R and an exact drive c; the truncated SVD of a torch RNN's
dense ``W_hh`` is not) and agrees with the model's Jacobian at the point
(:data:`~fixedpoints.certify.CONSISTENCY_RTOL`); otherwise everything is NaN/False and the
caller falls back to the n-dimensional test. A point gets all three certificates or none.
"""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np
from numpy.typing import NDArray

from .certify import CONSISTENCY_RTOL, _reduced_stability, enclosure
from .enclosures import RateEnclosure
from .intervals import Interval, down, imatmul, tanh_slope, up
from .lowrank import LowRankForm, _affine, _krawczyk

__all__ = ["certify_roots", "matches_form"]


def matches_form(enc, form: LowRankForm) -> bool:
    """Whether the enclosure ``enc`` is exactly the network of ``form`` (tanh, same factors,
    a point drive equal to the form's bias)."""
    if not isinstance(enc, RateEnclosure) or enc.factors is None or enc.nonlinearity != "tanh":
        return False
    left, right = enc.factors
    return (bool(np.array_equal(left, form.left)) and bool(np.array_equal(right, form.right))
            and bool(np.array_equal(enc.drive.lo, form.bias))
            and bool(np.array_equal(enc.drive.hi, form.bias)))


def certify_roots(dynamics, form: LowRankForm, x: NDArray[np.float64],
                  enclosure_kappa: NDArray[np.float64], uniqueness: NDArray[np.float64],
                  jacobian: NDArray[np.float64], *, scale: float = 1.0,
                  n_unstable: Optional[NDArray[np.int_]] = None,
                  ladder: int = 10) -> Dict[str, np.ndarray]:
    """Certificates of the fixed points ``x`` of certified roots of ``form`` (module docstring).

    Parameters
    ----------
    dynamics : Dynamics
    form : LowRankForm
        The low-rank form of ``dynamics`` at its bound input.
    x : ndarray of shape (k, n_states)
        The reported fixed points (``form.states(κ)``).
    enclosure_kappa, uniqueness : ndarray of shape (k, K, 2)
        Each root's proved enclosure E and uniqueness box Z (:class:`ReducedSolution`).
    jacobian : ndarray of shape (k, n_states, n_states)
        The model's own velocity Jacobian at ``x`` (the consistency check).
    scale : float
        State spread; ρ never exceeds it.
    n_unstable : ndarray of shape (k,), optional
        The reported indices; the stability verdict is certified only where the proved index
        equals it.
    ladder : int
        Radii ``scale · 10^-i`` (i < ladder) tried for a larger uniqueness box than Z.

    Returns
    -------
    dict with ``certified_radius`` (k,), ``error_bound`` (k,), ``stability_certified`` (k,),
    ``eigen_radius`` (k,): NaN/False for every point not fully certified.
    """
    x = np.asarray(x, dtype=np.float64)
    k = len(x)
    out = {"certified_radius": np.full(k, np.nan), "error_bound": np.full(k, np.nan),
           "stability_certified": np.zeros(k, dtype=bool), "eigen_radius": np.full(k, np.nan)}
    enc = enclosure(dynamics)
    if k == 0 or enc is None or not matches_form(enc, form):
        return out
    assert isinstance(enc, RateEnclosure)
    # the enclosure's Jacobian s (diag(d) W − I) at x, in floating point (its interval
    # version's midpoint differs by round-off, far below the tolerance)
    slope = 1.0 - np.tanh((x @ form.right.T) @ form.left.T + form.bias) ** 2
    j0_mid = enc.scale * (slope[:, :, None] * enc.weight - np.eye(form.n_states))
    jac = np.asarray(jacobian, dtype=np.float64)
    gap = np.linalg.norm((j0_mid - jac).reshape(k, -1), axis=1)
    consistent = gap <= CONSISTENCY_RTOL * (1.0 + np.linalg.norm(jac.reshape(k, -1), axis=1))
    # (1) x* ∈ tanh(c + L E)
    e = Interval(enclosure_kappa[..., 0], enclosure_kappa[..., 1])
    image = _affine(form.left, e, form.bias).tanh()
    error = up(np.maximum(up(x - image.lo), up(image.hi - x)).max(1))
    # (2) R (x ± ρ) ⊆ Z
    rx = imatmul(form.right, x[..., None])
    rx_lo, rx_hi = rx.lo[..., 0], rx.hi[..., 0]
    s = form.box().hi  # Σ_i |R_ji|, rounded up
    room = np.minimum(down(uniqueness[..., 1] - rx_hi), down(rx_lo - uniqueness[..., 0]))
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = np.where(s > 0, down(np.maximum(room, 0.0) / s), np.inf)
    rho = np.minimum(np.where((room >= 0).all(1), rho.min(1), -1.0), float(scale))
    rho = np.maximum(rho, _grown_radius(form, x, rx, s, float(scale), ladder))
    proved = consistent & np.isfinite(error) & (rho >= error) & (rho > 0)
    # (3) the index from the K×K problem over tanh' on c + L E
    rows = np.flatnonzero(proved)
    if len(rows) == 0:
        return out
    verdict, index, eps = _reduced_stability(enc, tanh_slope(image[rows]), dynamics.time)
    if n_unstable is not None:
        verdict = verdict & (index == np.asarray(n_unstable)[rows])
    rows = rows[verdict]
    out["certified_radius"][rows] = rho[rows]
    out["error_bound"][rows] = error[rows]
    out["stability_certified"][rows] = True
    out["eigen_radius"][rows] = eps[verdict]
    return out


def _grown_radius(form: LowRankForm, x: np.ndarray, rx: Interval, s: np.ndarray, scale: float,
                  ladder: int) -> np.ndarray:
    """The largest ``ρ = scale · 10^-i`` (i < ladder) for which ``Y = R x ± s ρ`` (outward)
    passes ``K(Y) ⊂ int Y`` (one root in Y), per point; -1 where none does. Shape (k,)."""
    k = len(x)
    best = np.full(k, -1.0)
    if ladder <= 0 or k == 0:
        return best
    radii = scale * 10.0 ** -np.arange(ladder, dtype=float)  # (L,)
    reach = up(s[None, None, :] * radii[None, :, None])  # (1, L, K) ≥ s ρ
    lo = down(rx.lo[:, None, :, 0] - reach).reshape(k * ladder, -1)
    hi = up(rx.hi[:, None, :, 0] + reach).reshape(k * ladder, -1)
    centre = np.clip(np.repeat(x @ form.right.T, ladder, axis=0), lo, hi)
    with np.errstate(all="ignore"):
        ky = _krawczyk(form, Interval(lo, hi), centre)
    inside = ((ky.lo > lo) & (ky.hi < hi)).all(1).reshape(k, ladder)
    first = np.argmax(inside, axis=1)  # radii decrease: the first pass is the largest
    have = inside.any(1)
    best[have] = radii[first[have]]
    return best
