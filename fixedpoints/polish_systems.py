"""The Levenberg–Marquardt systems of the finder's polish, dense or in closed form.

Each iteration of the polish (:func:`fixedpoints.finder.find_fixed_points`) solves, for a batch
of states with velocities ``v``,

    (H + δ I) Δx = −J_vᵀ v,      H = J_vᵀ J_v  (Gauss–Newton),

with ``H`` replaced by the exact Hessian of the speed ``∇²q = J_vᵀ J_v + Σ_k v_k ∇²v_k`` in the
rows where Gauss–Newton turned linear (near slow points). :func:`polish_newton` chooses once per
search how these systems are formed:

* :class:`DenseSystems`: from the system's Jacobians, ``J_vᵀ J_v`` by
  :class:`~fixedpoints.gram.Gram` (by blocks where J_v's last columns are diagonal, as a
  one-layer LSTM's) and :meth:`Dynamics.speed_hessian`, solved by Cholesky (LU, least squares
  where not definite);
* :class:`LowRankSystems`: for a leaky low-rank tanh network ``v = a (tanh(c + L R x) − x)``,
  ``J_vᵀ J_v + δ I = (a² + δ) I − a² (P + Pᵀ) + Rᵀ Lᵀ diag(a² d²) L R`` (``P = diag(d) L R``)
  and ∇²q likewise (:mod:`fixedpoints.lowrank_speed`), solved by Woodbury's identity in
  O(n K²) per state, without a Jacobian or any n × n matrix; a system that is not positive
  definite (a damped exact Hessian may not be) is assembled and solved densely as above.

Both give the same steps up to round-off. The closed form is used only where
:func:`~fixedpoints.lowrank_speed.low_rank_speed` found it to describe the system (velocity,
∇q and ∇²q checked against the system's own to a relative 1e-10) and where it is cheaper
(rank ``K ≤ n / 4``).
"""
from __future__ import annotations

from typing import Optional, Tuple, Union

import torch

from . import linalg as _linalg
from .dynamics import Dynamics
from .gram import Gram
from .lowrank import low_rank_form_or_none
from .lowrank_speed import LowRankSpeed, low_rank_speed

__all__ = ["DenseSystems", "LowRankSystems", "PolishNewton", "polish_newton"]

#: The closed form is used up to this fraction of the state dimension as rank.
_MAX_RANK_FRACTION = 0.25

#: States the closed form's velocity is checked at (a thousand initial states took 5 ms).
_CHECKED_STATES = 32


class DenseSystems:
    """The polish's systems at states ``x`` (b, n) with velocities ``v`` (b, n), from the
    Jacobians (module docstring).

    Attributes
    ----------
    gradient : torch.Tensor of shape (b, n)
        ``∇q = J_vᵀ v``.
    """

    def __init__(self, dynamics: Dynamics, x: torch.Tensor, v: torch.Tensor):
        self._dynamics, self._x, self._v = dynamics, x, v
        self._jac = dynamics.jacobian(x).detach()
        # JᵀJ by blocks where J_v's last columns are diagonal (a one-layer LSTM: gram.py)
        self._gram = Gram(self._jac, dynamics.diagonal_tail)
        self.gradient = (v.unsqueeze(1) @ self._jac).squeeze(1)  # as a row: 3-10x faster

    def diagonal(self) -> torch.Tensor:
        """The diagonal of each ``H``, shape (b, n)."""
        return self._gram.diagonal()

    def mean_diagonal(self) -> torch.Tensor:
        """The mean of the diagonal of each ``H``, shape (b,)."""
        return self.diagonal().mean(1)

    def use_exact_hessian(self, rows: torch.Tensor) -> None:
        """``H = ∇²q`` in ``rows`` (indices)."""
        dynamics, gram = self._dynamics, self._gram
        if dynamics.curvature_fn is not None and gram.dense is not None:  # not in blocks
            # ∇²q = JᵀJ + Σ v_k ∇²v_k with the JᵀJ at hand (speed_hessian would form it
            # again: 2 n³ per row, a sixth of the polish at n = 1024)
            hessian = gram.dense[rows] + dynamics.curvature(self._x[rows], self._v[rows])
        else:
            hessian = dynamics.speed_hessian(self._x[rows], jacobian=self._jac[rows])
        gram.replace(rows, hessian)

    def solve(self, damping: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``Δx = −(H + damping_i I)⁻¹ ∇q`` for each row (``damping`` (b,)): ``(Δx (b, n),
        sane (b,))``, Δx zero where the system or ∇q is not finite (``sane`` False)."""
        return self._gram.solve(damping, -self.gradient)


class LowRankSystems:
    """The polish's systems at states ``x`` (b, n) with velocities ``v`` (b, n), in closed form
    for a leaky low-rank tanh network (module docstring); the interface of
    :class:`DenseSystems`.

    Attributes
    ----------
    gradient : torch.Tensor of shape (b, n)
        ``∇q = J_vᵀ v``.
    """

    def __init__(self, closed: LowRankSpeed, x: torch.Tensor, v: torch.Tensor):
        self._system = closed.gauss_newton_system(x, v)
        self.gradient = self._system.gradient

    def diagonal(self) -> torch.Tensor:
        """The diagonal of each ``H``, shape (b, n)."""
        return self._system.diagonal

    def mean_diagonal(self) -> torch.Tensor:
        """The mean of the diagonal of each ``H``, shape (b,)."""
        return self.diagonal().mean(1)

    def use_exact_hessian(self, rows: torch.Tensor) -> None:
        """``H = ∇²q`` in ``rows`` (indices)."""
        self._system.use_exact_hessian(rows)

    def solve(self, damping: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``Δx = −(H + damping_i I)⁻¹ ∇q`` for each row (``damping`` (b,)): ``(Δx (b, n),
        sane (b,))``, Δx zero where the system or ∇q is not finite (``sane`` False).

        Positive definite systems by Woodbury's identity; the others (damped exact Hessians
        that are not definite) assembled and solved by LU (least squares where singular)."""
        g, system = self.gradient, self._system
        # a sum is non-finite exactly when a term is (or it overflows): such rows must not
        # reach LAPACK, and their points stop
        sane = (torch.isfinite(g.sum(dim=1)) & torch.isfinite(system.diagonal.sum(dim=1))
                & torch.isfinite(damping))
        if bool(sane.all()):
            delta, ok = system.solve(None, damping)
            rows = None
        else:
            rows = torch.nonzero(sane).flatten()
            part, ok_part = system.solve(rows, damping[rows])
            delta = torch.zeros_like(g)
            delta[rows] = part
            ok = torch.zeros_like(sane)
            ok[rows] = ok_part
        rest = torch.nonzero(sane & ~ok).flatten()
        if rest.numel():
            matrix = system.matrix(rest)
            matrix.diagonal(dim1=1, dim2=2).add_(damping[rest, None])
            delta[rest] = _linalg.solve(matrix, -g[rest])
        return delta, sane


class PolishNewton:
    """How the polish forms and solves its systems, chosen once per search
    (:func:`polish_newton`).

    Parameters
    ----------
    dynamics : Dynamics
    closed : LowRankSpeed, optional
        The closed form of ∇q and ∇²q; None: from the Jacobians.
    """

    def __init__(self, dynamics: Dynamics, closed: Optional[LowRankSpeed] = None):
        self.dynamics, self.closed = dynamics, closed

    def systems(self, x: torch.Tensor,
                v: torch.Tensor) -> Union[DenseSystems, LowRankSystems]:
        """The systems at ``x`` (b, n) with velocities ``v`` (b, n)."""
        if self.closed is None:
            return DenseSystems(self.dynamics, x, v)
        return LowRankSystems(self.closed, x, v)

    def gradient(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``∇q = J_vᵀ v`` at ``x`` (b, n) with velocities ``v`` (b, n), shape (b, n)."""
        if self.closed is not None:
            return self.closed.gradient(x, v)
        jac = self.dynamics.jacobian(x).detach()
        return (v.unsqueeze(1) @ jac).squeeze(1)


def polish_newton(dynamics: Dynamics, x: torch.Tensor) -> PolishNewton:
    """The polish's systems for ``dynamics``: in closed form where it has a low-rank form of
    rank at most ``n / 4`` that :func:`~fixedpoints.lowrank_speed.low_rank_speed` confirms at
    the states ``x`` (b, n), else dense.

    Parameters
    ----------
    dynamics : Dynamics
    x : torch.Tensor of shape (b, n_states)
        States to check the closed form at (e.g. the initial states; at most
        :data:`_CHECKED_STATES` of them, evenly spaced, are used).

    Returns
    -------
    PolishNewton
    """
    form = low_rank_form_or_none(dynamics, _MAX_RANK_FRACTION * dynamics.n_states)
    if form is None:  # none, or a source that cannot give one: the Jacobians
        return PolishNewton(dynamics)
    x = x[::max(1, len(x) // _CHECKED_STATES)][:_CHECKED_STATES]
    return PolishNewton(dynamics, low_rank_speed(dynamics, form, x))
