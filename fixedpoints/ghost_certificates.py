"""Ghost certificates: a radius around each ghost that provably holds no fixed point, and, for
low-rank models, the ghost located again in the reduced coordinates κ.

``exclusion_radius`` is the larger of two proofs (:mod:`fixedpoints.certify`): a lower bound of
|v| over the cube (interval enclosure of v), and, for low-rank networks, the distance to every
box of κ that can hold a root after the exhaustive search (certified roots and unresolved
boxes alike). 0 means nothing was proved.

In κ the leaky low-rank dynamics closes exactly: ``dκ/dt = R dr/dt = −G(κ)`` with
``G(κ) = κ − R tanh(c + L κ)`` (discrete time: the same up to the factor α). The ghost paper's
authors locate ghosts as minima of that κ-space speed ``|G(κ)|²``; we find the minimum nearest
to ``R g`` by Newton's method with the exact Hessian and lift it to the state space: over the
states with ``R r = κ`` the speed ``|tanh(c + L κ) − r|`` is smallest at
``r(κ) = tanh(c + L κ) + R⁺ G(κ)`` (``R⁺ = Rᵀ (R Rᵀ)⁻¹``), where it equals
``G(κ)ᵀ (R Rᵀ)⁻¹ G(κ)``. ``kappa_distance`` is the max-norm distance from ``r(κ)`` to the ghost
found in state space. For rank 1 the two minima are the same point (the weight is a scalar);
for rank 2 and 3 the authors' unweighted speed moves the minimum by a fraction of the ghost's
width (exactly 0 when R Rᵀ ∝ I).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Optional, Tuple

import numpy as np

from .certify import exclusion_radius, reduced_exclusion_radius
from .lowrank import MAX_RANK, LowRankForm, box_budget, low_rank_form, solve_reduced

__all__ = ["certify_ghosts", "kappa_speed_minimum", "lift"]


#: A seed of :func:`kappa_speed_minimum` stops once the step it took is below this many
#: float64 round-offs of its largest coordinate (later steps only move it by round-off).
_ROUNDOFF_STEPS = 4.0


def kappa_speed_minimum(form: LowRankForm, kappa0: np.ndarray, metric: Optional[np.ndarray] = None,
                        steps: int = 50) -> Tuple[np.ndarray, np.ndarray]:
    """Local minima of ``½ G(κ)ᵀ M G(κ)`` (M = I: the authors' κ-space speed) from ``kappa0``.

    Damped Newton with the exact Hessian, vectorized over the seeds; a seed stops once its step
    is below round-off (:data:`_ROUNDOFF_STEPS` ulps of its largest coordinate), the others go
    on for at most ``steps`` iterations.

    Parameters
    ----------
    form : LowRankForm
    kappa0 : ndarray of shape (b, K)
    metric : ndarray of shape (K, K), optional
        M; the identity when omitted.
    steps : int
        Most damped Newton iterations (exact Hessian; gradient steps where it is not
        positive).

    Returns
    -------
    kappa : ndarray of shape (b, K)
    grad_norm : ndarray of shape (b,)
        ``|∇|`` where each seed's last step started (≈ 0 at a minimum).
    """
    m = np.eye(form.rank) if metric is None else np.asarray(metric, dtype=float)
    kappa = np.array(kappa0, dtype=float, copy=True)

    def value(k):
        g = form.residual(k)
        return 0.5 * np.einsum("bi,ij,bj->b", g, m, g)

    grad_norm = np.zeros(len(kappa))
    active = np.arange(len(kappa))
    for _ in range(steps):
        if not active.size:
            break
        ka = kappa[active]
        t = form.states(ka)
        g = ka - t @ form.right.T  # form.residual, from the states already computed
        jac = np.eye(form.rank) - np.einsum("jn,bn,nk->bjk", form.right, 1.0 - t * t,
                                            form.left)
        mg = g @ m.T
        grad = np.einsum("bji,bj->bi", jac, mg)
        bend = -2.0 * t * (1.0 - t * t)  # tanh''
        w = (mg @ form.right) * bend  # (b, n): Σ_j (M G)_j R_ji tanh''_i
        hess = np.einsum("bji,jk,bkl->bil", jac, m, jac) - np.einsum(
            "bn,ni,nl->bil", w, form.left, form.left)
        step = _newton_steps(hess, grad)
        base = 0.5 * np.einsum("bi,ij,bj->b", g, m, g)
        scale = np.ones(len(ka))
        todo = np.arange(len(ka))
        for _ in range(30):  # backtracking: never increase the speed
            trial = ka[todo] + scale[todo, None] * step[todo]
            worse = value(trial) > base[todo] + 1e-300
            if not worse.any():
                break
            todo = todo[worse]
            scale[todo] *= 0.5
        taken = scale[:, None] * step
        kappa[active] = ka + taken
        grad_norm[active] = np.linalg.norm(grad, axis=1)
        still = ~(np.abs(taken).max(1) <= _ROUNDOFF_STEPS * np.finfo(float).eps
                  * np.abs(ka).max(1))
        active = active[still]
    return kappa, grad_norm


#: Where the κ-Hessian is not positive definite, the step divides the gradient's part along each
#: eigenvector by ``|λ|``, floored at this fraction of the largest ``|λ|`` (_newton_steps).
_CURVATURE_FLOOR = 1e-2


def _newton_steps(hess: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """``−H⁻¹ ∇`` where H is positive definite, else ``−V |Λ|⁻¹ Vᵀ ∇`` (``H = V Λ Vᵀ``, each
    ``|λ|`` at least :data:`_CURVATURE_FLOOR` of the largest); shape (b, K).

    The second is a descent direction that also moves down the directions of negative
    curvature, as far as their curvature allows (a "saddle-free" Newton step): with the
    gradient step ``−∇ / max|λ|`` it replaced, a seed crossing a non-convex region crawled for
    tens of iterations (on a series checkpoint, 80 iterations instead of a handful). Batched
    over the rows whose Hessian is finite; the others (and all, should LAPACK fail on the
    batch) one by one, ``−∇`` where LAPACK fails."""
    step = np.zeros_like(grad)
    finite = np.isfinite(hess).all((1, 2))
    rows = np.flatnonzero(finite)
    if rows.size:
        try:
            vals = np.linalg.eigvalsh(hess[rows])
            pd = vals[:, 0] > 0
            if pd.any():
                step[rows[pd]] = -np.linalg.solve(hess[rows[pd]],
                                                  grad[rows[pd], :, None])[..., 0]
            other = rows[~pd]
            if other.size:
                step[other] = _saddle_free_steps(hess[other], grad[other])
        except np.linalg.LinAlgError:
            finite[:] = False
    for i in np.flatnonzero(~finite):
        try:
            vals = np.linalg.eigvalsh(hess[i])
            step[i] = (-np.linalg.solve(hess[i], grad[i]) if vals[0] > 0
                       else _saddle_free_steps(hess[i:i + 1], grad[i:i + 1])[0])
        except np.linalg.LinAlgError:
            step[i] = -grad[i]
    return step


def _saddle_free_steps(hess: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """``−V |Λ|⁻¹ Vᵀ ∇`` for ``hess`` (b, K, K), ``grad`` (b, K) (:func:`_newton_steps`)."""
    vals, vecs = np.linalg.eigh(hess)
    size = np.abs(vals)
    size = np.maximum(size, _CURVATURE_FLOOR * np.maximum(size.max(1, keepdims=True), 1e-12))
    along = np.einsum("bji,bj->bi", vecs, grad) / size
    return -np.einsum("bij,bj->bi", vecs, along)


def lift(form: LowRankForm, kappa: np.ndarray) -> np.ndarray:
    """The slowest state with ``R r = κ``: ``tanh(c + L κ) + R⁺ G(κ)``, shape (b, n)."""
    pinv = np.linalg.pinv(form.right)  # (n, K)
    return form.states(kappa) + form.residual(kappa) @ pinv.T


def _known_roots_distance(form: LowRankForm, x: np.ndarray, fixed_points) -> Optional[np.ndarray]:
    """The reduced-search exclusion from a finder result that ran the exhaustive search: every
    fixed point is within ``error_bound`` of a reported point or in an ``unresolved`` box.
    None when the result cannot be used (no search, or a point without a certificate)."""
    if fixed_points is None or np.size(fixed_points.search_box) == 0:
        return None
    fixed = fixed_points.kind != "slow"
    bounds = fixed_points.error_bound[fixed]
    if not np.isfinite(bounds).all() or fixed_points.search_box.shape[0] != form.rank:
        return None
    out = reduced_exclusion_radius(form, x, fixed_points.unresolved)
    if fixed.any():
        gaps = np.abs(x[:, None, :] - fixed_points.x[fixed][None]).max(-1) - bounds[None]
        out = np.minimum(out, np.maximum(gaps.min(1) * (1 - 1e-12), 0.0))
    return out


def certify_ghosts(dynamics, ghosts, fixed_points=None, *, scale: Optional[float] = None):
    """Ghosts with ``exclusion_radius`` and (low-rank models) ``kappa``, ``kappa_distance``.

    Parameters
    ----------
    dynamics : Dynamics
    ghosts : Ghosts
    fixed_points : FixedPoints, optional
        The finder's result for the same system; when it ran the exhaustive search its
        certified points and unresolved boxes are reused instead of searching again.
    scale : float, optional
        Largest exclusion radius tried (default: the ghosts' ``scale``).

    Returns
    -------
    Ghosts
    """
    k = len(ghosts)
    if k == 0:
        return ghosts
    scale = float(ghosts.scale if scale is None else scale)
    updates = {}
    form = low_rank_form(dynamics)
    reduced = None
    if form is not None and form.rank <= MAX_RANK:
        reduced = _known_roots_distance(form, ghosts.x, fixed_points)
        if reduced is None:
            sol = solve_reduced(form, max_boxes=box_budget(form.n_states))
            boxes = np.concatenate([sol.enclosure, sol.unresolved])
            reduced = reduced_exclusion_radius(form, ghosts.x, boxes)
        reduced = np.minimum(reduced, np.finfo(float).max)
    # the state-space search only where it may beat the low-rank one's radius (known=)
    radius = exclusion_radius(dynamics, ghosts.x, scale=max(scale, 1e-12), known=reduced)
    if form is not None and reduced is not None:
        radius = np.maximum(radius, reduced)
        kappa, _ = kappa_speed_minimum(form, ghosts.x @ form.right.T)
        located = lift(form, kappa)
        updates["kappa"] = kappa
        updates["kappa_distance"] = np.abs(located - ghosts.x).max(1)
    return replace(ghosts, exclusion_radius=radius, **updates)
