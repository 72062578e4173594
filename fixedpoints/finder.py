"""Find fixed points and slow points by minimizing the speed q(x) = ½‖v(x)‖².

The search has four stages, all batched over points:

1. **First-order descent** (optional, Adam on q) from every initial state, with per-point
   convergence so converged points stop costing, inside a box around the initial states so no
   point drifts to the saturated far field where every network looks slow.
2. **De-duplication** of the candidates (keeping the slowest of each cluster; starts much
   closer to each other than to the nearest root are merged), so the expensive stage runs once
   per distinct start rather than once per initial state.
   With ``krylov`` (automatic for networks whose candidates outnumber the dense budget) the
   candidates first take matrix-free inexact Newton steps (preconditioned GMRES on
   Jacobian–vector products, :mod:`fixedpoints.krylov`) in rounds, those that reach the fixed
   tolerance are accepted and those a point found explains are attributed between rounds; the
   polish then takes one candidate per estimated root first, and between its rounds the
   candidates still waiting take two more such steps, so that most fall into the linear regime
   of a point found and are attributed to it without a dense step.
3. **Second-order polish in rounds**: batched Levenberg–Marquardt on v(x) = 0 with Jacobians
   from the model's closed form or ``torch.func`` (where J_v's last columns are diagonal, as a
   one-layer LSTM's cell state, JᵀJ and its damped solve go by blocks: :mod:`fixedpoints.gram`;
   for leaky low-rank tanh networks JᵀJ, the exact Hessian and the solves are in closed form,
   O(n K²) per state without any Jacobian: :mod:`fixedpoints.polish_systems`),
   the slowest candidates first. During and
   after each round, candidates that the linearization around a point already found explains
   are attributed to it instead of being polished further. Where Gauss–Newton turns linear
   near a slow point, the step uses the exact Hessian of q. True fixed points converge
   quadratically to q at round-off (≤ 1e-20 relative to the system's speed scale in float64);
   slow points converge to local minima of q, where ∇q = J_vᵀ v = 0 (stationary points where
   q curves down are rejected). A ``polish_budget`` bounds the cost for very large networks;
   with ``krylov`` what it leaves is polished by the same iteration without any n × n
   matrix (products and GMRES: :mod:`fixedpoints.matrix_free`).
4. **Saddle seeding**: points at 1/4, 1/2 and 3/4 of the segments between pairs of the points
   found are polished too (with steps capped at 0.2 · scale, so Newton cannot jump across the
   basin), which finds the saddles between attractors that trajectory-sampled states rarely
   start near. Midpoints that the linearization around a point found already explains are
   attributed to it before any polish (``info["midpoints_attributed"]``).

For low-rank tanh networks (rank ≤ 3) the candidates are not the initial states but the lifted
minima of the latent speed (:mod:`fixedpoints.latent`, ``FinderOptions.latent_starts``): every
local minimum of q is among them, so the points found do not depend on the states sampled
(which still set the scales and the box); stages 1 and 4 and the warm starts are skipped.

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
from dataclasses import dataclass
from typing import List, Optional

import numpy as np
import torch
from scipy.spatial import cKDTree

from . import linalg as _linalg
from .dynamics import Dynamics
from .initial import state_spread
from .options import resolve_options
from .polish_systems import PolishNewton, polish_newton
from .linearize import classify, jacobian as _jacobian_np, _native_spectrum
from .results import FinderStatus, FixedPoints, SlowRegion
from .unique import deduplicate
from .complete import finish
from .krylov import newton_krylov
from .matrix_free import MatrixFreeNewton
from .latent import latent_minima
from .lowrank import MAX_RANK, low_rank_form_or_none

__all__ = ["FinderOptions", "find_fixed_points", "FixedPointError", "uses_latent_minima"]

log = logging.getLogger(__name__)

#: Candidates per round of the matrix-free polish (memory: GMRES keeps one vector of n per
#: product and candidate, 21 MB at n = 1024 with its 40 products).
_MATRIX_FREE_BATCH = 64

#: At most this many of the latent speed's minima (the slowest) are the candidates of a
#: low-rank network (``latent_starts``).
_LATENT_CANDIDATES = 64



class FixedPointError(RuntimeError):
    """Raised by :func:`find_fixed_points` with ``throw=True`` when the search did not converge."""


@dataclass(frozen=True)
class FinderOptions:
    """Settings of :func:`find_fixed_points`. Every tolerance is relative (see module docstring).

    Parameters
    ----------
    max_iter : int
        Maximum first-order (Adam) iterations per point before the polish. Off by default: on
        the flip-flop GRU, the rotated flip-flop map and random leaky RNNs (bench/fixedpoints.py)
        polishing the raw initial states in rounds was 1.6-2x faster than descending first,
        with the same points found. Useful when initial states are far from any slow region.
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
        A slow point has converged when ‖J_vᵀ v‖ ≤ grad_rtol · σ · ‖v‖ (v in J_v's left null space;
        σ is the system's RMS singular value over the initial states).
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
    polish_budget : float, optional
        At most ``polish_budget / n_states³`` candidates are polished densely (slowest first;
        the default 2e10 is about 20-40 s of 2-core time), so a 1024-unit network is polished
        from ~19 candidates while a 128-unit one has room for ~9,500. ``None``: no limit. When
        the budget cuts candidates off, the status is ``BUDGET``; with ``krylov`` (automatic
        when the candidates outnumber it) what it leaves is polished matrix-free instead
        (``info["matrix_free_polished"]``).
    merge_fraction : float
        Candidates closer to a slower one than ``merge_fraction · |v|/σ`` (a fraction of their
        estimated distance to the nearest root) are merged into it before the polish.
    polish_batch : int, optional
        Candidates polished per round, slowest first (default: 64 up to 128 states, shrinking
        as 1/n above, at least 8). After each round, remaining candidates
        that the linearization around a point already found explains to within
        ``attribution_rtol`` are attributed to it and not polished (they would converge to it).
    attribution_rtol : float
        Relative error of that linear prediction of the velocity.
    krylov : bool, optional
        For large networks: no n × n factorization beyond the budget. None (default): on
        exactly when the de-duplicated candidates outnumber what the dense polish may take
        (``max(polish_budget / n³, 8)``; with the default budget, networks above ~270 units
        from 1024 starts, ~1000 candidates, or above ~430 from ~250), so that smaller
        networks keep the dense path and large ones do not end at ``BUDGET``; True / False
        force it. First the candidates
        take matrix-free inexact Newton steps (GMRES with Jacobian–vector products,
        closed-form where the system has a ``jvp_fn``, right-preconditioned by the inverse
        Jacobian at the slowest candidate; :mod:`fixedpoints.krylov`) in rounds of 4: states
        at the fixed tolerance are accepted (the polish's tests), the others that a point
        found explains are attributed, and states from which the steps stall (q not halved
        over 4 steps) go back to their start for the dense polish, which takes one candidate
        per root first. What the ``polish_budget`` leaves of the dense polish is then polished
        matrix-free (the same Levenberg–Marquardt iteration, its systems as products solved
        by GMRES, preconditioned by the inverse at the nearest point found or at the batch's
        slowest state: :mod:`fixedpoints.matrix_free`), so the status is not ``BUDGET``.
        Checked against the path without a budget (a dense budget of 8 candidates) on five
        rate networks, 200 and 256 units from 256 and 1024 starts (three of them in
        tests/fixedpoints/test_matrix_free.py): the same counts, fixed points to 1e-9, slow
        points included. Measured on rate networks
        (gain 1.2, 1024 starts, 2 threads, bench/fixedpoints.py): 256 units ``CONVERGED`` in
        6.4 s (8.1 CPU-s; the budget is not reached); 1024 units ``CONVERGED`` in 51 s
        (83 CPU-s) with the dense path's saddle and slow point: 24 candidates polished
        densely, 188 matrix-free, where the dense path ends at ``BUDGET`` with 985 left.
        Checked on rate networks only (other models take their products from autograd).
    krylov_steps : int
        Inexact Newton steps at most (each lowers ‖v‖ about tenfold near a root).
    krylov_dim : int
        GMRES iterations (Jacobian–vector products) per inexact Newton step.
    seed : int
        Seed for the random choices (midpoint subsets).
    throw : bool
        Raise :class:`FixedPointError` instead of warning when some points did not converge.
    complete : bool, optional
        Exhaustive, certified search of low-rank tanh networks (rank ≤ 3) by interval
        branch-and-bound (:mod:`fixedpoints.complete`). None (default): whenever it applies;
        True: required (ValueError if the system has no low-rank form); False: never.
    certify : bool
        Attach a Krawczyk certificate and a stability verdict to every fixed point
        (:mod:`fixedpoints.certify`; NaN / False for models without an interval enclosure).
        About 60 n³ operations each; at most ``max(4, polish_budget / (240 n³))`` points are
        certified so (stable ones first), the rest counted in
        ``info["not_certified_over_budget"]``. The roots of the exhaustive low-rank search are
        certified from its κ-space proof instead, at K-dimensional cost and without that limit.
    complete_budget : int
        Boxes the exhaustive search may examine (at most 5e6 / n_states of them); what is left
        is reported as ``unresolved``.
    latent_starts : bool, optional
        For low-rank tanh networks (rank ≤ 3), the candidates are the lifted minima of the
        latent speed (:mod:`fixedpoints.latent`), not the initial states: every local minimum
        of q is the lift of one, so the slow points (and, with the exhaustive search, every
        fixed point) no longer depend on which states were sampled; the descent, the warm
        starts and the midpoints are skipped (the saddles are latent minima too). The initial
        states still set the scales and the search box. None (default): whenever the system
        has such a form and ``complete`` is not False; True: required (ValueError otherwise);
        False: the initial states, as for other networks.
    """

    max_iter: int = 0
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
    merge_fraction: float = 0.2
    polish_budget: Optional[float] = 2e10
    polish_batch: Optional[int] = None
    attribution_rtol: float = 0.25
    krylov: Optional[bool] = None
    krylov_steps: int = 8
    krylov_dim: int = 20
    seed: int = 0
    throw: bool = False
    complete: Optional[bool] = None
    certify: bool = True
    complete_budget: int = 50_000
    latent_starts: Optional[bool] = None

    def __post_init__(self):
        positive_ints = ("batch_size", "min_region_points", "patience", "complete_budget",
                         "krylov_steps", "krylov_dim")
        non_negative_ints = ("max_iter", "newton_steps", "max_midpoints")
        positive_floats = ("lr", "descent_rtol", "slow_tol", "grad_rtol", "tol_unique",
                           "marginal_rtol", "attribution_rtol", "merge_fraction")
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
        if self.polish_batch is not None and (not isinstance(self.polish_batch, (int, np.integer))
                                              or self.polish_batch < 1):
            raise ValueError(f"polish_batch={self.polish_batch!r} is invalid; pass a positive "
                             f"integer or None (automatic: 64 for n <= 128, fewer above)")
        if self.polish_budget is not None and not (self.polish_budget > 0):
            raise ValueError(f"polish_budget={self.polish_budget!r} is invalid; pass a positive "
                             f"number (about n_states³ × candidates) or None for no limit")
        if not np.isfinite(self.box_margin) or self.box_margin < 0:
            raise ValueError(f"box_margin={self.box_margin!r} is invalid; pass a number >= 0")
        if self.krylov is not None and not isinstance(self.krylov, (bool, np.bool_)):
            raise ValueError(f"krylov={self.krylov!r} is invalid; pass True, False or None "
                             f"(automatic: when the candidates outnumber the polish budget)")
        if self.complete not in (None, True, False):
            raise ValueError(f"complete={self.complete!r} is invalid; pass True, False or None "
                             f"(automatic: whenever the system has a low-rank form)")
        if not isinstance(self.certify, (bool, np.bool_)):
            raise ValueError(f"certify={self.certify!r} is invalid; pass True or False")
        if self.latent_starts not in (None, True, False):
            raise ValueError(f"latent_starts={self.latent_starts!r} is invalid; pass True, "
                             f"False or None (automatic: for low-rank tanh networks)")
        if self.newton_steps == 0 and self.max_iter == 0:
            raise ValueError("max_iter and newton_steps are both 0: nothing would be searched; "
                             "set at least one of them > 0")


# ---------------------------------------------------------------------------- scales
def _scales(dynamics: Dynamics, x0: torch.Tensor, opts: FinderOptions):
    """Spread of the states, RMS singular value of J_v and the speed scale."""
    scale = state_spread(x0.detach().cpu().numpy())
    if not np.isfinite(scale) or scale <= 1e-12:
        scale = max(1.0, float(x0.abs().max()))
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


def _latent_candidates(dynamics: Dynamics, opts: FinderOptions) -> Optional[np.ndarray]:
    """The latent minima that are the candidates (``latent_starts``), shape (m, n), or None:
    the initial states are (no low-rank form, or no finite minimum; those are kept per form,
    :mod:`fixedpoints.latent`, so asking again costs nothing)."""
    if opts.latent_starts is False or (opts.latent_starts is None and opts.complete is False):
        return None
    form = low_rank_form_or_none(dynamics, MAX_RANK)
    if form is None and opts.latent_starts:
        raise ValueError(f"latent_starts=True needs a low-rank tanh network of rank <= "
                         f"{MAX_RANK} (a model with low_rank_form(u), or an nn.RNN whose W_hh "
                         f"has numerical rank <= {MAX_RANK}); {dynamics.name} has none. Pass "
                         f"latent_starts=None to search from the initial states")
    minima = None if form is None else latent_minima(form, _LATENT_CANDIDATES)
    return minima if minima is not None and len(minima) else None


def uses_latent_minima(dynamics: Dynamics, options: Optional[FinderOptions] = None,
                       **overrides) -> bool:
    """Whether :func:`find_fixed_points` takes its candidates from the latent speed's minima
    (``FinderOptions.latent_starts``), so that warm starts and extra initial states would not
    change what it finds."""
    opts = resolve_options(FinderOptions, options, overrides)
    return _latent_candidates(dynamics, opts) is not None


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
            q_floor: float, opts: FinderOptions, on_wall=None, q_give_up: float = float("inf"),
            sigma2: float = 1e-300, explained=None, max_step: Optional[float] = None,
            newton: Optional[PolishNewton] = None):
    """Batched Levenberg–Marquardt on v(x) = 0.

    Returns (x, q, grad_cos, iterations, at_limit, attributed): ``at_limit`` marks points still
    converging when ``newton_steps`` ran out; ``attributed`` those stopped because
    ``explained(x, v)`` said they entered the linear regime of a point already found.

    A point stops when q reaches ``q_floor`` (a fixed point), when it is stationary
    (gradient cosine below ``grad_rtol / 10``: a slow point), when it reaches the box wall
    (an outlier), when it is still faster than ``q_give_up`` after 10 iterations, or when q has
    not halved over 4 iterations without being stationary (a crawl along a plateau that the
    acceptance test would reject anyway; with the exact-Hessian step both fixed points and
    slow points converge quadratically, so a crawl is no convergence).

    ``newton`` forms and solves the systems (:mod:`fixedpoints.polish_systems`; default: from
    the Jacobians).
    """
    if newton is None:
        newton = PolishNewton(dynamics)
    if x.shape[0] == 0:
        empty = x.new_zeros(0)
        none = torch.zeros(0, dtype=torch.bool, device=x.device)
        return x, empty, empty, 0, none, none
    out_x, out_q, out_cos, out_limit, out_attr, iters = [], [], [], [], [], 0
    for start in range(0, x.shape[0], opts.batch_size):
        xb = x[start:start + opts.batch_size].clone()
        with torch.no_grad():
            v = dynamics.velocity(xb)
        q = 0.5 * (v * v).sum(-1)
        mu = None
        active = torch.isfinite(q)
        history = [q.clone()]
        attributed = torch.zeros_like(active)
        for it in range(opts.newton_steps):
            idx = torch.nonzero(active & (q > q_floor)).flatten()
            if idx.numel() == 0:
                break
            iters = max(iters, it + 1)
            xa, va = xb[idx], v[idx]
            # JᵀJ and Jᵀv (from the Jacobians, or in closed form: polish_systems.py)
            jtj = newton.systems(xa, va)
            jtv = jtj.gradient
            if mu is None:
                mu = torch.full_like(q, 1e-3)  # damping relative to mean(diag(JᵀJ))
            mua = mu[idx]
            # Gradient-direction cosine: 0 at a stationary point of q.
            cos_a = jtv.norm(dim=1) / (sigma2 ** 0.5 * va.norm(dim=1) + 1e-300)
            stationary = cos_a <= 0.1 * opts.grad_rtol
            # relative to mean(diag(JᵀJ)) plus σ², so the damping survives where J is singular
            damping = mua * (jtj.mean_diagonal() + sigma2)
            if it >= 2:
                # Gauss-Newton drops the term Σ v_k ∇²v_k of the Hessian of q, which dominates
                # near a slow point (J_v singular, v ≠ 0). Where q stopped falling fast, use
                # the exact Hessian of q (a damped Newton step on ∇q = 0).
                linear = torch.nonzero((q[idx] > 0.05 * history[-2][idx])
                                       & (cos_a <= 0.3)).flatten()
                if linear.numel():
                    jtj.use_exact_hessian(linear)
            # JᵀJ + μI is positive definite: Cholesky (or Woodbury); damped exact Hessians may
            # not be: LU for those rows, least squares where singular; a non-finite system
            # (overflow far out) must not reach LAPACK: those points stop
            delta, sane = jtj.solve(damping)
            active[idx[~sane]] = False
            if max_step is not None:  # trust region: no Newton jump across a basin
                norm = delta.norm(dim=1, keepdim=True)
                delta = delta * torch.clamp(max_step / (norm + 1e-300), max=1.0)
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
            if on_wall is not None:  # left the region the network visits: an outlier
                stalled = stalled | on_wall(xb[idx])
            stalled = stalled | stationary
            if it >= 10:
                stalled = stalled | (q[idx] > q_give_up)
            if it >= 4:
                crawl = (q[idx] > 0.5 * history[-4][idx]) & ~stationary
                stalled = stalled | crawl
            history.append(q.clone())
            active[idx[stalled]] = False
            if explained is not None:
                live = idx[~stalled & (q[idx] > q_floor)]
                if live.numel():
                    hit = live[explained(xb[live], v[live])]
                    active[hit] = False
                    attributed[hit] = True
        # final gradient cosine at the polished points that may be slow points (not at the
        # fixed floor, not attributed: the acceptance reads it nowhere else)
        cos = torch.zeros_like(q)
        open_rows = torch.nonzero((q > q_floor) & ~attributed).flatten()
        if open_rows.numel():
            vo = v[open_rows]
            jtv = newton.gradient(xb[open_rows], vo)
            cos[open_rows] = jtv.norm(dim=1) / (sigma2 ** 0.5 * vo.norm(dim=1) + 1e-300)
        out_x.append(xb)
        out_q.append(q)
        out_cos.append(cos)
        out_limit.append(active & (q > q_floor))
        out_attr.append(attributed)
    return (torch.cat(out_x), torch.cat(out_q), torch.cat(out_cos), iters,
            torch.cat(out_limit), torch.cat(out_attr))


class _Found:
    """Accepted points so far, with their velocities and Jacobians (for attribution), and how
    the polish forms its systems (``newton``)."""

    def __init__(self, dynamics: Dynamics, x: torch.Tensor, q: torch.Tensor, tol: float,
                 newton: Optional[PolishNewton] = None):
        self.dynamics, self.tol = dynamics, tol
        self.newton = PolishNewton(dynamics) if newton is None else newton
        self.x, self.q = x, q
        # whether a candidate (or midpoint) reached the point, by converging to it or by being
        # attributed to it; only warm starts add points that are not (yet) supported
        self.supported = torch.ones(len(x), dtype=torch.bool, device=x.device)
        self._v: Optional[torch.Tensor] = None
        self._jac: Optional[torch.Tensor] = None
        self._tree: Optional[cKDTree] = None

    def add(self, x: torch.Tensor, q: torch.Tensor, supported: bool = True) -> None:
        if len(x):
            flags = torch.full((len(x),), bool(supported), dtype=torch.bool, device=x.device)
            x, q = torch.cat([self.x, x]), torch.cat([self.q, q])
            flags = torch.cat([self.supported, flags])
            keep = torch.as_tensor(deduplicate(x.cpu().numpy(), q.cpu().numpy(), self.tol),
                                   device=x.device)
            dropped = torch.ones(len(x), dtype=torch.bool, device=x.device)
            dropped[keep] = False
            self.x, self.q, self.supported = x[keep], q[keep], flags[keep]
            self._v = self._jac = self._tree = None
            self.support(x[dropped & flags])  # a duplicate's support goes to the point kept

    def support(self, x: torch.Tensor) -> None:
        """Mark the found point nearest to each state of ``x`` as reached."""
        if len(x) and len(self.x):
            self.supported[torch.unique(self.nearest(x))] = True

    def nearest(self, x: torch.Tensor) -> torch.Tensor:
        """Index of the found point nearest to each state of ``x`` (b, n), shape (b,)."""
        if self._tree is None:
            self._tree = cKDTree(self.x.cpu().numpy())
        _, nearest = self._tree.query(x.cpu().numpy())
        return torch.as_tensor(nearest, device=self.x.device)

    def predicted_velocity(self, x: torch.Tensor, nearest: torch.Tensor) -> torch.Tensor:
        """``v(p) + J_v(p) (x − p)`` with ``p`` the found point ``nearest`` to each row of ``x``
        (b, n), shape (b, n): in closed form where the polish has it, else from the Jacobians
        at the found points."""
        if self._v is None:
            with torch.no_grad():
                self._v = self.dynamics.velocity(self.x)
        closed = self.newton.closed
        if closed is not None:
            p = self.x[nearest]
            return self._v[nearest] + closed.jacobian_product(p, x - p)
        if self._jac is None:
            self._jac = self.dynamics.jacobian(self.x).detach()
        predicted = torch.empty_like(x)
        for j in torch.unique(nearest).tolist():  # loop over the few points found, not states
            members = nearest == j
            offset = x[members] - self.x[j]
            predicted[members] = self._v[j] + offset @ self._jac[j].T
        return predicted


def _attribute(dynamics: Dynamics, x: torch.Tensor, found: _Found, rtol: float,
               v: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Which states lie in the linear regime of a point already found.

    State ``c`` is attributed to its nearest found point ``p`` when the linearization around
    ``p`` predicts the velocity at ``c``: ``‖v(c) - v(p) - J(p)(c - p)‖ ≤ rtol · ‖v(c)‖``.
    Newton's method from such a state converges to ``p``, so polishing it again is wasted work,
    and ``p`` counts as reached (``found.supported``: a warm start's point is kept). ``v``: the
    velocities at ``x`` when the caller has them.
    """
    if len(found.x) == 0 or len(x) == 0:
        return torch.zeros(len(x), dtype=torch.bool, device=x.device)
    nearest = found.nearest(x)
    if v is None:
        with torch.no_grad():
            v = dynamics.velocity(x)
    predicted = found.predicted_velocity(x, nearest)
    explained = (v - predicted).norm(dim=1) <= rtol * v.norm(dim=1)
    found.supported[torch.unique(nearest[explained])] = True
    return explained


def _lead_first(x: torch.Tensor, q: torch.Tensor, reach: Optional[torch.Tensor],
                tol: float) -> torch.Tensor:
    """Order of the polish: slowest first; with ``reach`` (estimated distances to the roots the
    candidates approach), candidates whose reach overlaps a slower one's come after all others
    (they likely share its root and are attributed to it once it is found)."""
    order = torch.argsort(q)
    if reach is None or len(order) < 2:
        return order
    radius = reach[order].cpu().numpy()
    radius = np.where(np.isfinite(radius), 2.0 * radius, 0.0).clip(min=tol)
    lead = deduplicate(x[order].cpu().numpy(), np.arange(len(order)), radius)
    waiting = np.ones(len(order), dtype=bool)
    waiting[lead] = False
    ranked = np.concatenate([np.sort(lead), np.flatnonzero(waiting)])
    return order[torch.as_tensor(ranked, device=order.device)]


def _dense_limit(opts: FinderOptions, n_states: int) -> float:
    """Candidates the dense polish may take: ``polish_budget / n³``, at least 8."""
    if opts.polish_budget is None:
        return float("inf")
    return max(opts.polish_budget / n_states ** 3, 8)


def _polish_rounds(dynamics, x, q, found, accept, counters, lo, hi, q_floor, on_wall, opts,
                   q_give_up, sigma2, max_step=None, reach=None, advance=None, matrix_free=None):
    """Polish candidates in rounds of ``polish_batch``, slowest first, attributing the rest.

    ``advance(states) -> states``, when given, moves the candidates still waiting closer to
    their roots after each round (cheap inexact Newton steps), so that more of them fall in
    the linear regime of the points found and are attributed without a dense polish.
    ``matrix_free`` (a :class:`~fixedpoints.matrix_free.MatrixFreeNewton`), when given,
    polishes what the budget leaves, preconditioned by the points found
    (``counters["matrix_free_polished"]``); without it, that is counted ``over_budget``.
    """
    order = _lead_first(x, q, reach, found.tol)
    x = x[order]
    remaining = torch.ones(len(x), dtype=torch.bool, device=x.device)
    limit = _dense_limit(opts, dynamics.n_states)
    newton = found.newton
    while bool(remaining.any()):
        if counters["polished"] >= limit and newton is found.newton:
            # out of dense polish: the cheap steps may still bring the rest into the linear
            # regime of the points found (as long as each pass attributes some); those they
            # do not bring there go on from where they were (as the Krylov phase's stalls do)
            moved = x.clone() if advance is not None and len(found.x) else None
            for _ in range(opts.krylov_steps if moved is not None else 0):
                rest = torch.nonzero(remaining).flatten()
                moved[rest] = advance(moved[rest])
                explained = _attribute(dynamics, moved[rest], found, opts.attribution_rtol)
                remaining[rest[explained]] = False
                counters["attributed"] += int(explained.sum())
                if not bool(explained.any()) or not bool(remaining.any()):
                    break
            if matrix_free is None or not bool(remaining.any()):
                counters["over_budget"] += int(remaining.sum())
                break
            newton = matrix_free
        idx = torch.nonzero(remaining).flatten()
        size = opts.polish_batch or int(np.clip(64 * 128 / dynamics.n_states, 8, 64))
        if newton is matrix_free:
            size = _MATRIX_FREE_BATCH
            matrix_free.use_references(found.x if len(found.x) else x[idx[:1]])
        batch, rest = idx[:size], idx[size:]
        remaining[batch] = False
        explained = (lambda xs, vs: _attribute(dynamics, xs, found, opts.attribution_rtol, vs)) \
            if len(found.x) else None
        xp, qp, cp, iters, at_limit, attributed = _polish(
            dynamics, x[batch], lo, hi, q_floor, opts, on_wall, q_give_up=q_give_up,
            sigma2=sigma2, explained=explained, max_step=max_step, newton=newton)
        ok, stats = accept(xp, qp, cp, at_limit, attributed)
        counters["attributed"] += int(attributed.sum())
        for key, value in stats.items():
            counters[key] += value
        if newton is matrix_free:
            counters["matrix_free_polished"] = (counters.get("matrix_free_polished", 0)
                                                + int(len(batch)))
        else:
            counters["polished"] += int(len(batch))
        counters["newton_iterations"] = max(counters["newton_iterations"], iters)
        found.add(xp[ok], qp[ok])
        if len(rest) and advance is not None and counters["polished"] < limit:
            x[rest] = advance(x[rest])
        if len(rest):
            explained = _attribute(dynamics, x[rest], found, opts.attribution_rtol)
            remaining[rest[explained]] = False
            counters["attributed"] += int(explained.sum())


def _accept_converged(dynamics, x, q, reach, found, accept, counters, q_fixed, opts):
    """Accept the states the Krylov phase brought to the fixed tolerance (the acceptance tests
    of the polish: ``q ≤ q_fixed``, off the box wall), then attribute the others to the points
    found. Returns the positions (into ``x``) of the states left for the polish rounds."""
    done = q <= q_fixed
    if bool(done.any()):
        zeros = torch.zeros(int(done.sum()), dtype=torch.bool, device=x.device)
        ok, stats = accept(x[done], q[done], q[done].new_zeros(len(zeros)), zeros, zeros)
        for key, value in stats.items():
            counters[key] += value
        counters["krylov_converged"] = counters.get("krylov_converged", 0) + int(done.sum())
        found.add(x[done][ok], q[done][ok])
    rest = torch.nonzero(~done).flatten()
    if len(found.x) and len(rest):
        explained = _attribute(dynamics, x[rest], found, opts.attribution_rtol)
        counters["attributed"] += int(explained.sum())
        rest = rest[~explained]
    return rest


def _coarse_rounds(dynamics, x, q, coarse, max_step, found, accept, counters, q_fixed, opts):
    """The Krylov phase in rounds of 4 inexact Newton steps (the stall rule's window): after
    each, the states at the fixed tolerance are accepted and the others that the points found
    explain are attributed, so only the rest take further steps. States that stalled leave
    the rounds as the candidates they were before the Krylov phase (a stall in a later round
    undoes the earlier rounds' steps too: the polish starts where the dense path would), with
    reach ``inf`` (``counters["krylov_seconds"]``: the time spent here). ``q``: the speeds
    of ``x``. Returns the states ``(x, q, reach)`` left for the polish."""
    parts = []
    origin, origin_q = x, q
    reach = torch.full_like(q, float("inf"))  # no step taken: no distance estimate
    started = _time.perf_counter()
    for done_steps in range(0, opts.krylov_steps, 4):
        if not len(x):
            break
        x, q, reach = coarse(x, max_step, steps=min(4, opts.krylov_steps - done_steps))
        rest = _accept_converged(dynamics, x, q, reach, found, accept, counters, q_fixed, opts)
        x, q, reach, origin, origin_q = (t[rest] for t in (x, q, reach, origin, origin_q))
        stalled = ~torch.isfinite(reach)
        parts.append((origin[stalled], origin_q[stalled], reach[stalled]))
        x, q, reach, origin, origin_q = (t[~stalled] for t in (x, q, reach, origin, origin_q))
    parts.append((x, q, reach))
    counters["krylov_seconds"] = (counters.get("krylov_seconds", 0.0)
                                  + _time.perf_counter() - started)
    xs, qs, reaches = (torch.cat(p) for p in zip(*parts))
    return xs, qs, reaches


def _warm_polish(dynamics, warm_starts, x, q, found, accept, counters, lo, hi, q_floor, on_wall,
                 opts, q_give_up, sigma2, info):
    """Polish the warm starts into ``found``, then drop the candidates their roots explain.

    Returns the candidates ``(x, q)`` left for the rounds.
    """
    n = dynamics.n_states
    warm = torch.as_tensor(np.asarray(warm_starts, dtype=float).reshape(-1, n),
                           dtype=x.dtype, device=x.device)
    warm = warm[torch.isfinite(warm).all(1)]
    info["warm_starts"] = int(len(warm))
    info["warm_found"] = 0
    info["warm_attributed"] = 0
    if not len(warm):
        return x, q
    warm = torch.maximum(torch.minimum(warm, hi), lo)
    xp, qp, cp, iters, at_limit, attributed = _polish(
        dynamics, warm, lo, hi, q_floor, opts, on_wall, q_give_up=q_give_up, sigma2=sigma2,
        newton=found.newton)
    ok, _ = accept(xp, qp, cp, at_limit, attributed)  # its failures are no failures of the search
    found.add(xp[ok], qp[ok], supported=False)
    info["warm_found"] = int(len(found.x))
    info["warm_newton_iterations"] = int(iters)
    if not len(found.x) or not len(x):
        return x, q
    explained = _attribute(dynamics, x, found, opts.attribution_rtol)
    info["warm_attributed"] = int(explained.sum())
    counters["attributed"] += int(explained.sum())
    return x[~explained], q[~explained]


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
    linked_pairs = {(min(a, b), max(a, b)) for a, row in enumerate(nb) for b in row[1:] if a != b}
    if not linked_pairs:
        return labels, []
    pairs = np.array(sorted(linked_pairs))
    i, j = cand[pairs[:, 0]], cand[pairs[:, 1]]
    fractions = np.array([0.25, 0.5, 0.75])
    seg = (x[i][:, None, :] * (1 - fractions)[None, :, None]
           + x[j][:, None, :] * fractions[None, :, None])
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
    regions: List[SlowRegion] = []
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
                      *, warm_starts=None, **overrides) -> FixedPoints:
    """Find the fixed points and slow points of ``dynamics`` reachable from ``initial_states``
    (for low-rank tanh networks: from the latent speed's minima, ``latent_starts``).

    Parameters
    ----------
    dynamics : Dynamics
        The system (see :func:`fixedpoints.from_module` for torch models).
    initial_states : array_like of shape (b, n_states)
        Starting states, ideally sampled from the network's own trajectories
        (:func:`fixedpoints.sample_initial_states`).
    options : FinderOptions, optional
        Settings; keyword ``overrides`` replace single fields (``tol_unique=1e-2``).
    warm_starts : array_like of shape (m, n_states), optional
        Points expected near roots, e.g. a neighbouring checkpoint's fixed points (a warm start
        along a series). They are polished first, before the candidates, and each candidate
        that the linearization around a root they reach already explains (the attribution
        test of the rounds, see the module docstring) is attributed to it without being
        polished, so roots that only moved cost a few Newton steps. They take no part in the
        scales or the search box (both come from ``initial_states`` alone, as in a cold
        search), and a point they reach is kept only when it passes the same acceptance tests
        and a candidate or a midpoint reached it too (converged to it or was attributed to
        it); midpoints are seeded only between such points, and those a point found already
        explains are attributed to it, not polished. The result is therefore the one
        a cold search gives, up to the attribution test (a candidate attributed to a point is
        one that Newton's method would take there). ``info`` counts ``warm_starts``,
        ``warm_found`` (points they reached), ``warm_attributed`` (candidates attributed
        before any polish) and ``warm_unreached`` (their points dropped as unreached).

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
    opts = resolve_options(FinderOptions, options, overrides)
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

    # 1. first-order descent (the latent minima of a low-rank network need none)
    x, n_iter = x0, 0
    minima = _latent_candidates(dynamics, opts)
    latent = minima is not None
    if minima is not None:
        x = dynamics.states(minima, name="latent minima")
        info["latent_starts"] = int(len(x))
        if warm_starts is not None:  # nothing to spare: the candidates are the minima
            info["warm_starts_unused"] = int(len(np.asarray(warm_starts).reshape(-1, n)))
            warm_starts = None
    elif opts.max_iter > 0:
        step = opts.lr * scale / np.sqrt(n)
        x, _, n_iter = _descend(dynamics, x0, lo, hi, q_scale, step, opts)
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
    # A start at speed |v| lies about |v|/σ from the nearest root, and starts much closer to
    # each other than that converge to the same point: merge within a fraction of it.
    radius = np.maximum(tol, opts.merge_fraction * np.sqrt(2 * q.cpu().numpy()) / sigma)
    reps = torch.as_tensor(deduplicate(x.cpu().numpy(), q.cpu().numpy(), radius),
                           device=x.device)
    x, q = x[reps], q[reps]
    info["candidates"] = int(len(x))
    log.info("find_fixed_points: %d initial states -> %d candidates after %d descent iterations",
             len(x0), len(x), n_iter)
    # automatic: the matrix-free path where the dense polish could not take every candidate
    use_krylov = (bool(opts.krylov) if opts.krylov is not None
                  else len(x) > _dense_limit(opts, n))
    info["krylov"] = use_krylov

    def coarse(xs: torch.Tensor, max_step: float, steps: int = opts.krylov_steps):
        return newton_krylov(dynamics, xs, lo, hi, q_stop=q_fixed, steps=steps,
                             krylov_dim=opts.krylov_dim, max_step=max_step, backtracks=8,
                             stall_steps=4, stall_factor=0.5)

    def advance(max_step: float):
        """Two more inexact Newton steps for the candidates waiting between polish rounds."""
        return lambda xs: coarse(xs, max_step, steps=2)[0]

    # 3. polish in rounds, slowest candidates first; candidates that the linearization around
    #    a point already found explains are attributed to it instead of being polished again
    q_floor = q_fixed * 1e-6

    def on_wall(xp):
        return ((xp <= lo + 1e-9 * width) | (xp >= hi - 1e-9 * width)).any(1)

    def accept(xp, qp, cosp, at_limit, attributed):
        fin = torch.isfinite(qp)
        is_fixed = fin & (qp <= q_fixed)
        is_slow = fin & (qp > q_fixed) & (qp <= q_slow) & (cosp <= opts.grad_rtol)
        wall = on_wall(xp)
        ok = (is_fixed | is_slow) & ~wall & ~attributed
        # still converging when newton_steps ran out; the others stalled on a plateau (q
        # crawling down a saturated region) or converged to something too fast to keep
        unconverged = fin & ~ok & ~wall & at_limit
        plateau = fin & ~ok & ~wall & ~at_limit & ~attributed & (qp <= q_slow)
        return ok, {"unconverged": int(unconverged.sum()), "plateau": int(plateau.sum()),
                    "outside_box": int((wall & fin).sum()),
                    "non_finite": int((~fin).sum())}

    # the polish's Newton systems: in closed form for leaky low-rank tanh networks (checked
    # against the system at the initial states), else from the Jacobians
    newton = polish_newton(dynamics, x0)
    info["closed_form_polish"] = newton.closed is not None
    found = _Found(dynamics, x.new_zeros(0, n), x.new_zeros(0), tol, newton)
    counters = {"unconverged": 0, "plateau": 0, "over_budget": 0, "outside_box": 0,
                "non_finite": n_nonfinite, "polished": 0, "attributed": 0,
                "newton_iterations": 0}
    if warm_starts is not None:
        x, q = _warm_polish(dynamics, warm_starts, x, q, found, accept, counters, lo, hi, q_floor,
                            on_wall, opts, q_slow, sigma ** 2, info)
    reach = None
    if use_krylov:
        x, q, reach = _coarse_rounds(dynamics, x, q, coarse, scale, found, accept, counters,
                                     q_fixed, opts)
    matrix_free = MatrixFreeNewton(dynamics, seed=opts.seed) if use_krylov else None
    _polish_rounds(dynamics, x, q, found, accept, counters, lo, hi, q_floor, on_wall, opts,
                   q_slow, sigma ** 2, reach=reach, advance=advance(scale) if use_krylov else None,
                   matrix_free=matrix_free)

    # 4. saddle seeding from midpoints of the points found
    # (from the points the candidates reached, as in a cold search: not from warm starts that
    # no candidate has reached, which would seed midpoints a cold search never polishes)
    if opts.seed_midpoints and not latent and int(found.supported.sum()) >= 2:
        base = found.x[found.supported]
        ii, jj = torch.triu_indices(len(base), len(base), offset=1, device=x.device)
        if len(ii) > opts.max_midpoints:
            chosen = np.random.default_rng(opts.seed).choice(len(ii), opts.max_midpoints,
                                                             replace=False)
            picked = torch.as_tensor(np.sort(chosen), device=x.device)
            ii, jj = ii[picked], jj[picked]
        # points along each segment (not only its middle): a saddle between two attractors
        # need not sit half-way, and a Newton step from the middle can jump past it
        frac = torch.tensor([0.25, 0.5, 0.75], dtype=base.dtype, device=base.device)
        mids = (base[ii][:, None, :] * (1 - frac)[None, :, None]
                + base[jj][:, None, :] * frac[None, :, None]).reshape(-1, n)
        with torch.no_grad():
            q_mid = dynamics.speed(mids)
        mid_reps = deduplicate(mids.cpu().numpy(), q_mid.cpu().numpy(), tol)
        chosen_mids = torch.as_tensor(mid_reps, device=x.device)
        info["midpoints"] = int(len(chosen_mids))
        if len(chosen_mids):
            # midpoints that fall into the linear regime of a point found (one near a
            # segment's end, or the saddle between two attractors that a warm start gave)
            # reach it without a polish
            explained = _attribute(dynamics, mids[chosen_mids], found, opts.attribution_rtol)
            counters["attributed"] += int(explained.sum())
            info["midpoints_attributed"] = int(explained.sum())
            if warm_starts is not None:
                info["warm_attributed_midpoints"] = int(explained.sum())
            chosen_mids = chosen_mids[~explained]
        mids, q_mid, reach = mids[chosen_mids], q_mid[chosen_mids], None
        if use_krylov:
            mids, q_mid, reach = _coarse_rounds(dynamics, mids, q_mid, coarse, 0.2 * scale,
                                                found, accept, counters, q_fixed, opts)
        _polish_rounds(dynamics, mids, q_mid, found, accept, counters, lo, hi, q_floor,
                       on_wall, opts, q_slow, sigma ** 2, max_step=0.2 * scale, reach=reach,
                       advance=advance(0.2 * scale) if use_krylov else None,
                       matrix_free=matrix_free)
    # a warm start's point is kept only when a candidate or a midpoint reached it too: the
    # points are those a cold search finds, warm starts only spare their polish
    if warm_starts is not None:
        info["warm_unreached"] = int((~found.supported).sum())
    x, q = found.x[found.supported], found.q[found.supported]
    n_unconv, n_nonfinite = counters["unconverged"], counters["non_finite"]
    info.update(counters)
    # 5. unique points, spectra, kinds, regions
    x_np, q_np = x.detach().cpu().numpy(), q.detach().cpu().numpy()
    keep = deduplicate(x_np, q_np, tol)
    x_np, q_np = x_np[keep], q_np[keep]
    # a slow point is a local MINIMUM of q: drop stationary points where q curves down
    slow = np.flatnonzero(q_np > q_fixed)
    if len(slow):
        hess = dynamics.speed_hessian(torch.as_tensor(x_np[slow], dtype=dynamics.dtype,
                                                      device=dynamics.device))
        lowest = _linalg.eigvalsh(0.5 * (hess + hess.transpose(1, 2)))[:, 0].cpu().numpy()
        not_minimum = slow[lowest < -1e-6 * sigma ** 2]
        info["not_minimum"] = int(len(not_minimum))
        keep_mask = np.ones(len(x_np), dtype=bool)
        keep_mask[not_minimum] = False
        x_np, q_np = x_np[keep_mask], q_np[keep_mask]
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
    elif counters["over_budget"]:
        status = FinderStatus.BUDGET
    info["seconds"] = _time.perf_counter() - started
    result = FixedPoints(x=x_np[order], speed=q_np[order], eigvals=eigvals[order],
                         kind=kind[order], n_unstable=n_unstable[order], time=dynamics.time,
                         status=status, slow_regions=tuple(regions), q_fixed=float(q_fixed),
                         scale=float(scale), info=info)
    result = finish(dynamics, result, complete=opts.complete, certify=opts.certify,
                    max_boxes=opts.complete_budget, budget=opts.polish_budget)  # certificates
    status = result.status
    log.info("find_fixed_points: %r in %.2f s", result, result.info["seconds"])
    if status is not FinderStatus.CONVERGED:
        text = f"find_fixed_points: {status.value} ({info})"
        if status is FinderStatus.BUDGET:
            text += ("; the polish budget left candidates unpolished: pass krylov=True to "
                     "polish them matrix-free (automatic with krylov=None when the candidates "
                     "alone outnumber the budget), or a larger polish_budget")
        if opts.throw:
            raise FixedPointError(text)
        warnings.warn(text, RuntimeWarning, stacklevel=2)
    return result
