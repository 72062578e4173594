"""Certificates: what is proved about each fixed point and each ghost.

**Fixed points** (:func:`certify_points`). With an interval enclosure of the velocity v and its
Jacobian (:mod:`fixedpoints.enclosures`) the Krawczyk operator

    K(X) = x̂ − A v(x̂) + (I − A J_v(X)) (X − x̂),     A ≈ J_v(x̂)⁻¹,

over the cube ``X = x̂ ± ρ`` satisfies: every zero of v in X lies in K(X), and ``K(X) ⊂ int X``
proves that X holds exactly one zero (Krawczyk 1969; Moore 1977; Neumaier 1990, Thm 5.1.8).
Radii ``ρ`` are tried on a ladder from a few Newton steps up; per point we report

* ``certified_radius``: the largest ρ proved (max-norm): the cube ``|x − x̂|_∞ ≤ ρ`` holds
  exactly one fixed point; NaN when nothing could be proved;
* ``error_bound``: ``max |K(X) − x̂|`` at the smallest ρ proved: the true fixed point is within
  this distance (max-norm) of the reported one.

**Stability** (``stability_certified``). The Jacobian at the true fixed point lies in the
interval matrix ``J(E)`` over its enclosure E. With ``M`` its midpoint, computed eigenpairs
``M V ≈ V Λ`` and ``W ≈ V⁻¹``, ``θ = ‖I − W V‖ < 1`` proves V invertible with
``‖V⁻¹‖ ≤ ‖W‖/(1 − θ)``, and every eigenvalue of every matrix in ``J(E)`` lies within
``ε = ‖V⁻¹‖ (‖M V − V Λ‖ + ‖rad J(E)‖ ‖V‖)`` of some computed eigenvalue (Bauer–Fike applied
to ``Λ + V⁻¹(MV − VΛ) + V⁻¹ Δ V``; norms are Frobenius upper bounds of the 2-norm, rounding
errors included by the a-priori bounds of :mod:`fixedpoints.intervals`). When no disc meets the
stability boundary (Re λ = 0 in continuous time, |λ| = 1 in discrete time), shrinking the
perturbation to 0 moves no eigenvalue across it, so the number of unstable eigenvalues, and
with it the kind, is proved. Where ε is useless (a repeated eigenvalue, as the zeros of a
low-rank Jacobian, can come with a nearly singular computed V, depending on the LAPACK build),
Gershgorin's discs of the interval matrix (rows or columns) inside the stable region still
prove every eigenvalue stable. For leaky low-rank networks the spectrum is ``s(μ − 1)`` for the K
eigenvalues μ of ``R diag(tanh') L`` and ``−s`` otherwise, so only a K×K problem is bounded.

**Ghosts** (:func:`exclusion_radius`). Over a cube ``X = g ± ρ`` around a ghost, the
enclosure of v (the natural one intersected with the mean-value form
``v(g) + J_v(X)(X − g)``) missing 0 in one coordinate proves X holds no fixed point. For
low-rank models the complete search gives a second proof: every fixed point is
``tanh(c + L κ)`` with κ in a certified or unresolved box, and the max-norm distance from g to
the enclosure of each such image bounds how far the nearest fixed point is.

What is NOT proved: slow points (q > 0 minima) are not certified as anything; models without an
enclosure (stacked layers, user modules without ``rate_form``/``low_rank_form``) get NaN;
the library tanh/exp are assumed accurate to 64 ulp (see :mod:`fixedpoints.intervals`).
"""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np
import torch
from numpy.typing import NDArray

from .intervals import Interval, down, gamma, imatmul, point, up
from .enclosures import Enclosure, RateEnclosure
from .lowrank import scaled_gram

__all__ = ["enclosure", "certify_points", "exclusion_radius", "reduced_exclusion_radius",
           "eigen_discs"]

#: Relative agreement required between an enclosure and the model's own Jacobian at a point
#: before anything is certified with it (guards against an enclosure of another system).
CONSISTENCY_RTOL = 1e-8


def enclosure(dynamics) -> Optional[Enclosure]:
    """The interval enclosure of ``dynamics`` at its bound input, or None.

    Read from ``dynamics.enclosure_source`` (set by :func:`fixedpoints.from_module`), a callable
    ``u (n_inputs,) ndarray -> Enclosure or None``.
    """
    source = getattr(dynamics, "enclosure_source", None)
    if source is None:
        return None
    try:
        enc = source(dynamics.input.detach().cpu().double().numpy())
    except ValueError:  # e.g. a leak outside (0, 1]: no enclosure, nothing certified
        return None
    if enc is not None and (enc.n_states != dynamics.n_states or enc.time != dynamics.time):
        return None
    return enc


def _cols(x: Interval) -> Interval:
    return Interval(x.lo[..., None], x.hi[..., None])


def _rows(x: Interval) -> Interval:
    return Interval(x.lo[..., 0], x.hi[..., 0])


def _inverse(mats: np.ndarray) -> np.ndarray:
    """Approximate inverses one matrix at a time (NaN where singular)."""
    out = np.full_like(mats, np.nan)
    for i, m in enumerate(mats):
        try:
            out[i] = np.linalg.inv(m)
        except np.linalg.LinAlgError:
            pass
    return out


def _krawczyk(enc: Enclosure, x: np.ndarray, a: np.ndarray, av: Interval, rho: np.ndarray):
    """K(X) over cubes ``x ± rho`` (rho (b,)). Returns (K, X)."""
    box = Interval(down(x - rho[:, None]), up(x + rho[:, None]))
    jac = enc.jacobian(box)
    contraction = np.eye(x.shape[1]) - imatmul(a, jac)
    offset = box - x
    kx = (point(x) - av) + _rows(imatmul(contraction, _cols(offset)))
    return kx, box


def certify_points(dynamics, x: NDArray[np.float64], *, scale: float = 1.0,
                   n_unstable: Optional[NDArray[np.int_]] = None,
                   growth: float = 1000.0, max_levels: int = 6) -> Dict[str, np.ndarray]:
    """Krawczyk certificates and stability verdicts for candidate fixed points ``x``.

    Parameters
    ----------
    dynamics : Dynamics
    x : ndarray of shape (k, n_states)
    scale : float
        State spread; ρ never exceeds it.
    n_unstable : ndarray of shape (k,), optional
        The reported indices; the stability verdict is certified only where the proved index
        equals it.
    growth : float
        Ratio between successive radii tried.
    max_levels : int
        Radii tried per point.

    Returns
    -------
    dict with ``certified_radius`` (k,), ``error_bound`` (k,), ``stability_certified`` (k,),
    ``eigen_radius`` (k,) (the Bauer–Fike radius ε, NaN when not computed).
    """
    x = np.asarray(x, dtype=np.float64)
    k = len(x)
    out = {"certified_radius": np.full(k, np.nan), "error_bound": np.full(k, np.nan),
           "stability_certified": np.zeros(k, dtype=bool), "eigen_radius": np.full(k, np.nan)}
    enc = enclosure(dynamics)
    if enc is None or k == 0:
        return out
    with torch.no_grad():
        jac_dyn = dynamics.jacobian(dynamics.states(x)).detach().cpu().double().numpy()
    v0 = enc.velocity(point(x))
    j0 = enc.jacobian(point(x))
    j0_mid = 0.5 * j0.lo + 0.5 * j0.hi
    gap = np.linalg.norm((j0_mid - jac_dyn).reshape(k, -1), axis=1)
    consistent = gap <= CONSISTENCY_RTOL * (1.0 + np.linalg.norm(jac_dyn.reshape(k, -1), axis=1))
    a = _inverse(jac_dyn)
    ok = consistent & np.isfinite(a).all((1, 2))
    idx = np.flatnonzero(ok)
    if len(idx) == 0:
        return out
    av = _rows(imatmul(a[idx], _cols(v0[idx])))
    step = np.maximum(np.abs(av.lo), np.abs(av.hi)).max(1)
    rho = np.maximum(2.0 * step, 1e-15 * (1.0 + np.abs(x[idx]).max(1)))
    best = np.full(len(idx), np.nan)
    error = np.full(len(idx), np.nan)
    enclosure_lo = np.full((len(idx), x.shape[1]), np.nan)
    enclosure_hi = np.full((len(idx), x.shape[1]), np.nan)
    alive = np.ones(len(idx), dtype=bool)
    for _ in range(max_levels):
        live = np.flatnonzero(alive & (rho <= scale))
        if len(live) == 0:
            break
        sel = idx[live]
        kx, box = _krawczyk(enc, x[sel], a[sel], av[live], rho[live])
        inside = ((kx.lo > box.lo) & (kx.hi < box.hi)).all(1)
        win = live[inside]
        best[win] = rho[win]
        first = win[np.isnan(error[win])]
        pick = np.isin(win, first)
        error[first] = up(np.maximum(x[idx[first]] - kx.lo[inside][pick],
                                     kx.hi[inside][pick] - x[idx[first]]).max(1))
        enclosure_lo[first] = kx.lo[inside][pick]
        enclosure_hi[first] = kx.hi[inside][pick]
        # a point that fails at a radius stops growing; one that never passed gets one more try
        failed = live[~inside]
        retry = failed[np.isnan(best[failed]) & (rho[failed] < 1e3 * step[failed] + 1e-300)]
        alive[failed] = False
        alive[retry] = True
        rho[retry] = rho[retry] * 10.0
        rho[win] = rho[win] * growth
    out["certified_radius"][idx] = best
    out["error_bound"][idx] = error
    proved = np.flatnonzero(np.isfinite(error))
    if len(proved):
        enc_box = Interval(enclosure_lo[proved], enclosure_hi[proved])
        verdict, index, eps = _stability(enc, enc_box, dynamics.time)
        rows = idx[proved]
        if n_unstable is not None:
            verdict = verdict & (index == np.asarray(n_unstable)[rows])
        out["stability_certified"][rows] = verdict
        out["eigen_radius"][rows] = eps
    return out


# ---------------------------------------------------------------------------- stability
def eigen_discs(matrices: Interval):
    """Computed eigenvalues and one radius ε per matrix that holds every eigenvalue of every
    matrix in the interval matrix (module docstring).

    Parameters
    ----------
    matrices : Interval of shape (b, p, p)

    Returns
    -------
    vals : ndarray of shape (b, p), complex
    eps : ndarray of shape (b,)  (inf where the eigenvector matrix could not be inverted)
    """
    mid, rad = matrices.mid_rad()
    p = mid.shape[-1]
    vals_t, vecs_t = torch.linalg.eig(torch.as_tensor(mid))
    vals, vecs = vals_t.numpy().astype(complex), vecs_t.numpy().astype(complex)
    g = 4.0 * gamma(4 * p + 8)
    eps = np.full(len(mid), np.inf)
    det_ok = np.isfinite(vecs).all((1, 2))
    w = np.full_like(vecs, np.nan)
    for i in np.flatnonzero(det_ok):
        try:
            w[i] = np.linalg.inv(vecs[i])
        except np.linalg.LinAlgError:
            det_ok[i] = False
    abs_v = np.abs(vecs)

    def fro(m):
        return np.sqrt((np.abs(m) ** 2).sum((-2, -1)))

    res = mid @ vecs - vecs * vals[:, None, :]
    res_norm = fro(res) + g * (fro(np.abs(mid) @ abs_v) + fro(abs_v * np.abs(vals)[:, None, :]))
    theta = fro(np.eye(p) - w @ vecs) + g * (fro(np.abs(w) @ abs_v) + np.sqrt(p))
    good = det_ok & (theta < 1)
    inv_norm = fro(w) / (1.0 - np.where(good, theta, 0.0))
    e = inv_norm * (res_norm + fro(rad) * fro(vecs))
    eps[good] = e[good] * (1.0 + 1e-10) + 1e-300
    return vals, eps


def _stability(enc: Enclosure, box: Interval, time: str):
    """(verdict (b,), proved index (b,), ε (b,)) for enclosures ``box`` of fixed points."""
    if isinstance(enc, RateEnclosure) and enc.factors is not None and enc.nonlinearity == "tanh":
        return _reduced_stability(enc, enc.slopes(box), time)
    jac = enc.jacobian(box)
    if time == "discrete":
        jac = jac + np.eye(jac.shape[-1])
    vals, eps = eigen_discs(jac)
    if time == "continuous":
        margin, unstable = np.abs(vals.real), vals.real > 0
    else:
        margin, unstable = np.abs(np.abs(vals) - 1.0), np.abs(vals) > 1.0
    verdict = (margin > eps[:, None]).all(1)
    index = unstable.sum(1)
    # a repeated eigenvalue (the zeros of a low-rank J) may come with a nearly singular
    # eigenvector matrix, which leaves ε useless; Gershgorin's discs still prove stability
    stable = _gershgorin_stable(jac, time) & ~verdict
    verdict, index = verdict | stable, np.where(stable, 0, index)
    return verdict, index, eps


def _gershgorin_stable(matrices: Interval, time: str) -> np.ndarray:
    """Whether Gershgorin's discs (of rows and of columns) put every eigenvalue of every matrix
    in the interval matrices (b, p, p) strictly inside the stable region, from the entries'
    largest magnitudes (the sums' rounding bounded by ``γ_p``). Shape (b,)."""
    magnitude = np.maximum(np.abs(matrices.lo), np.abs(matrices.hi))
    grow = 1.0 + gamma(magnitude.shape[-1] + 2)
    proved = np.zeros(len(magnitude), dtype=bool)
    if time == "continuous":  # Re λ ≤ max_i (Re J_ii + Σ_{j≠i} |J_ij|)
        off = magnitude.copy()
        np.einsum("bii->bi", off)[...] = 0.0
        top = np.diagonal(matrices.hi, axis1=1, axis2=2)
        for radius in (off.sum(2), off.sum(1)):
            proved |= (up(top + up(radius * grow)) < 0).all(1)
    else:  # |λ| ≤ max_i Σ_j |J_ij|
        for total in (magnitude.sum(2), magnitude.sum(1)):
            proved |= (up(total * grow) < 1).all(1)
    return proved


def _reduced_stability(enc: RateEnclosure, slopes: Interval, time: str):
    """The verdict of :func:`_stability` for a leaky low-rank tanh network from an enclosure
    ``slopes`` (b, n) of tanh' at the fixed points: only the K eigenvalues μ of
    ``R diag(d) L`` are bounded (module docstring)."""
    assert enc.factors is not None
    left, right = enc.factors
    lo, hi = scaled_gram(right, slopes, left)  # R diag(d) L over the box
    mu, eps = eigen_discs(Interval(lo, hi))
    if time == "continuous":
        margin = np.abs(mu.real - 1.0)
        unstable = mu.real > 1.0
    else:
        alpha = enc.leak
        lam = 1.0 - alpha + alpha * mu
        margin = np.abs(np.abs(lam) - 1.0) / alpha
        unstable = np.abs(lam) > 1.0
    verdict = (margin > eps[:, None]).all(1)
    return verdict, unstable.sum(1), eps


# ---------------------------------------------------------------------------- ghosts
def _excludes(enc: Enclosure, g: np.ndarray, v_g: Interval, rho: np.ndarray) -> np.ndarray:
    box = Interval(down(g - rho[:, None]), up(g + rho[:, None]))
    natural = enc.velocity(box)
    mean_value = v_g + _rows(imatmul(enc.jacobian(box), _cols(box - g)))
    both = natural.intersect(mean_value)
    return ((both.lo > 0) | (both.hi < 0)).any(1)


def exclusion_radius(dynamics, x: NDArray[np.float64], *, scale: float = 1.0,
                     levels: int = 40, refine: int = 6,
                     known: Optional[NDArray[np.float64]] = None) -> np.ndarray:
    """Radii ρ (max-norm) such that the cube ``x_i ± ρ_i`` provably holds no fixed point.

    Parameters
    ----------
    dynamics : Dynamics
    x : ndarray of shape (k, n_states)
        Ghost locations.
    scale : float
        The largest radius tried.
    levels : int
        Halvings of the radius tried (from ``scale`` down).
    refine : int
        Bisection steps between the largest proved radius and the next one up.
    known : ndarray of shape (k,), optional
        Radii already proved another way (the low-rank search's, for ghosts): the caller keeps
        the larger of the two, so a point stops once no radius this search could still prove
        (at most twice the one tried) exceeds its known one. Where it stops, 0 is returned;
        ``max(result, known)`` is the same as without ``known``.

    Returns
    -------
    ndarray of shape (k,)
        0 where nothing could be proved (or the model has no enclosure).
    """
    x = np.asarray(x, dtype=np.float64)
    k = len(x)
    radius = np.zeros(k)
    enc = enclosure(dynamics)
    if enc is None or k == 0:
        return radius
    v_g = enc.velocity(point(x))
    todo = np.arange(k)
    rho = np.full(k, float(scale))
    floor = np.zeros(k) if known is None else np.nan_to_num(np.asarray(known, float), nan=0.0)
    for _ in range(levels):
        # a radius proved at ρ is refined below 2ρ at most: once 2ρ is within the known
        # radius, nothing this search proves can be the larger one
        todo = todo[~(2.0 * rho[todo] <= floor[todo])]
        if len(todo) == 0:
            break
        ok = _excludes(enc, x[todo], v_g[todo], rho[todo])
        radius[todo[ok]] = rho[todo[ok]]
        todo = todo[~ok]
        rho[todo] *= 0.5
    hi = np.where(radius > 0, 2.0 * radius, 0.0)
    have = np.flatnonzero((radius > 0) & (radius < scale))
    for _ in range(refine):
        if len(have) == 0:
            break
        trial = 0.5 * (radius[have] + hi[have])
        ok = _excludes(enc, x[have], v_g[have], trial)
        radius[have[ok]] = trial[ok]
        hi[have[~ok]] = trial[~ok]
    return radius


def reduced_exclusion_radius(form, x: NDArray[np.float64], boxes: NDArray[np.float64]):
    """Lower bound of the max-norm distance from each ``x_i`` to every fixed point of a
    low-rank network, from boxes in κ that hold all its roots.

    Parameters
    ----------
    form : LowRankForm
    x : ndarray of shape (k, n_states)
    boxes : ndarray of shape (m, K, 2)
        Certified root enclosures and unresolved boxes (together they hold every root).

    Returns
    -------
    ndarray of shape (k,)  (inf when there is no box: no fixed point at all)
    """
    x = np.asarray(x, dtype=np.float64)
    out = np.full(len(x), np.inf)
    if len(boxes) == 0 or len(x) == 0:
        return out
    kappa = Interval(boxes[..., 0], boxes[..., 1])
    pre = _rows(imatmul(form.left, _cols(kappa))) + form.bias
    image = pre.tanh()  # (m, n): every fixed point lies in one of these boxes
    for i, g in enumerate(x):
        gap = np.maximum(np.maximum(down(image.lo - g), down(g - image.hi)), 0.0)
        out[i] = float(gap.max(1).min())
    return out
