"""Limit cycles (periodic orbits) of maps and flows: found by recurrence, refined by Newton.

1. **Recurrence.** Trajectories from the given states run ``n_transient`` steps, then
   ``n_record`` more. One that has not settled (its speed stays above the fixed-point level) and
   comes back: a map's state with ``‖x_{t+p} − x_t‖ ≤ recurrence · spread`` for the smallest
   ``2 ≤ p ≤ max_period`` over the last ``p`` recorded steps; a flow's first local minimum of
   ``‖x(t) − x(t_0)‖`` below that level plus one step's length (a return can fall between two
   samples) after leaving that neighbourhood, its time refined by a parabola through the three
   samples, seeds a cycle.
2. **Newton.** Maps: on ``G(x) = F^p(x) − x`` with ``G' = M − I``, ``M = ∏ ∂F`` along the orbit.
   Flows: single shooting on ``(x, T)`` with ``φ_T(x) − x = 0`` and the phase condition
   ``f(x₀) · (x − x₀) = 0``; ``φ_T`` is ``S`` RK4 steps of length ``T/S`` (``S`` fixed from
   the seed's period and ``dt``), ``M = ∂φ_T/∂x`` the product of the steps' Jacobians (the
   discrete variational equation), ``∂φ_T/∂T = f(φ_T(x))``.
3. **Floquet multipliers** are the eigenvalues of ``M`` at convergence. A flow has the trivial
   multiplier 1 (along the orbit), which is dropped from the stability test: the cycle is
   stable when every other multiplier is inside the unit circle.

Cycles found from several trajectories are merged (a map orbit up to rotation, a flow orbit when
a point of one lies on the other). Quasi-periodic or chaotic trajectories give no cycle.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
from numpy.typing import NDArray

__all__ = ["CycleOptions", "LimitCycle", "LimitCycles", "find_limit_cycles",
           "refine_map_cycle", "refine_flow_cycle"]


@dataclass(frozen=True)
class CycleOptions:
    """Options of :func:`find_limit_cycles`.

    Attributes
    ----------
    n_transient : int
        Steps (map iterations or RK4 steps of ``dt``) discarded before recording.
    n_record : int
        Steps recorded and searched for recurrence.
    max_period : int
        Largest map period searched (maps only).
    dt : float, optional
        RK4 step of flows; the system's ``dt`` when None.
    recurrence : float
        Return tolerance relative to the recorded trajectory's spread.
    settled_speed : float
        A trajectory whose last speed ``q`` is below this has settled (no cycle).
    newton_tol : float
        Newton stops when ``‖G‖_∞ ≤ newton_tol · max(1, ‖x‖_∞)``.
    max_newton : int
        Newton iterations.
    max_seeds : int
        Trajectories refined at most (the others merge into what they found).
    """

    n_transient: int = 2000
    n_record: int = 2000
    max_period: int = 64
    dt: Optional[float] = None
    recurrence: float = 1e-2
    settled_speed: float = 1e-14
    newton_tol: float = 1e-11
    max_newton: int = 30
    max_seeds: int = 8

    def __post_init__(self):
        for name in ("n_transient", "n_record", "max_newton", "max_seeds"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name}={value!r} is invalid; pass a positive integer")
        if not isinstance(self.max_period, (int, np.integer)) or self.max_period < 2:
            raise ValueError(f"max_period={self.max_period!r} is invalid; pass an integer >= 2")
        if self.n_record <= 2 * self.max_period:
            raise ValueError(f"n_record={self.n_record} is too short for max_period="
                             f"{self.max_period}; pass n_record > 2 * max_period")
        for name in ("recurrence", "settled_speed", "newton_tol"):
            value = getattr(self, name)
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"{name}={value!r} is invalid; pass a positive number")
        if self.dt is not None and (not np.isfinite(self.dt) or self.dt <= 0):
            raise ValueError(f"dt={self.dt!r} is invalid; pass a positive step or None")


@dataclass(frozen=True)
class LimitCycle:
    """One periodic orbit.

    Attributes
    ----------
    time : {"discrete", "continuous"}
    period : float
        Map: the number of iterations p (an integer value); flow: the period T.
    points : ndarray of shape (m, n_states)
        Map: the p states of the orbit in map order; flow: the states at the ``S`` RK4 steps of
        one period (``points[0]`` the refined initial state).
    multipliers : ndarray of shape (n_states,), complex
        Floquet multipliers (eigenvalues of the monodromy / p-step Jacobian), by decreasing
        modulus.
    stable : bool
        Every multiplier (but a flow's trivial one) inside the unit circle.
    residual : float
        ``‖φ_T(x) − x‖_∞`` (flow) or ``‖F^p(x) − x‖_∞`` (map) at the refined point.
    n_unstable : int
        Multipliers outside the unit circle (a flow's trivial one excluded).
    """

    time: str
    period: float
    points: np.ndarray
    multipliers: np.ndarray
    stable: bool
    residual: float
    n_unstable: int = 0

    def __post_init__(self):
        if self.time not in ("discrete", "continuous"):
            raise ValueError(f"time={self.time!r} is invalid; pass 'discrete' or 'continuous'")
        if not np.isfinite(self.period) or self.period <= 0:
            raise ValueError(f"period={self.period!r} is invalid; pass a positive period")

    @property
    def center(self) -> np.ndarray:
        """Mean of the orbit's points, shape (n_states,)."""
        return np.asarray(self.points).mean(0)

    @property
    def amplitude(self) -> float:
        """Largest distance of an orbit point from the centre (Euclidean)."""
        return float(np.linalg.norm(self.points - self.center, axis=1).max())

    def to_dict(self) -> Dict[str, Any]:
        return {"time": self.time, "period": float(self.period), "stable": bool(self.stable),
                "n_unstable": int(self.n_unstable), "residual": float(self.residual),
                "amplitude": self.amplitude, "center": self.center.tolist(),
                "multipliers_abs": np.abs(self.multipliers).tolist()}


@dataclass(frozen=True)
class LimitCycles:
    """The limit cycles found in one system.

    Attributes
    ----------
    cycles : tuple of LimitCycle
        Stable ones first, then by period.
    info : dict
        ``trajectories``, ``settled``, ``recurrent``, ``refined``, ``failed``.
    """

    cycles: Tuple[LimitCycle, ...] = ()
    info: Dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.cycles)

    def __iter__(self):
        return iter(self.cycles)

    def __getitem__(self, i: int) -> LimitCycle:
        return self.cycles[i]

    def to_dict(self) -> Dict[str, Any]:
        return {"cycles": [c.to_dict() for c in self.cycles], "info": dict(self.info)}


# ---------------------------------------------------------------------------- helpers
def _orbit_and_jacobian(dynamics, x: np.ndarray, n_steps: int, h: Optional[float]):
    """States after each of ``n_steps`` steps from x, and the product of the step Jacobians.

    Maps: ``∂F = J_v + I`` at every state, one batched :meth:`Dynamics.jacobian` call. Flows:
    the RK4 steps of :meth:`ContinuousDynamics.step` written out with their stage states, and
    the exact Jacobian of each step from the velocity Jacobians at the stages (one batched call;
    closed-form where the system has a ``jacobian_fn``)::

        A₁ = J(x),  A₂ = J(x + h/2 k₁)(I + h/2 A₁),  A₃ = J(x + h/2 k₂)(I + h/2 A₂),
        A₄ = J(x + h k₃)(I + h A₃),  ∂step = I + h/6 (A₁ + 2A₂ + 2A₃ + A₄).
    """
    xt = dynamics.states(np.asarray(x)[None])
    n = xt.shape[1]
    eye = torch.eye(n, dtype=xt.dtype, device=xt.device)
    with torch.no_grad():
        states = [xt]
        if dynamics.time == "discrete":
            for _ in range(int(n_steps)):
                states.append(dynamics.step(states[-1]))
            traj = torch.cat(states)
            jacs = dynamics.jacobian(traj[:-1]) + eye
        else:
            hh = float(dynamics.dt if h is None else h)
            stages = []
            for _ in range(int(n_steps)):
                y = states[-1]
                k1 = dynamics.velocity(y)
                y2 = y + 0.5 * hh * k1
                k2 = dynamics.velocity(y2)
                y3 = y + 0.5 * hh * k2
                k3 = dynamics.velocity(y3)
                y4 = y + hh * k3
                k4 = dynamics.velocity(y4)
                stages.append(torch.cat([y, y2, y3, y4]))
                states.append(y + (hh / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4))
            traj = torch.cat(states)
            jv = dynamics.jacobian(torch.cat(stages)).reshape(int(n_steps), 4, n, n)
            a1 = jv[:, 0]
            a2 = jv[:, 1] @ (eye + 0.5 * hh * a1)
            a3 = jv[:, 2] @ (eye + 0.5 * hh * a2)
            a4 = jv[:, 3] @ (eye + hh * a3)
            jacs = eye + (hh / 6.0) * (a1 + 2 * a2 + 2 * a3 + a4)
        mono = eye
        for jac in jacs:
            mono = jac @ mono
    return traj.cpu().numpy(), mono.cpu().numpy()


def _cycle(states: np.ndarray, mono: np.ndarray, residual: float, time: str,
           period: float) -> "LimitCycle":
    """The converged orbit ``states`` (its last row the return to the first) with its
    monodromy matrix ``mono``: Floquet multipliers and stability."""
    mult = _sorted(np.linalg.eigvals(mono))
    stable, n_unstable = _stability(mult, time)
    return LimitCycle(time=time, period=period, points=states[:-1], multipliers=mult,
                      stable=stable, residual=residual, n_unstable=n_unstable)


def _stability(multipliers: np.ndarray, time: str) -> Tuple[bool, int]:
    mods = np.abs(multipliers)
    if time == "continuous" and len(mods):
        drop = int(np.argmin(np.abs(multipliers - 1.0)))
        mods = np.delete(mods, drop)
    n_unstable = int((mods > 1.0 + 1e-9).sum())
    return bool((mods < 1.0).all()), n_unstable


def _sorted(mult: np.ndarray) -> np.ndarray:
    mult = np.asarray(mult, dtype=complex)
    return mult[np.argsort(-np.abs(mult), kind="stable")]


# ---------------------------------------------------------------------------- Newton
def refine_map_cycle(dynamics, x: NDArray[np.float64], period: int, *, tol: float = 1e-11,
                     max_iter: int = 30) -> Optional[LimitCycle]:
    """Newton on ``F^p(x) − x``; the refined orbit, or None when Newton does not converge.

    Parameters
    ----------
    dynamics : DiscreteDynamics
    x : ndarray of shape (n_states,)
        A state near the orbit.
    period : int
        p ≥ 1.
    tol, max_iter
        As ``newton_tol`` and ``max_newton`` of :class:`CycleOptions`.
    """
    x = np.asarray(x, dtype=np.float64).copy()
    n = x.shape[0]
    for _ in range(int(max_iter) + 1):
        states, mono = _orbit_and_jacobian(dynamics, x, period, None)
        g = states[-1] - x
        res = float(np.abs(g).max())
        if not np.isfinite(res):
            return None
        if res <= tol * max(1.0, float(np.abs(x).max())):
            return _cycle(states, mono, res, "discrete", float(period))
        dx = np.linalg.lstsq(mono - np.eye(n), -g, rcond=None)[0]
        x = x + dx
    return None


def refine_flow_cycle(dynamics, x: NDArray[np.float64], period: float, *,
                      dt: Optional[float] = None, tol: float = 1e-11,
                      max_iter: int = 30) -> Optional[LimitCycle]:
    """Single shooting with a phase condition on ``(x, T)``; None when it does not converge.

    Parameters
    ----------
    dynamics : ContinuousDynamics
    x : ndarray of shape (n_states,)
    period : float
        The seed period T > 0.
    dt : float, optional
        Target RK4 step (the system's ``dt`` when None); ``S = ceil(T / dt)`` steps per period.
    tol, max_iter
        As in :func:`refine_map_cycle`.
    """
    x = np.asarray(x, dtype=np.float64).copy()
    n = x.shape[0]
    T = float(period)
    h0 = float(dynamics.dt if dt is None else dt)
    n_steps = max(int(np.ceil(T / h0)), 8)
    with torch.no_grad():
        f0 = dynamics.velocity(dynamics.states(x[None])).cpu().numpy()[0]
    x0 = x.copy()
    for _ in range(int(max_iter) + 1):
        if not np.isfinite(T) or T <= 0:
            return None
        states, mono = _orbit_and_jacobian(dynamics, x, n_steps, T / n_steps)
        g = states[-1] - x
        res = float(np.abs(g).max())
        if not np.isfinite(res):
            return None
        if res <= tol * max(1.0, float(np.abs(x).max())):
            return _cycle(states, mono, res, "continuous", T)
        with torch.no_grad():
            f_end = dynamics.velocity(dynamics.states(states[-1][None])).cpu().numpy()[0]
        system = np.zeros((n + 1, n + 1))
        system[:n, :n] = mono - np.eye(n)
        system[:n, n] = f_end
        system[n, :n] = f0
        rhs = np.concatenate([-g, [-(f0 @ (x - x0))]])
        delta = np.linalg.lstsq(system, rhs, rcond=None)[0]
        x = x + delta[:n]
        T = T + float(delta[n])
    return None


# ---------------------------------------------------------------------------- search
def _map_period(traj: np.ndarray, max_period: int, tol: float) -> Optional[int]:
    """Smallest p ≥ 2 with the last p states returning within tol after p steps (one trajectory
    (t, n)); None if none (a settled trajectory has p = 1, which is not a cycle)."""
    for p in range(1, max_period + 1):
        tail = traj[-2 * p:]
        if np.abs(tail[p:] - tail[:p]).max() <= tol:
            return None if p == 1 else p
    return None


def _flow_period(traj: np.ndarray, h: float, tol: float) -> Optional[Tuple[int, float]]:
    """(start index, period) of the first return of ``traj[s]`` after leaving its
    neighbourhood, refined by a parabola through the three samples around the minimum."""
    s = 0
    d = np.linalg.norm(traj - traj[s], axis=1)
    step = np.linalg.norm(np.diff(traj, axis=0), axis=1)
    reach = tol + float(step.max(initial=0.0))  # a return can fall between two samples
    left = np.flatnonzero(d > 4 * reach)
    if not len(left):
        return None
    start = int(left[0])
    for i in range(max(start, 1), len(d) - 1):
        if d[i] <= d[i - 1] and d[i] <= d[i + 1] and d[i] <= reach:
            a, b, c = d[i - 1] ** 2, d[i] ** 2, d[i + 1] ** 2
            denom = a - 2 * b + c
            shift = 0.5 * (a - c) / denom if denom > 0 else 0.0
            return s, (i + float(np.clip(shift, -1, 1))) * h
    return None


def _same_cycle(a: LimitCycle, b: LimitCycle, tol: float) -> bool:
    if a.time != b.time:
        return False
    if a.time == "discrete" and a.period != b.period:
        return False
    if a.time == "continuous" and abs(a.period - b.period) > 1e-3 * max(a.period, b.period):
        return False
    if a.time == "discrete":
        return bool(np.abs(b.points - a.points[0]).max(-1).min() <= tol)
    # a flow orbit: b's first point lies on a's sampled orbit (within the sampling distance)
    gaps = np.linalg.norm(np.diff(a.points, axis=0), axis=1)
    reach = float(gaps.max(initial=0.0)) + tol
    return bool(np.linalg.norm(a.points - b.points[0], axis=1).min() <= reach)


def find_limit_cycles(dynamics, x0: NDArray[np.float64],
                      options: Optional[CycleOptions] = None) -> LimitCycles:
    """Periodic orbits reached by trajectories from ``x0`` (stable cycles, mostly).

    Parameters
    ----------
    dynamics : Dynamics
    x0 : ndarray of shape (b, n_states)
        Initial states (e.g. those the fixed-point finder used).
    options : CycleOptions, optional

    Returns
    -------
    LimitCycles
    """
    opts = options or CycleOptions()
    x = dynamics.states(x0, name="x0")
    h = opts.dt if dynamics.time == "continuous" else None
    step_h = float(dynamics.dt if h is None else h)
    with torch.no_grad():
        for _ in range(opts.n_transient):
            x = dynamics.step(x, None, h)
        traj_t = dynamics.simulate(x, opts.n_record, dt=h)
        q = dynamics.speed(traj_t[:, -1]).cpu().numpy()
    traj = traj_t.cpu().numpy()
    finite = np.isfinite(traj).all((1, 2))
    settled = q <= opts.settled_speed
    info: Dict[str, Any] = {"trajectories": int(len(traj)), "settled": int(settled.sum()),
                            "non_finite": int((~finite).sum()), "recurrent": 0, "refined": 0,
                            "failed": 0}
    found: List[LimitCycle] = []
    seeds = 0
    for i in np.flatnonzero(finite & ~settled):
        tr = traj[i]
        spread = float(np.sqrt(((tr - tr.mean(0)) ** 2).sum(1).mean()))
        tol = opts.recurrence * max(spread, 1e-12)
        if any(_near_orbit(c, tr[-1], tol) for c in found):
            continue
        if seeds >= opts.max_seeds:
            break
        if dynamics.time == "discrete":
            p = _map_period(tr, opts.max_period, tol)
            if p is None:
                continue
            info["recurrent"] += 1
            seeds += 1
            cyc = refine_map_cycle(dynamics, tr[-1], p, tol=opts.newton_tol,
                                   max_iter=opts.max_newton)
        else:
            ret = _flow_period(tr, step_h, tol)
            if ret is None:
                continue
            info["recurrent"] += 1
            seeds += 1
            cyc = refine_flow_cycle(dynamics, tr[ret[0]], ret[1], dt=step_h,
                                    tol=opts.newton_tol, max_iter=opts.max_newton)
        if cyc is None:
            info["failed"] += 1
            continue
        info["refined"] += 1
        if not any(_same_cycle(c, cyc, 10 * tol) for c in found):
            found.append(cyc)
    found.sort(key=lambda c: (not c.stable, c.period))
    return LimitCycles(cycles=tuple(found), info=info)


def _near_orbit(cycle: LimitCycle, x: np.ndarray, tol: float) -> bool:
    gaps = np.linalg.norm(np.diff(cycle.points, axis=0), axis=1) if len(cycle.points) > 1 else 0
    reach = (float(np.max(gaps)) if cycle.time == "continuous" else 0.0) + 10 * tol
    return bool(np.linalg.norm(cycle.points - x, axis=1).min() <= reach)

