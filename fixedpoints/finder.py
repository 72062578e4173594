"""Find fixed points and slow points by minimizing the speed q(x) = ½‖v(x)‖².

The search has four stages, all batched over points:

1. **First-order descent** (Adam on q) from every initial state, with per-point convergence so
   converged points stop costing, inside a box around the initial states so no point drifts to
   the saturated far field where every network looks slow.
2. **De-duplication** of the candidates (keeping the slowest of each cluster), so the expensive
   stage runs once per distinct point rather than once per initial state.
3. **Second-order polish**: batched Levenberg–Marquardt on v(x) = 0 with Jacobians from
   ``torch.func``. True fixed points converge quadratically to q at round-off (≤ 1e-20 relative
   to the system's speed scale in float64); slow points converge to local minima of q, where
   ∇q = J_vᵀ v = 0.
4. **Saddle seeding**: midpoints between pairs of the points found are polished too, which finds
   the saddles between attractors that trajectory-sampled states rarely start near.

The result is de-duplicated, linearized (eigenvalues of every point) and classified. Connected
sets of slow or fixed points (line attractors, slow manifolds, saturated plateaus) are reported as
:class:`~fixedpoints.results.SlowRegion` objects rather than as hundreds of points.

Tolerances are relative: distances to the spread of the initial states (``scale``), speeds to the
system's own speed scale ``q_scale = ½ (scale · σ)²`` with σ the RMS singular value of J_v over the
initial states. Scaling a vector field by 10 therefore changes no verdict.
"""
from __future__ import annotations

import logging
import time as _time
import warnings
from dataclasses import asdict, dataclass, fields
from typing import Optional

import numpy as np
import torch
from scipy.spatial import cKDTree

from .dynamics import Dynamics
from .linearize import EIG_RTOL, classify, jacobian as _jacobian_np, _native_spectrum
from .results import FinderStatus, FixedPoints, SlowRegion
from .unique import deduplicate

__all__ = ["FinderOptions", "find_fixed_points", "FixedPointError"]

log = logging.getLogger(__name__)


class FixedPointError(RuntimeError):
    """Raised by :func:`find_fixed_points` with ``throw=True`` when the search did not converge."""


@dataclass(frozen=True)
class FinderOptions:
    """Settings of :func:`find_fixed_points`. Every tolerance is relative (see module docstring).

    Parameters
    ----------
    max_iter : int
        Maximum first-order (Adam) iterations per point.
    lr : float
        Adam step size, as a fraction of the per-coordinate spread of the initial states.
    descent_rtol : float
        A point leaves the first-order stage once q ≤ descent_rtol · q_scale, or once q has not
        fallen by 1% over ``patience`` iterations.
    patience : int
        Iterations without progress before a point is handed to the polish.
    newton_steps : int
        Maximum Levenberg–Marquardt iterations.
    q_fixed_rtol : float, optional
        A point is fixed when q ≤ q_fixed_rtol · q_scale. Default 1e-20 in float64, 1e-9 in
        float32.
    slow_tol : float
        Slow points (local minima of q with q above the fixed tolerance) are kept when
        q ≤ slow_tol · q_scale.
    grad_rtol : float
        A slow point has converged when ‖J_vᵀ v‖ ≤ grad_rtol · ‖J_v‖₂ · ‖v‖ (v in J_v's left null
        space).
    tol_unique : float
        Points closer than tol_unique · scale are duplicates; the slowest is kept.
    box_margin : float
        The search stays inside the bounding box of the initial states widened by this fraction
        of its size on each side; points stuck on its wall are dropped as outliers.
    seed_midpoints : bool
        Also polish the midpoints of pairs of points found (finds saddles between attractors).
    max_midpoints : int
        At most this many midpoints (a random subset beyond it).
    slow_regions : bool
        Report connected sets of slow/fixed points as regions.
    min_region_points : int
        Smallest number of points that makes a region.
    marginal_rtol : float
        An eigenvalue is marginal when it is within marginal_rtol of the stability boundary
        (continuous: |Re λ| ≤ marginal_rtol · σ; discrete: ||λ| - 1| ≤ marginal_rtol).
    batch_size : int
        Points per batched Jacobian / solve (bounds memory at batch_size · n²).
    seed : int
        Seed for the random choices (midpoint subsets).
    throw : bool
        Raise :class:`FixedPointError` instead of warning when some points did not converge.
    """

    max_iter: int = 1000
    lr: float = 0.05
    descent_rtol: float = 1e-8
    patience: int = 50
    newton_steps: int = 40
    q_fixed_rtol: Optional[float] = None
    slow_tol: float = 1e-3
    grad_rtol: float = 1e-6
    tol_unique: float = 1e-3
    box_margin: float = 0.5
    seed_midpoints: bool = True
    max_midpoints: int = 1024
    slow_regions: bool = True
    min_region_points: int = 4
    marginal_rtol: float = 1e-3
    batch_size: int = 1024
    seed: int = 0
    throw: bool = False

    def __post_init__(self):
        positive_ints = ("batch_size", "min_region_points", "patience")
        non_negative_ints = ("max_iter", "newton_steps", "max_midpoints")
        positive_floats = ("lr", "descent_rtol", "slow_tol", "grad_rtol", "tol_unique",
                           "marginal_rtol")
        for name in positive_ints:
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name}={value!r} is invalid; pass a positive integer")
        for name in non_negative_ints:
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"{name}={value!r} is invalid; pass an integer >= 0")
        for name in positive_floats:
            value = getattr(self, name)
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"{name}={value!r} is invalid; pass a positive finite number")
        if self.q_fixed_rtol is not None and not (0 < self.q_fixed_rtol < 1):
            raise ValueError(f"q_fixed_rtol={self.q_fixed_rtol!r} is invalid; pass a number in "
                             f"(0, 1), e.g. 1e-20, or None for the dtype's default")
        if not np.isfinite(self.box_margin) or self.box_margin < 0:
            raise ValueError(f"box_margin={self.box_margin!r} is invalid; pass a number >= 0")
        if self.newton_steps == 0 and self.max_iter == 0:
            raise ValueError("max_iter and newton_steps are both 0: nothing would be searched; "
                             "set at least one of them > 0")


# ---------------------------------------------------------------------------- scales
def _scales(dynamics: Dynamics, x0: torch.Tensor, opts: FinderOptions):
    """Spread of the states, RMS singular value of J_v and the speed scale."""
    centred = x0 - x0.mean(0, keepdim=True)
    scale = float(torch.sqrt((centred ** 2).sum(1).mean()))
    if not np.isfinite(scale) or scale <= 1e-12:
        scale = float(max(1.0, x0.abs().max()))
    gen = np.random.default_rng(opts.seed)
    probe = x0[gen.choice(len(x0), size=min(32, len(x0)), replace=False)]
    jac = dynamics.jacobian(probe)
    sigma = float(torch.sqrt((jac ** 2).sum((1, 2)).mean() / dynamics.n_states))
    if not np.isfinite(sigma):
        raise ValueError("the Jacobian is not finite at the initial states; check the weights "
                         "and the initial states for NaN/inf or overflow")
    if sigma <= 1e-300:
        with torch.no_grad():
            q_scale = float(dynamics.speed(x0).median())
        q_scale = q_scale if q_scale > 0 else 1.0
        sigma = float(np.sqrt(2 * q_scale) / scale)
    q_scale = 0.5 * (scale * sigma) ** 2
    return scale, sigma, q_scale


def _default_q_fixed_rtol(dtype: torch.dtype) -> float:
    return 1e-20 if dtype == torch.float64 else 1e-9


# ---------------------------------------------------------------------------- stage 1
def _descend(dynamics: Dynamics, x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor,
             q_scale: float, step: float, opts: FinderOptions):
    """Adam on q with per-point convergence. Returns (x, q, iterations)."""
    b = x.shape[0]
    x = x.clone()
    m = torch.zeros_like(x)
    s = torch.zeros_like(x)
    t = torch.zeros(b, dtype=x.dtype, device=x.device)
    best_q = torch.full((b,), float("inf"), dtype=x.dtype, device=x.device)
    best_at = torch.zeros(b, dtype=torch.long, device=x.device)
    active = torch.arange(b, device=x.device)
    q_all = torch.full((b,), float("inf"), dtype=x.dtype, device=x.device)
    beta1, beta2, eps = 0.9, 0.999, 1e-30
    target = opts.descent_rtol * q_scale
    it = 0
    for it in range(1, opts.max_iter + 1):
        if active.numel() == 0:
            break
        xa = x[active].requires_grad_(True)
        v = dynamics.velocity(xa)
        q = 0.5 * (v * v).sum(-1)
        (grad,) = torch.autograd.grad(q.sum(), xa)
        with torch.no_grad():
            q = q.detach()
            finite = torch.isfinite(q) & torch.isfinite(grad).all(1)
            q_all[active] = torch.where(finite, q, torch.full_like(q, float("nan")))
            improved = q < 0.99 * best_q[active]
            best_q[active] = torch.where(improved, q, best_q[active])
            best_at[active] = torch.where(improved, torch.full_like(best_at[active], it),
                                          best_at[active])
            done = (~finite) | (q <= target) | (it - best_at[active] > opts.patience)
            grad = torch.where(finite[:, None], grad, torch.zeros_like(grad))
            ma = beta1 * m[active] + (1 - beta1) * grad
            sa = beta2 * s[active] + (1 - beta2) * grad * grad
            ta = t[active] + 1
            m[active], s[active], t[active] = ma, sa, ta
            m_hat = ma / (1 - beta1 ** ta)[:, None]
            s_hat = sa / (1 - beta2 ** ta)[:, None]
            decay = 1.0 / (1.0 + ta / 200.0)
            new = x[active] - (step * decay)[:, None] * m_hat / (torch.sqrt(s_hat) + eps)
            new = torch.maximum(torch.minimum(new, hi), lo)
            keep = ~done
            x[active[keep]] = new[keep]
            active = active[keep]
    return x, q_all, it


# ---------------------------------------------------------------------------- stage 3
def _polish(dynamics: Dynamics, x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor,
            q_floor: float, opts: FinderOptions):
    """Batched Levenberg–Marquardt on v(x) = 0. Returns (x, q, grad_cos, iterations)."""
    n = dynamics.n_states
    eye = torch.eye(n, dtype=x.dtype, device=x.device)
    out_x, out_q, out_cos, iters = [], [], [], 0
    for start in range(0, x.shape[0], opts.batch_size):
        xb = x[start:start + opts.batch_size].clone()
        with torch.no_grad():
            v = dynamics.velocity(xb)
        q = 0.5 * (v * v).sum(-1)
        mu = None
        active = torch.isfinite(q)
        cos = torch.ones_like(q)
        for it in range(opts.newton_steps):
            idx = torch.nonzero(active & (q > q_floor)).flatten()
            if idx.numel() == 0:
                break
            iters = max(iters, it + 1)
            xa, va = xb[idx], v[idx]
            jac = dynamics.jacobian(xa).detach()
            jtj = jac.transpose(1, 2) @ jac
            jtv = (jac.transpose(1, 2) @ va.unsqueeze(-1)).squeeze(-1)
            if mu is None:
                mu = torch.full_like(q, 1e-3)  # damping relative to mean(diag(JᵀJ))
            mua = mu[idx]
            # Gradient-direction cosine: 0 at a stationary point of q.
            jnorm = torch.linalg.matrix_norm(jac, ord=2)
            cos[idx] = jtv.norm(dim=1) / (jnorm * va.norm(dim=1) + 1e-300)
            damping = mua * torch.diagonal(jtj, dim1=1, dim2=2).mean(1).clamp_min(1e-300)
            system = jtj + damping[:, None, None] * eye
            try:
                delta = torch.linalg.solve(system, -jtv.unsqueeze(-1)).squeeze(-1)
            except RuntimeError:
                delta = torch.linalg.lstsq(system, -jtv.unsqueeze(-1)).solution.squeeze(-1)
            trial = torch.maximum(torch.minimum(xa + delta, hi), lo)
            with torch.no_grad():
                v_trial = dynamics.velocity(trial)
            q_trial = 0.5 * (v_trial * v_trial).sum(-1)
            accept = torch.isfinite(q_trial) & (q_trial < q[idx])
            xb[idx[accept]] = trial[accept]
            v[idx[accept]] = v_trial[accept]
            q[idx[accept]] = q_trial[accept]
            mu[idx] = torch.where(accept, mua * 0.2, mua * 5.0)
            # stalled points: no decrease possible at huge damping, or stationary to round-off
            step_small = delta.norm(dim=1) <= 1e-15 * (xa.norm(dim=1) + 1.0)
            stalled = (~accept & ((mu[idx] > 1e12) | step_small)) | (accept & step_small)
            active[idx[stalled]] = False
        # final gradient cosine at the polished points
        jac = dynamics.jacobian(xb).detach()
        jtv = (jac.transpose(1, 2) @ v.unsqueeze(-1)).squeeze(-1)
        jnorm = torch.linalg.matrix_norm(jac, ord=2)
        cos = jtv.norm(dim=1) / (jnorm * v.norm(dim=1) + 1e-300)
        out_x.append(xb)
        out_q.append(q)
        out_cos.append(cos)
    return torch.cat(out_x), torch.cat(out_q), torch.cat(out_cos), iters


# ---------------------------------------------------------------------------- stage 5
def _marginal_count(dynamics: Dynamics, eigvals: np.ndarray, sigma: float, rtol: float):
    if dynamics.time == "discrete":
        return (np.abs(np.abs(eigvals) - 1.0) <= rtol).sum(1)
    return (np.abs(np.real(eigvals)) <= rtol * sigma).sum(1)


def _find_regions(dynamics: Dynamics, x: np.ndarray, q: np.ndarray, eigvals: np.ndarray,
                  sigma: float, q_fixed: float, opts: FinderOptions):
    """Group points connected by low-speed segments into regions. Returns (labels, regions)."""
    k = len(x)
    labels = -np.ones(k, dtype=int)
    if k < opts.min_region_points:
        return labels, []
    marginal = _marginal_count(dynamics, eigvals, sigma, opts.marginal_rtol)
    cand = np.flatnonzero(marginal > 0)
    if len(cand) < opts.min_region_points:
        return labels, []
    tree = cKDTree(x[cand])
    n_nb = min(len(cand), 7)
    _, nb = tree.query(x[cand], k=n_nb)
    pairs = {(min(a, b), max(a, b)) for a, row in enumerate(nb) for b in row[1:] if a != b}
    if not pairs:
        return labels, []
    pairs = np.array(sorted(pairs))
    i, j = cand[pairs[:, 0]], cand[pairs[:, 1]]
    fractions = np.array([0.25, 0.5, 0.75])
    seg = x[i][:, None, :] * (1 - fractions)[None, :, None] + x[j][:, None, :] * fractions[None, :, None]
    with torch.no_grad():
        q_seg = dynamics.speed(dynamics.states(seg.reshape(-1, x.shape[1]))).cpu().numpy()
    q_seg = q_seg.reshape(len(pairs), len(fractions)).max(1)
    ceiling = 10.0 * np.maximum(np.maximum(q[i], q[j]), q_fixed)
    linked = pairs[q_seg <= ceiling]
    if len(linked) == 0:
        return labels, []
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    graph = coo_matrix((np.ones(len(linked)), (linked[:, 0], linked[:, 1])),
                       shape=(len(cand), len(cand)))
    n_comp, comp = connected_components(graph, directed=False)
    regions = []
    for c in range(n_comp):
        members = cand[comp == c]
        if len(members) < opts.min_region_points:
            continue
        pts = x[members]
        center = pts.mean(0)
        _, svals, vt = np.linalg.svd(pts - center, full_matrices=False)
        var = svals ** 2
        explained = np.cumsum(var) / max(var.sum(), 1e-300)
        dim_pca = int(np.searchsorted(explained, 0.95) + 1)
        dim = int(max(1, min(dim_pca, int(np.median(marginal[members])))))
        axes = vt[:dim]
        proj = (pts - center) @ axes.T
        extent = proj.max(0) - proj.min(0)
        labels[members] = len(regions)
        regions.append(SlowRegion(points=pts, speed=q[members], dimension=dim, center=center,
                                  axes=axes, extent=extent))
    return labels, regions


# ---------------------------------------------------------------------------- main
def _validate_initial_states(dynamics: Dynamics, initial_states) -> torch.Tensor:
    if isinstance(initial_states, np.ndarray) and initial_states.dtype.kind not in "fiu":
        raise ValueError(f"initial_states has dtype {initial_states.dtype}; pass real numbers of "
                         f"shape (b, {dynamics.n_states})")
    x0 = dynamics.states(initial_states, name="initial_states")
    if x0.shape[0] == 0:
        raise ValueError(f"initial_states is empty (shape {tuple(x0.shape)}); pass at least one "
                         f"state of shape (b, {dynamics.n_states}), e.g. from "
                         f"sample_initial_states")
    return x0


def find_fixed_points(dynamics: Dynamics, initial_states, options: Optional[FinderOptions] = None,
                      **overrides) -> FixedPoints:
    """Find the fixed points and slow points of ``dynamics`` reachable from ``initial_states``.

    Parameters
    ----------
    dynamics : Dynamics
        The system (see :func:`fixedpoints.from_module` for torch models).
    initial_states : array_like of shape (b, n_states)
        Starting states, ideally sampled from the network's own trajectories
        (:func:`fixedpoints.sample_initial_states`).
    options : FinderOptions, optional
        Settings; keyword ``overrides`` replace single fields (``tol_unique=1e-2``).

    Returns
    -------
    FixedPoints
        Unique points sorted by kind then speed, with eigenvalues, kinds and indices, plus the
        slow regions found.

    Raises
    ------
    ValueError
        For initial states of the wrong shape, dtype or with non-finite values, or bad options.
    FixedPointError
        With ``throw=True``, when some points did not converge.
    """
    if not isinstance(dynamics, Dynamics):
        raise ValueError(f"dynamics must be a fixedpoints.Dynamics, got {type(dynamics).__name__}; "
                         f"wrap a torch model with fixedpoints.from_module(model)")
    opts = options or FinderOptions()
    if overrides:
        known = {f.name for f in fields(FinderOptions)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown option(s) {unknown}; valid options are {sorted(known)}")
        opts = FinderOptions(**{**asdict(opts), **overrides})
    started = _time.perf_counter()
    x0 = _validate_initial_states(dynamics, initial_states)
    n = dynamics.n_states
    scale, sigma, q_scale = _scales(dynamics, x0, opts)
    q_fixed = (opts.q_fixed_rtol or _default_q_fixed_rtol(dynamics.dtype)) * q_scale
    q_slow = opts.slow_tol * q_scale
    lo_box, hi_box = x0.min(0).values, x0.max(0).values
    width = (hi_box - lo_box).clamp_min(1e-3 * scale / np.sqrt(n))
    lo = lo_box - opts.box_margin * width
    hi = hi_box + opts.box_margin * width
    info = {"n_initial": int(len(x0)), "scale": scale, "q_scale": q_scale, "sigma": sigma}

    # 1. first-order descent
    x, q, n_iter = x0, None, 0
    if opts.max_iter > 0:
        step = opts.lr * scale / np.sqrt(n)
        x, q, n_iter = _descend(dynamics, x0, lo, hi, q_scale, step, opts)
    info["descent_iterations"] = int(n_iter)
    with torch.no_grad():
        q = dynamics.speed(x)
    finite = torch.isfinite(q)
    n_nonfinite = int((~finite).sum())
    x, q = x[finite], q[finite]
    # 2. candidates: only points slow enough to matter, de-duplicated
    keep_slowish = q <= max(q_slow * 1e3, q_fixed)
    x, q = x[keep_slowish], q[keep_slowish]
    tol = opts.tol_unique * scale
    reps = deduplicate(x.cpu().numpy(), q.cpu().numpy(), tol)
    x = x[torch.as_tensor(reps, device=x.device)]
    info["candidates"] = int(len(x))
    log.info("find_fixed_points: %d initial states -> %d candidates after %d descent iterations",
             len(x0), len(x), n_iter)

    # 3. polish
    q_floor = q_fixed * 1e-6
    x, q, cos, n_newton = _polish(dynamics, x, lo, hi, q_floor, opts)
    info["newton_iterations"] = int(n_newton)

    def accept(xp, qp, cosp):
        fin = torch.isfinite(qp)
        is_fixed = fin & (qp <= q_fixed)
        is_slow = fin & (qp > q_fixed) & (qp <= q_slow) & (cosp <= opts.grad_rtol)
        on_wall = ((xp <= lo + 1e-9 * width) | (xp >= hi - 1e-9 * width)).any(1)
        ok = (is_fixed | is_slow) & ~on_wall
        unconverged = fin & ~ok & ~on_wall & (qp <= q_slow)
        return ok, int(unconverged.sum()), int((on_wall & fin).sum()), int((~fin).sum())

    ok, n_unconv, n_wall, n_nf = accept(x, q, cos)
    n_nonfinite += n_nf
    x, q = x[ok], q[ok]

    # 4. saddle seeding from midpoints of the points found
    if opts.seed_midpoints and len(x) >= 2:
        reps = deduplicate(x.cpu().numpy(), q.cpu().numpy(), tol)
        base = x[torch.as_tensor(reps, device=x.device)]
        ii, jj = torch.triu_indices(len(base), len(base), offset=1, device=x.device)
        if len(ii) > opts.max_midpoints:
            pick = np.random.default_rng(opts.seed).choice(len(ii), opts.max_midpoints,
                                                           replace=False)
            pick = torch.as_tensor(np.sort(pick), device=x.device)
            ii, jj = ii[pick], jj[pick]
        mids = 0.5 * (base[ii] + base[jj])
        with torch.no_grad():
            q_mid = dynamics.speed(mids)
        reps = deduplicate(mids.cpu().numpy(), q_mid.cpu().numpy(), tol)
        mids = mids[torch.as_tensor(reps, device=x.device)]
        xm, qm, cm, _ = _polish(dynamics, mids, lo, hi, q_floor, opts)
        okm, u2, w2, nf2 = accept(xm, qm, cm)
        n_unconv += u2
        n_nonfinite += nf2
        info["midpoints"] = int(len(mids))
        x, q = torch.cat([x, xm[okm]]), torch.cat([q, qm[okm]])

    info.update(unconverged=n_unconv, outside_box=n_wall, non_finite=n_nonfinite)
    # 5. unique points, spectra, kinds, regions
    x_np, q_np = x.detach().cpu().numpy(), q.detach().cpu().numpy()
    keep = deduplicate(x_np, q_np, tol)
    x_np, q_np = x_np[keep], q_np[keep]
    if len(x_np):
        jac = _jacobian_np(dynamics, x_np, batch_size=opts.batch_size)
        eigvals = _native_spectrum(dynamics, jac, with_vectors=False)
    else:
        eigvals = np.zeros((0, n), dtype=complex)
    regions = []
    if opts.slow_regions:
        labels, regions = _find_regions(dynamics, x_np, q_np, eigvals, sigma, q_fixed, opts)
        single = labels < 0
        x_np, q_np, eigvals = x_np[single], q_np[single], eigvals[single]
    kind, n_unstable = classify(dynamics, eigvals, q_np, q_fixed)
    order = np.lexsort((q_np, n_unstable, kind == "slow"))
    status = FinderStatus.CONVERGED
    if len(x_np) == 0 and not regions:
        status = FinderStatus.NONE_FOUND
    elif n_nonfinite:
        status = FinderStatus.NON_FINITE
    elif n_unconv:
        status = FinderStatus.MAX_ITER
    info["seconds"] = _time.perf_counter() - started
    result = FixedPoints(x=x_np[order], speed=q_np[order], eigvals=eigvals[order],
                         kind=kind[order], n_unstable=n_unstable[order], time=dynamics.time,
                         status=status, slow_regions=tuple(regions), q_fixed=float(q_fixed),
                         scale=float(scale), info=info)
    log.info("find_fixed_points: %r in %.2f s", result, info["seconds"])
    if status is not FinderStatus.CONVERGED:
        text = f"find_fixed_points: {status.value} ({info})"
        if opts.throw:
            raise FixedPointError(text)
        if status is not FinderStatus.MAX_ITER or n_unconv > 0:
            warnings.warn(text, RuntimeWarning, stacklevel=2)
    return result
