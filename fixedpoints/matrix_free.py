"""The polish's Levenberg–Marquardt systems without any n × n matrix: products by autograd,
solves by GMRES (for networks too large to polish every candidate densely).

The polish (:func:`fixedpoints.finder._polish`) solves, per state and iteration,

    (H + δ I) Δx = −∇q,      ∇q = J_vᵀ v,      H = J_vᵀ J_v  or  ∇²q = J_vᵀ J_v + Σ_k v_k ∇²v_k.

The dense systems (:class:`~fixedpoints.polish_systems.DenseSystems`) form ``J_v`` and ``H``
and factor them: about 3 n³ operations per state and iteration, 0.42 s per candidate (all its
iterations) at n = 1024 on two cores. Here one velocity evaluation per iteration is
differentiated twice: with ``g(x, w) = J_v(x)ᵀ w`` (reverse mode, kept as a graph) at
``w = v``,

* ``∇q = g(x, v)``;
* one backward pass of ``g`` against ``p`` gives both ``J_v p`` (the derivative in ``w``, as
  ``g`` is linear in ``w``) and ``Σ_k v_k ∇²v_k p`` (the derivative in ``x``);
* one backward pass of the velocity against ``J_v p`` gives ``J_vᵀ J_v p``;

so every product ``(H + δ I) p`` costs two backward passes (about 4 n² per state for a rate
network; the first in ``w`` alone, without second derivatives, while no row uses the exact
Hessian), batched over the states, and GMRES (:func:`fixedpoints.linalg.gmres`) solves each
system to a relative residual ``rtol`` in at most ``max_iter`` products. ``H + δ I`` may be
indefinite with the exact Hessian; GMRES does not need it definite. The damping is scaled, as
in the dense polish, by the mean of ``diag(J_vᵀ J_v) = ‖J_v‖_F² / n``, here estimated from
``‖J_v z‖²`` with two random ±1 probes ``z`` (measured on the 1024-unit rate network at 64
trajectory states: 1.3% off in the median, 7.5% at most).

The steps are inexact Newton steps, within ``rtol`` of the dense ones, so fixed points still
converge to round-off and slow points to ``∇q = 0``; a state's iteration costs at most
``2 max_iter + 4`` backward passes instead of a factorization (0.09 s per candidate at
n = 1024, preconditioned: :class:`MatrixFreeNewton`).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable, List, Optional, Tuple

import torch

from . import linalg as _linalg
from .dynamics import Dynamics

__all__ = ["MatrixFreeNewton", "MatrixFreeSystems"]

#: The preconditioners invert ``A + shift · mean(diag(J_vᵀ J_v)) I`` (``A``: ``J_vᵀ J_v`` or
#: ``∇²q``): near a slow point ``J_v`` is nearly singular in a direction that turns from state
#: to state, and the undamped inverse at one state amplifies it at the others. Measured on the
#: 256-unit rate network from 8 states 0.8 from its slow point: shift 0 left relative GMRES
#: residuals of 0.5-1.0 after 40 products; 1e-3 followed the dense polish (final gradient
#: cosines 1e-10 to 8e-3, 7 of 8 within 35% of the dense ones and all within a factor 3.4,
#: the same stationary verdicts); 1e-2 slightly worse.
_SHIFT = 1e-3

#: The batch's slowest state becomes a reference every this many systems (iterations): each
#: new one costs an inversion or two.
_LEAD_REFRESH = 3

#: Random ±1 probes of the Hutchinson estimate of ‖J_v‖_F² (the damping's scale).
_PROBES = 2


class MatrixFreeSystems:
    """The polish's systems at states ``x`` (b, n) with velocities ``v`` (b, n), as products
    (module docstring); the interface of :class:`~fixedpoints.polish_systems.DenseSystems`.

    Parameters
    ----------
    dynamics : Dynamics
    x, v : torch.Tensor of shape (b, n)
    max_iter : int
        GMRES iterations (products) per solve.
    rtol : float
        Relative residual each solve aims at.
    generator : torch.Generator
        Source of the probes of the damping's scale.
    preconditioner : callable, optional
        ``preconditioner(j, exact) -> (n, n) tensor or None``: the preconditioner of reference
        ``j`` for Gauss–Newton (``exact`` False) or exact-Hessian rows.
    assignment : torch.Tensor of shape (b,), optional
        The reference of each row.

    Attributes
    ----------
    gradient : torch.Tensor of shape (b, n)
        ``∇q = J_vᵀ v``.
    """

    def __init__(self, dynamics: Dynamics, x: torch.Tensor, v: torch.Tensor, *,
                 max_iter: int, rtol: float, generator: torch.Generator,
                 preconditioner: Optional[Callable[[int, bool], Optional[torch.Tensor]]] = None,
                 assignment: Optional[torch.Tensor] = None):
        self._max_iter, self._rtol = max_iter, rtol
        self._preconditioner, self._assignment = preconditioner, assignment
        with torch.enable_grad():
            self._x = x.detach().requires_grad_(True)
            self._out = dynamics.velocity(self._x)
            self._w = v.detach().clone().requires_grad_(True)
            (self._g,) = torch.autograd.grad(self._out, self._x, self._w, create_graph=True)
        self.gradient = self._g.detach()
        self._exact = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        probes = torch.randint(0, 2, (_PROBES,) + tuple(x.shape), generator=generator,
                               dtype=x.dtype).to(x.device) * 2 - 1
        frobenius = torch.stack([(self._jvp(z) ** 2).sum(1) for z in probes]).mean(0)
        self._mean_diagonal = frobenius / x.shape[1]

    def _jvp(self, p: torch.Tensor) -> torch.Tensor:
        """``J_v p`` row by row, for ``p`` of shape (b, n) (the backward pass of ``g`` in ``w``
        only: no second derivatives of the velocity)."""
        (jp,) = torch.autograd.grad(self._g, self._w, p, retain_graph=True)
        return jp.detach()

    def _products(self, p: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(J_v p, Σ_k v_k ∇²v_k p)`` row by row, for ``p`` of shape (b, n)."""
        jp, curvature = torch.autograd.grad(self._g, (self._w, self._x), p, retain_graph=True)
        return jp.detach(), curvature.detach()

    def _gauss_newton(self, jp: torch.Tensor) -> torch.Tensor:
        (jtjp,) = torch.autograd.grad(self._out, self._x, jp, retain_graph=True)
        return jtjp.detach()

    def mean_diagonal(self) -> torch.Tensor:
        """The mean of the diagonal of each ``J_vᵀ J_v`` (estimated), shape (b,)."""
        return self._mean_diagonal

    def use_exact_hessian(self, rows: torch.Tensor) -> None:
        """``H = ∇²q`` in ``rows`` (indices)."""
        self._exact[rows] = True

    def _groups(self) -> List[Tuple[torch.Tensor, torch.Tensor]]:
        """``(rows, M)`` for each reference and kind that has a preconditioner."""
        if self._preconditioner is None or self._assignment is None:
            return []
        groups = []
        for j in torch.unique(self._assignment).tolist():
            for exact in (False, True):
                rows = torch.nonzero((self._assignment == j) & (self._exact == exact)).flatten()
                if rows.numel():
                    matrix = self._preconditioner(j, exact)
                    if matrix is not None:
                        groups.append((rows, matrix))
        return groups

    def solve(self, damping: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``Δx ≈ −(H + damping_i I)⁻¹ ∇q`` for each row (``damping`` (b,)), by GMRES:
        ``(Δx (b, n), sane (b,))``, Δx zero where ∇q or the damping is not finite."""
        g = self.gradient
        sane = torch.isfinite(g.sum(dim=1)) & torch.isfinite(damping)
        exact = self._exact[:, None]
        any_exact = bool(self._exact.any())

        def matvec(p: torch.Tensor) -> torch.Tensor:
            if not any_exact:  # Gauss–Newton rows only: no curvature pass
                return self._gauss_newton(self._jvp(p)) + damping[:, None] * p
            jp, curvature = self._products(p)
            hp = self._gauss_newton(jp) + torch.where(exact, curvature, torch.zeros_like(p))
            return hp + damping[:, None] * p

        groups = self._groups()

        def precondition(t: torch.Tensor) -> torch.Tensor:  # M_i t_i for each row
            out = t.clone()
            for rows, matrix in groups:
                out[rows] = t[rows] @ matrix  # M is symmetric: t M = (M t)ᵀ
            return out

        rhs = torch.where(sane[:, None], -g, torch.zeros_like(g))
        if not groups:
            delta, _ = _linalg.gmres(matvec, rhs, max_iter=self._max_iter, rtol=self._rtol)
        else:  # right preconditioning: A M y = rhs, Δ = M y
            y, _ = _linalg.gmres(lambda t: matvec(precondition(t)), rhs,
                                 max_iter=self._max_iter, rtol=self._rtol)
            delta = precondition(y)
        sane = sane & torch.isfinite(delta.sum(dim=1))
        return torch.where(sane[:, None], delta, torch.zeros_like(delta)), sane


class MatrixFreeNewton:
    """How a matrix-free polish forms its systems: the interface of
    :class:`~fixedpoints.polish_systems.PolishNewton` (no closed form).

    Every system is right-preconditioned by the inverse of its kind of matrix (``J_vᵀ J_v``
    or ``∇²q``, shifted by :data:`_SHIFT` of its mean diagonal) at the reference point nearest
    to its state: the points found so far (:meth:`use_references`) and the batch's slowest
    state, renewed every :data:`_LEAD_REFRESH` iterations (on the 1024-unit rate network the
    candidates that approach no point found all approached one slow point). Near its
    reference a system is nearly its preconditioner's inverse: on the 256-unit rate network,
    at states 0.16 from its fixed points (the states' spread is 6.0), 5 products leave relative
    residuals of at most 6e-4, where 5 unpreconditioned ones leave 0.17 (the normal equations
    square ``J_v``'s condition number; tests/fixedpoints/test_matrix_free.py). Each
    preconditioner costs one Jacobian (and curvature) and one inversion (2-4 n³) and n² of
    memory; the ``max_references`` used most recently are kept (:attr:`inversions` counts
    them all).

    Parameters
    ----------
    dynamics : Dynamics
    max_iter : int
        GMRES iterations (products) per solve.
    rtol : float
        Relative residual each solve aims at.
    seed : int
        Seed of the probes of the damping's scale.
    max_references : int
        Preconditioners kept at once.
    """

    closed = None

    def __init__(self, dynamics: Dynamics, *, max_iter: int = 40, rtol: float = 1e-3,
                 seed: int = 0, max_references: int = 8):
        self.dynamics, self.max_iter, self.rtol = dynamics, max_iter, rtol
        self.max_references = max_references
        self._generator = torch.Generator().manual_seed(int(seed))
        self._references: Optional[torch.Tensor] = None
        self._lead: Optional[torch.Tensor] = None
        self._lead_age = 0
        self._cache: "OrderedDict[Tuple[bytes, bool], Optional[torch.Tensor]]" = OrderedDict()
        self.inversions = 0

    def use_references(self, points: torch.Tensor) -> None:
        """Precondition by the points ``points`` (k, n) too (the points found so far)."""
        self._references = points.detach() if len(points) else None

    def _inverse(self, point: torch.Tensor, exact: bool) -> Optional[torch.Tensor]:
        """The row-wise preconditioner at ``point`` (n,): ``t @ M = (A + shift I)⁻¹ t`` with
        ``A = J_vᵀJ_v`` or ``∇²q`` there (:data:`_SHIFT`); None where that is singular."""
        key = (point.cpu().numpy().tobytes(), exact)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        state = point.unsqueeze(0)
        matrix: Optional[torch.Tensor]
        try:
            jac = self.dynamics.jacobian(state).detach()[0]
            gram = jac.T @ jac
            eye = torch.eye(len(gram), dtype=gram.dtype, device=gram.device)
            shifted = gram + _SHIFT * float(torch.diagonal(gram).mean()) * eye
            if exact:  # may be indefinite: LU
                with torch.no_grad():
                    v = self.dynamics.velocity(state)
                curvature = self.dynamics.curvature(state, v).detach()[0]  # ∇²q − J_vᵀ J_v
                shifted = shifted + 0.5 * (curvature + curvature.T)
                matrix = _linalg.inverse(shifted)
            else:  # positive definite: Cholesky (about half the cost of an LU inverse)
                factor, info = torch.linalg.cholesky_ex(shifted)
                if int(info) != 0 or not bool(torch.isfinite(factor).all()):
                    raise ValueError("not positive definite")
                matrix = torch.cholesky_inverse(factor)
        except ValueError:  # singular there (a line attractor): unpreconditioned
            matrix = None
        self.inversions += 1
        self._cache[key] = matrix
        while len(self._cache) > self.max_references:
            self._cache.popitem(last=False)
        return matrix

    def systems(self, x: torch.Tensor, v: torch.Tensor) -> MatrixFreeSystems:
        """The systems at ``x`` (b, n) with velocities ``v`` (b, n)."""
        assignment = None
        refs = x.new_zeros(0, x.shape[1])
        if len(x):
            if self._lead is None or self._lead_age >= _LEAD_REFRESH:
                self._lead = x[int(torch.argmin((v * v).sum(1)))].unsqueeze(0)
                self._lead_age = 0
            self._lead_age += 1
            refs = (self._lead if self._references is None
                    else torch.cat([self._references, self._lead]))
            assignment = torch.cdist(x, refs).argmin(dim=1)
        return MatrixFreeSystems(self.dynamics, x, v, max_iter=self.max_iter, rtol=self.rtol,
                                 generator=self._generator,
                                 preconditioner=lambda j, exact: self._inverse(refs[j], exact),
                                 assignment=assignment)

    def gradient(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``∇q = J_vᵀ v`` at ``x`` (b, n) with velocities ``v`` (b, n), shape (b, n)."""
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self.dynamics.velocity(xg), xg, v.detach())
        return g.detach()
