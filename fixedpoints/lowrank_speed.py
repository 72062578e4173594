"""Gradient, Hessian and Newton steps of the speed of a leaky low-rank tanh network.

For ``v(x) = a (tanh(c + L R x) − x)`` (a map's ``F(x) − x`` with leak ``a = α``, or a flow
with ``a = 1``; L of shape (n, K), R of shape (K, n)), with ``t = tanh(c + L R x)``,
``d = 1 − t²`` and ``t'' = −2 t d``:

    J_v = a (diag(d) L R − I),        ∇q = J_vᵀ v = a (Rᵀ Lᵀ (d ⊙ v) − v),
    ∇²q = J_vᵀ J_v + Σ_k v_k ∇²v_k
        = a² I − a² (P + Pᵀ) + Rᵀ Lᵀ diag(a² d² + a v ⊙ t'') L R,      P = diag(d) L R,

the same matrices as :meth:`Dynamics.speed_hessian` (up to round-off) without the n³ product
``J_vᵀ J_v``; the damped Newton systems with it are solved in O(n K²) each
(:class:`LowRankSystem`). Gauss–Newton's ``J_vᵀ J_v`` is the same expression without the
``a v ⊙ t''`` term (:meth:`LowRankSpeed.gauss_newton_system`, the finder's polish:
:mod:`fixedpoints.polish_systems`).

:func:`low_rank_speed` builds the closed form only after checking it against the system: the
velocity at the given states and the gradient and Hessian at one of them must agree with the
system's own to a relative 1e-10; otherwise (or without a low-rank form, or with R Rᵀ
singular) it returns None and callers use the system's derivatives.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch

from .dynamics import Dynamics
from .lowrank import LowRankForm

__all__ = ["LowRankSpeed", "LowRankSystem", "low_rank_speed"]

#: Largest relative disagreement with the system's own velocity, gradient and Hessian.
_AGREEMENT_RTOL = 1e-10

#: Largest condition number of ``R Rᵀ`` for which the closed form is used.
_MAX_CONDITION = 1e12


class LowRankSpeed:
    """∇q and ∇²q of ``v(x) = a (tanh(c + L R x) − x)``; see the module docstring.

    Parameters
    ----------
    dynamics : Dynamics
        The system (its velocity is used for ∇q, so that ∇q = J_vᵀ v holds with the very v the
        search evaluates q from).
    form : LowRankForm
        L, R, c.
    leak : float
        ``a``.
    """

    def __init__(self, dynamics: Dynamics, form: LowRankForm, leak: float):
        dtype, device = dynamics.dtype, dynamics.device
        self.dynamics = dynamics
        self.leak = float(leak)
        self.left = torch.as_tensor(form.left, dtype=dtype, device=device)
        self.right = torch.as_tensor(form.right, dtype=dtype, device=device)
        self.bias = torch.as_tensor(form.bias, dtype=dtype, device=device)
        self.weight = self.left @ self.right
        self._weight_diagonal = torch.diagonal(self.weight)
        #: ``(R Rᵀ)⁻¹`` (K, K) and the K × K identity, for :class:`LowRankSystem`
        self.gram_inverse = torch.linalg.inv(self.right @ self.right.T)
        self.eye_k = torch.eye(self.left.shape[1], dtype=dtype, device=device)

    def _drive(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.bias + (x @ self.right.T) @ self.left.T)

    def predicted_velocity(self, x: torch.Tensor) -> torch.Tensor:
        """``a (tanh(c + L R x) − x)``, shape (b, n)."""
        return self.leak * (self._drive(x) - x)

    def gradient(self, x: torch.Tensor, v: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``∇q`` at each row of ``x`` (b, n), shape (b, n); ``v``: the velocity there."""
        return self._parts(x.detach(), v)[3]

    def _parts(self, x: torch.Tensor, v: Optional[torch.Tensor] = None):
        """Velocity, ``t = tanh(c + L R x)``, ``d = tanh'`` and ∇q at ``x`` (``v``: the
        velocity there when the caller has it)."""
        if v is None:
            with torch.no_grad():
                v = self.dynamics.velocity(x)
        t = self._drive(x)
        d = 1.0 - t * t
        g = self.leak * (((d * v) @ self.left) @ self.right - v)
        return v, t, d, g

    def jacobian_product(self, x: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        """``J_v(x_i) offset_i = a (d_i ⊙ (L R offset_i) − offset_i)`` for each row, shape
        (b, n); ``x``, ``offset`` (b, n)."""
        t = self._drive(x.detach())
        return self.leak * ((1.0 - t * t) * ((offset @ self.right.T) @ self.left.T) - offset)

    def hessian_and_gradient(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``∇²q`` (b, n, n), symmetric, and ``∇q`` (b, n) at each row of ``x`` (b, n)."""
        x = x.detach()
        a = self.leak
        v, t, d, g = self._parts(x)
        w = a * a * d * d - 2.0 * a * v * t * d
        inner = torch.einsum("nk,bn,nl->bkl", self.left, w, self.left)  # (b, K, K)
        h = self.right.T @ inner @ self.right
        p = d[:, :, None] * self.weight
        h = h - (a * a) * (p + p.transpose(1, 2))
        h.diagonal(dim1=1, dim2=2).add_(a * a)
        return 0.5 * (h + h.transpose(1, 2)), g

    def newton_system(self, x: torch.Tensor) -> "LowRankSystem":
        """The damped Newton systems ``(∇²q + λ I) δ = −∇q`` at the rows of ``x`` (b, n)."""
        x = x.detach()
        a = self.leak
        v, t, d, g = self._parts(x)
        return self._system(g, d, a * a * d * d - 2.0 * a * v * t * d)

    def gauss_newton_system(self, x: torch.Tensor, v: torch.Tensor) -> "LowRankSystem":
        """The Levenberg–Marquardt systems ``(J_vᵀ J_v + λ I) δ = −∇q`` at the rows of ``x``
        (b, n) with velocities ``v`` (b, n): ∇²q without ``Σ_k v_k ∇²v_k`` (weights ``a² d²``);
        :meth:`LowRankSystem.use_exact_hessian` puts ∇²q in place for chosen rows."""
        x = x.detach()
        a = self.leak
        v, t, d, g = self._parts(x, v)
        return self._system(g, d, a * a * d * d, extra=-2.0 * a * v * t * d)

    def _system(self, g, d, w, extra=None) -> "LowRankSystem":
        a2 = self.leak * self.leak
        left, right = self.left, self.right
        inner = (left.T * w[:, None, :]) @ left  # Lᵀ diag(w) L, (b, K, K)
        rt = right.T
        # diagonal: a² + diag(Rᵀ inner R) − 2 a² d ⊙ diag(L R)
        diagonal = a2 + ((rt @ inner) * rt).sum(-1) - (2.0 * a2) * d * self._weight_diagonal
        return LowRankSystem(self, g, diagonal, d, inner,
                             (right * d[:, None, :]) @ left,  # R diag(d) L
                             (left.T * (d * d)[:, None, :]) @ left,  # Lᵀ diag(d²) L
                             extra)


class LowRankSystem:
    """``(a² I + U C Uᵀ + λ I) δ = −g`` for a batch of states, solved in O(n K²) each.

    ``∇²q = a² I + U C Uᵀ`` with ``U = [Rᵀ, diag(d) L]`` (n × 2K) and
    ``C = [[Lᵀ diag(w) L, −a² I], [−a² I, 0]]``. With ``s = a² + λ`` and the 2K × 2K matrix
    ``M = C⁻¹ + Uᵀ U / s = [[A, B], [Bᵀ, D]]``, Woodbury's identity gives
    ``δ = −(g − U M⁻¹ Uᵀ g / s) / s``. Haynsworth's inertia additivity (C has K positive and K
    negative eigenvalues) makes ``s I + U C Uᵀ`` positive definite exactly when M has K negative
    and no zero eigenvalue; as ``A = R Rᵀ / s`` is positive definite, exactly when the Schur
    complement ``S = D − Bᵀ A⁻¹ B`` (K × K) is negative definite: a Cholesky factorization of
    ``−S`` tells it and gives M⁻¹ by block elimination.

    Attributes
    ----------
    gradient : torch.Tensor of shape (b, n)
        ∇q.
    diagonal : torch.Tensor of shape (b, n)
        The diagonal of the matrix (∇²q, or ``J_vᵀ J_v`` for Gauss–Newton systems).

    A Gauss–Newton system (:meth:`LowRankSpeed.gauss_newton_system`) has the weights
    ``w = a² d²`` in ``C``'s corner ``Lᵀ diag(w) L`` (``J_vᵀ J_v = a² I − a² (P + Pᵀ) + Rᵀ Lᵀ
    diag(a² d²) L R``); the omitted ``a v ⊙ t''`` (``extra``) is added back row by row by
    :meth:`use_exact_hessian`.
    """

    def __init__(self, closed: LowRankSpeed, gradient, diagonal, d, inner, rdl, dd,
                 extra=None):
        self.gradient, self.diagonal = gradient, diagonal
        self._closed, self._d = closed, d
        self._inner, self._rdl, self._dd = inner, rdl, dd
        self._extra = extra
        self._r1 = gradient @ closed.right.T  # R g, (b, K)
        self._r2 = (gradient * d) @ closed.left  # Lᵀ diag(d) g, (b, K)

    def solve(self, rows: Optional[torch.Tensor], shift: torch.Tensor):
        """``δ`` for ``rows`` (indices; None: all) at ``λ = shift`` (one per row) and whether
        each system was positive definite (δ is zero where not): ``(delta (m, n), ok (m,))``."""
        closed = self._closed
        parts = (self.gradient, self._d, self._inner, self._rdl, self._dd, self._r1, self._r2)
        if rows is not None:
            parts = tuple(t[rows] for t in parts)
        g, d, inner, rdl, dd, r1, r2 = parts
        a2 = closed.leak * closed.leak
        s = (a2 + shift)[:, None]
        p = closed.gram_inverse  # (R Rᵀ)⁻¹; A⁻¹ = s (R Rᵀ)⁻¹
        b = rdl / s[:, :, None] - closed.eye_k / a2
        schur = dd / s[:, :, None] - inner / (a2 * a2) - s[:, :, None] * (b.mT @ (p @ b))
        chol, info = torch.linalg.cholesky_ex(-schur)
        ok = info == 0
        pr1 = r1 @ p
        rhs = r2 - s * (pr1.unsqueeze(1) @ b).squeeze(1)  # r2 − Bᵀ A⁻¹ r1
        y2 = -torch.cholesky_solve(rhs.unsqueeze(-1), chol).squeeze(-1)  # S⁻¹ rhs
        y1 = s * ((r1 - (b @ y2.unsqueeze(-1)).squeeze(-1)) @ p)  # A⁻¹ (r1 − B y2)
        uy = y1 @ closed.right + d * (y2 @ closed.left.T)  # U M⁻¹ Uᵀ g
        delta = (uy / s - g) / s
        return torch.where(ok[:, None], delta, torch.zeros_like(delta)), ok

    def use_exact_hessian(self, rows: torch.Tensor) -> None:
        """Make the systems of ``rows`` (indices) those of ∇²q: add ``Lᵀ diag(a v ⊙ t'') L`` to
        their corner and its part to their diagonal (Gauss–Newton systems only)."""
        if self._extra is None:
            raise ValueError("use_exact_hessian: these systems already have the exact Hessian")
        left, rt = self._closed.left, self._closed.right.T
        change = (left.T * self._extra[rows][:, None, :]) @ left  # (m, K, K)
        self._inner[rows] += change
        self.diagonal[rows] += ((rt @ change) * rt).sum(-1)

    def matrix(self, rows: torch.Tensor) -> torch.Tensor:
        """The matrices of ``rows`` (indices), dense and symmetric, shape (m, n, n): ``a² I −
        a² (P + Pᵀ) + Rᵀ (Lᵀ diag(w) L) R`` with ``P = diag(d) L R``."""
        closed = self._closed
        a2 = closed.leak * closed.leak
        h = closed.right.T @ self._inner[rows] @ closed.right
        p = self._d[rows][:, :, None] * closed.weight
        h = h - a2 * (p + p.transpose(1, 2))
        h.diagonal(dim1=1, dim2=2).add_(a2)
        return 0.5 * (h + h.transpose(1, 2))


def low_rank_speed(dynamics: Dynamics, form: Optional[LowRankForm],
                   x: torch.Tensor) -> Optional[LowRankSpeed]:
    """The closed form of ∇q and ∇²q, or None where it does not describe ``dynamics``.

    Parameters
    ----------
    dynamics : Dynamics
    form : LowRankForm or None
        The system's reduced form (:func:`~fixedpoints.lowrank.low_rank_form`).
    x : torch.Tensor of shape (b, n_states)
        States at which it is checked against the system (the velocity at all of them, ∇q and
        ∇²q at the first).

    Returns
    -------
    LowRankSpeed or None
    """
    if form is None or form.n_states != dynamics.n_states or len(x) == 0:
        return None
    if not np.linalg.cond(form.right @ form.right.T) < _MAX_CONDITION:
        return None  # R of lower rank than its rows: the Schur complement needs R Rᵀ
    x = x.detach()
    unit = LowRankSpeed(dynamics, form, 1.0)
    with torch.no_grad():
        v = dynamics.velocity(x)
        y = unit.predicted_velocity(x)
    if not (bool(torch.isfinite(v).all()) and bool(torch.isfinite(y).all())):
        return None
    leak = float((v * y).sum() / (y * y).sum().clamp_min(1e-300))
    if not leak > 0:
        return None
    closed, closed.leak = unit, leak  # the leak is only a factor: no second build
    if not _close(closed.predicted_velocity(x), v):
        return None
    probe = x[:1]
    h, g = closed.hessian_and_gradient(probe)
    with torch.no_grad():
        jac = dynamics.jacobian(probe).detach()
        h_sys = dynamics.speed_hessian(probe, jacobian=jac)
    g_sys = (jac.transpose(1, 2) @ v[:1].unsqueeze(-1)).squeeze(-1)
    # ∇q vanishes at a root: compare it on the scale of its two factors
    g_scale = float(torch.linalg.matrix_norm(jac).max() * v[:1].norm())
    if not (_close(h, h_sys) and float((g - g_sys).abs().max()) <= _AGREEMENT_RTOL * g_scale):
        return None
    return closed


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    scale = float(b.abs().max())
    return bool(torch.isfinite(a).all()) and float((a - b).abs().max()) <= _AGREEMENT_RTOL * scale
