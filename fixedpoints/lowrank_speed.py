"""Gradient and Hessian of the speed of a leaky low-rank tanh network, in O(n² K) per state.

For ``v(x) = a (tanh(c + L R x) − x)`` (a map's ``F(x) − x`` with leak ``a = α``, or a flow
with ``a = 1``; L of shape (n, K), R of shape (K, n)), with ``t = tanh(c + L R x)``,
``d = 1 − t²`` and ``t'' = −2 t d``:

    J_v = a (diag(d) L R − I),        ∇q = J_vᵀ v = a (Rᵀ Lᵀ (d ⊙ v) − v),
    ∇²q = J_vᵀ J_v + Σ_k v_k ∇²v_k
        = a² I − a² (P + Pᵀ) + Rᵀ Lᵀ diag(a² d² + a v ⊙ t'') L R,      P = diag(d) L R,

the same matrices as :meth:`Dynamics.speed_hessian` (up to round-off) without the n³ product
``J_vᵀ J_v``. :func:`low_rank_speed` builds the closed form only after checking it against the
system: the velocity at the given states and the gradient and Hessian at one of them must
agree with the system's own to a relative 1e-10; otherwise (or without a low-rank form) it
returns None and callers use the system's derivatives.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch

from .dynamics import Dynamics
from .lowrank import LowRankForm

__all__ = ["LowRankSpeed", "LowRankSystem", "low_rank_speed"]

#: Largest relative disagreement with the system's own velocity, gradient and Hessian.
_AGREEMENT_RTOL = 1e-10


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
        self._template: Optional[torch.Tensor] = None

    def _drive(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.bias + (x @ self.right.T) @ self.left.T)

    def predicted_velocity(self, x: torch.Tensor) -> torch.Tensor:
        """``a (tanh(c + L R x) − x)``, shape (b, n)."""
        return self.leak * (self._drive(x) - x)

    def gradient(self, x: torch.Tensor, v: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``∇q`` at each row of ``x`` (b, n), shape (b, n); ``v``: the velocity there."""
        x = x.detach()
        if v is None:
            with torch.no_grad():
                v = self.dynamics.velocity(x)
        t = self._drive(x)
        return self.leak * ((((1.0 - t * t) * v) @ self.left) @ self.right - v)

    def _parts(self, x: torch.Tensor):
        """Velocity, ``d = tanh'``, the weights ``a² d² + a v t''`` and ∇q at ``x``."""
        a = self.leak
        with torch.no_grad():
            v = self.dynamics.velocity(x)
        t = self._drive(x)
        d = 1.0 - t * t
        g = a * (((d * v) @ self.left) @ self.right - v)
        return v, d, a * a * d * d - 2.0 * a * v * t * d, g

    def hessian_and_gradient(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``∇²q`` (b, n, n), symmetric, and ``∇q`` (b, n) at each row of ``x`` (b, n)."""
        x = x.detach()
        a = self.leak
        _, d, w, g = self._parts(x)
        inner = torch.einsum("nk,bn,nl->bkl", self.left, w, self.left)  # (b, K, K)
        h = self.right.T @ inner @ self.right
        p = d[:, :, None] * self.weight
        h = h - (a * a) * (p + p.transpose(1, 2))
        h.diagonal(dim1=1, dim2=2).add_(a * a)
        return 0.5 * (h + h.transpose(1, 2)), g

    def newton_system(self, x: torch.Tensor) -> "LowRankSystem":
        """The damped Newton systems ``(∇²q + λ I) δ = −∇q`` at the rows of ``x`` (b, n)."""
        x = x.detach()
        a2 = self.leak * self.leak
        k = self.left.shape[1]
        _, d, w, g = self._parts(x)
        # ∇²q = a² I + U C Uᵀ: U = [Rᵀ, diag(d) L] (b, n, 2K),
        # C = [[Lᵀ diag(w) L, −a² I], [−a² I, 0]] (b, 2K, 2K)
        rt = self.right.T
        u = torch.cat([rt.expand(len(x), -1, -1), d[:, :, None] * self.left], dim=2)
        inner = (self.left.T * w[:, None, :]) @ self.left  # Lᵀ diag(w) L, (b, K, K)
        # diagonal: a² + diag(Rᵀ inner R) − 2 a² d ⊙ diag(L R)
        diagonal = a2 + ((rt @ inner) * rt).sum(-1) - (2.0 * a2) * d * self._weight_diagonal
        # C⁻¹ = [[0, −a⁻² I], [−a⁻² I, −a⁻⁴ Lᵀ diag(w) L]]
        c_inv = self._hyperbolic(k, a2, x).repeat(len(x), 1, 1)
        c_inv[:, k:, k:] = inner / (-a2 * a2)
        return LowRankSystem(g, diagonal, u, c_inv, a2, k)

    def _hyperbolic(self, k: int, a2: float, x: torch.Tensor) -> torch.Tensor:
        """``[[0, −a⁻² I], [−a⁻² I, 0]]`` of shape (1, 2K, 2K)."""
        if self._template is None:
            eye = torch.eye(k, dtype=x.dtype, device=x.device) / -a2
            zero = torch.zeros_like(eye)
            self._template = torch.cat([torch.cat([zero, eye], 1), torch.cat([eye, zero], 1)])[None]
        return self._template


class LowRankSystem:
    """``(a² I + U C Uᵀ + λ I) δ = −g`` for a batch of states, solved in O(n K²) each.

    With ``s = a² + λ`` and the 2K × 2K matrix ``M = C⁻¹ + Uᵀ U / s``, Woodbury's identity gives
    ``δ = −(g − U M⁻¹ Uᵀ g / s) / s``, and Haynsworth's inertia additivity (C has K positive and
    K negative eigenvalues) makes ``s I + U C Uᵀ`` positive definite exactly when M has K
    negative and no zero eigenvalue.

    Attributes
    ----------
    gradient : torch.Tensor of shape (b, n)
        ∇q.
    diagonal : torch.Tensor of shape (b, n)
        The diagonal of ∇²q.
    """

    def __init__(self, gradient, diagonal, u, c_inv, base: float, rank: int):
        self.gradient, self.diagonal = gradient, diagonal
        self._u, self._c_inv, self._base, self._rank = u, c_inv, base, rank
        self._gram = u.transpose(1, 2) @ u  # (b, 2K, 2K)
        self._ug = (gradient.unsqueeze(1) @ u).transpose(1, 2)  # Uᵀ g, (b, 2K, 1)

    def solve(self, rows: Optional[torch.Tensor], shift: torch.Tensor):
        """``δ`` for ``rows`` (indices; None: all) at ``λ = shift`` (one per row) and whether
        each system was positive definite (δ is zero where not): ``(delta (m, n), ok (m,))``."""
        c_inv, gram, ug, u, g = self._c_inv, self._gram, self._ug, self._u, self.gradient
        if rows is not None:
            c_inv, gram, ug, u, g = c_inv[rows], gram[rows], ug[rows], u[rows], g[rows]
        s = self._base + shift
        m = c_inv + gram / s[:, None, None]
        vals = torch.linalg.eigvalsh(m)  # reads the lower triangle
        tiny = 1e-13 * vals.abs().amax(1, keepdim=True)
        # (NaN fails both tests)
        ok = ((vals < -tiny).sum(1) == self._rank) & (vals.abs() > tiny).all(1)
        if bool(ok.all()):
            y = torch.linalg.solve(m, ug)  # M⁻¹ Uᵀ g
            return ((u @ y).squeeze(-1) / s[:, None] - g) / s[:, None], ok
        delta = torch.zeros_like(g)
        if bool(ok.any()):
            s_ok = s[ok][:, None]
            y = torch.linalg.solve(m[ok], ug[ok])
            delta[ok] = ((u[ok] @ y).squeeze(-1) / s_ok - g[ok]) / s_ok
        return delta, ok


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
    closed = LowRankSpeed(dynamics, form, leak)
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
