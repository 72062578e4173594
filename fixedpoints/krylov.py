"""Matrix-free inexact Newton on v(x) = 0 for many states at once: the finder's coarse phase for
large networks.

A dense Newton step costs a Jacobian and its LU factorization, ⅔ n³ per state; from 1024
trajectory states of a 1024-unit network that is most of a minute per iteration on two cores,
although the states converge to a handful of points. Here each step solves ``J δ = -v`` only
to a relative residual ``eta`` by GMRES (:func:`fixedpoints.linalg.gmres`) with Jacobian–vector
products from the double-backward trick on the velocity (reverse mode twice: forward mode
pulls in ``torch._dynamo``, seconds per process), batched over the states (one matrix product
per Krylov vector, about 2 n² per state, for a network whose weights are shared by the batch).
The steps move every state close to its root at a fraction of the dense cost; the dense polish
then converges one state per root to round-off and attributes the others
(:func:`fixedpoints.finder.find_fixed_points`).
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch

from . import linalg as _linalg
from .dynamics import Dynamics

__all__ = ["newton_krylov", "preconditioner"]


def _jvp(dynamics: Dynamics, x: torch.Tensor):
    """``t -> J_v(x) t`` row by row, for states ``x`` of shape (b, n).

    In closed form where the system has a ``jvp_fn`` (:attr:`Dynamics.jvp_fn`: one batched
    matrix product for a rate network); otherwise by the double-backward trick:
    ``g(w) = J_vᵀ w`` is linear in ``w``, and its vector–Jacobian product with ``t`` is
    ``J_v t``. The velocity is evaluated once per linear solve, every product is one backward
    pass; plain autograd (forward mode, ``torch.func.jvp`` or ``torch.autograd.forward_ad``,
    imports torch._dynamo: seconds in every new process)."""
    jvp_fn = getattr(dynamics, "jvp_fn", None)
    if jvp_fn is not None:
        xd = x.detach().to(dynamics.dtype)
        with torch.no_grad():
            map_jvp = jvp_fn(xd, dynamics._inputs(xd))
        if dynamics.time == "discrete":  # J_v = J_F - I
            return lambda t: map_jvp(t) - t
        return map_jvp
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        out = dynamics.velocity(xg)
        w = torch.zeros_like(out, requires_grad=True)
        (g,) = torch.autograd.grad(out, xg, w, create_graph=True)

    def apply(t: torch.Tensor) -> torch.Tensor:
        (jt,) = torch.autograd.grad(g, w, t, retain_graph=True)
        return jt.detach()

    return apply


def preconditioner(dynamics: Dynamics, x: torch.Tensor,
                   q: Optional[torch.Tensor] = None) -> Optional[torch.Tensor]:
    """Inverse of ``J_v`` at the slowest state of ``x``: a right preconditioner for the Newton
    systems of all of them.

    For a rate network ``J_v(x) = α (diag(φ'(W x + b)) W - I)``, so ``J_v(x) J_v(p)⁻¹`` is the
    identity plus ``α (D_x - D_p) W J_v(p)⁻¹``, which is small wherever the slopes differ
    little. Measured on the 1024-unit rate network (gain 1.2) from 16 trajectory states 7 to 20
    units from the reference: 20 GMRES iterations reach a relative residual of 0.1 to 0.45
    unpreconditioned and ≤ 0.024 preconditioned; 60 iterations, 0.01-0.33 and 1e-12.

    Parameters
    ----------
    dynamics : Dynamics
    x : Tensor of shape (b, n)
    q : Tensor of shape (b,), optional
        Their speeds, when the caller has them.

    Returns
    -------
    Tensor of shape (n, n) or None
        ``M = J_v(p)⁻¹``; None where that Jacobian is singular or not finite (GMRES then runs
        unpreconditioned).
    """
    if len(x) == 0:
        return None
    if q is None:
        with torch.no_grad():
            q = dynamics.speed(x)
    q = torch.where(torch.isfinite(q), q, torch.full_like(q, float("inf")))
    ref = x[int(torch.argmin(q))].unsqueeze(0)
    jac = dynamics.jacobian(ref).detach()[0]
    try:
        return _linalg.inverse(jac)
    except ValueError:
        return None


def _newton_direction(jvp, v: torch.Tensor, pre_t: Optional[torch.Tensor], krylov_dim: int,
                      eta: float) -> torch.Tensor:
    """GMRES on ``J δ = -v``, right-preconditioned by ``M`` (``pre_t = Mᵀ``) when given:
    ``J M y = -v``, ``δ = M y``, whose residual is the true one of ``J δ = -v``."""
    if pre_t is None:
        return _linalg.gmres(jvp, -v, max_iter=krylov_dim, rtol=eta)[0]
    m_t = pre_t

    def preconditioned(t: torch.Tensor) -> torch.Tensor:
        return jvp(t @ m_t)

    y, _ = _linalg.gmres(preconditioned, -v, max_iter=krylov_dim, rtol=eta)
    return y @ m_t


def newton_krylov(dynamics: Dynamics, x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, *,
                  q_stop: float, steps: int = 12, krylov_dim: int = 20, eta: float = 0.1,
                  max_step: Optional[float] = None, batch_size: int = 256,
                  precondition: bool = True, backtracks: int = 4, stall_steps: int = 1,
                  stall_factor: float = 0.9
                  ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inexact Newton steps (GMRES, backtracking on q) from every state, inside the box.

    Parameters
    ----------
    dynamics : Dynamics
    x : Tensor of shape (b, n)
        Starting states.
    lo, hi : Tensor of shape (n,)
        The search box; steps are clipped to it.
    q_stop : float
        A state stops once ``q ≤ q_stop``.
    steps : int
        Newton steps at most.
    krylov_dim : int
        GMRES iterations per step (Jacobian–vector products).
    eta : float
        Relative GMRES residual aimed at (the forcing term); each accepted step lowers ‖v‖ by
        about this factor near a root.
    max_step : float, optional
        Steps longer than this are shortened to it (a trust region).
    batch_size : int
        States per batch (memory ``batch_size · (krylov_dim + 1) · n``).
    precondition : bool
        Right-precondition every GMRES solve with the inverse of ``J_v`` at the slowest state
        (:func:`preconditioner`: one 2 n³ inversion per call, 2 n² more per product).
    backtracks : int
        Trial steps along each Newton direction: the full step, then halves of it.
    stall_steps, stall_factor : int, float
        A state stops making progress (see ``reach``) when no trial step lowers q, or when q
        is above ``stall_factor`` times its value ``stall_steps`` steps before (default: a
        step that lowers q by less than 10%; the finder passes 4 and 0.5, the crawl rule of
        its dense polish).

    Returns
    -------
    x : Tensor of shape (b, n)
        The states after the steps.
    q : Tensor of shape (b,)
        Their speeds.
    reach : Tensor of shape (b,)
        Length of each state's last full Newton step, an estimate of its distance to the root it
        approaches. States that stopped making progress (``stall_steps``: near a slow point or
        on a plateau, not a root) are returned at their start, with ``inf``.
    """
    out_x, out_q, out_reach = [], [], []
    pre = preconditioner(dynamics, x) if precondition else None
    pre_t = pre.T if pre is not None else None  # row-wise products: t @ Mᵀ = (M t)ᵀ
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size].clone()
        with torch.no_grad():
            v = dynamics.velocity(xb)
        q = 0.5 * (v * v).sum(-1)
        x_start, v_start, q_start = xb.clone(), v.clone(), q.clone()
        reach = torch.full_like(q, float("inf"))
        active = torch.isfinite(q) & (q > q_stop)
        history = [q.clone()]
        for _ in range(steps):
            idx = torch.nonzero(active).flatten()
            if idx.numel() == 0:
                break
            xa, va = xb[idx], v[idx]
            with torch.no_grad():
                delta = _newton_direction(_jvp(dynamics, xa), va, pre_t, krylov_dim, eta)
            length = delta.norm(dim=1)
            if max_step is not None:
                delta = delta * torch.clamp(max_step / (length + 1e-300), max=1.0)[:, None]
            accept = torch.zeros(len(idx), dtype=torch.bool, device=x.device)
            trial_x, trial_v = xa.clone(), va.clone()
            fraction = 1.0
            for _ in range(backtracks):  # full step, then halves of it
                todo = torch.nonzero(~accept).flatten()
                if todo.numel() == 0:
                    break
                cand = torch.maximum(torch.minimum(xa[todo] + fraction * delta[todo], hi), lo)
                with torch.no_grad():
                    v_c = dynamics.velocity(cand)
                q_c = 0.5 * (v_c * v_c).sum(-1)
                ok = torch.isfinite(q_c) & (q_c < q[idx[todo]])
                trial_x[todo[ok]], trial_v[todo[ok]] = cand[ok], v_c[ok]
                accept[todo[ok]] = True
                fraction *= 0.5
            took = idx[accept]
            xb[took], v[took] = trial_x[accept], trial_v[accept]
            q[took] = 0.5 * (v[took] * v[took]).sum(-1)
            reach[took] = length[accept]
            history.append(q.clone())
            # no decrease along the step, or too little over stall_steps: no root is near (a
            # slow point, a plateau); back to the start, left to the polish as if never moved
            stuck = idx[~accept]
            if len(history) > stall_steps:
                q_before = history[-1 - stall_steps][took]
                stuck = torch.cat([stuck, took[q[took] > stall_factor * q_before]])
            xb[stuck], v[stuck], q[stuck] = x_start[stuck], v_start[stuck], q_start[stuck]
            reach[stuck] = float("inf")
            active[stuck] = False
            active &= q > q_stop
        out_x.append(xb)
        out_q.append(q)
        out_reach.append(reach)
    return torch.cat(out_x), torch.cat(out_q), torch.cat(out_reach)

