"""Reference systems with closed-form answers, for tests, benchmarks and users' sanity checks.

Every constructor returns a :class:`~fixedpoints.dynamics.Dynamics` (float64). Higher-dimensional
versions embed a low-dimensional system with a random orthogonal change of coordinates ``Q``
(``x = Q y``), so the answers are known in ``y`` and mapped back with ``Q``; the extra
coordinates contract (continuous: ``dy_i/dt = -rate_i y_i``; discrete: ``y_i <- c_i y_i``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch

from .dynamics import ContinuousDynamics, DiscreteDynamics, Dynamics

__all__ = [
    "random_orthogonal", "linear", "saddle_node", "drift_manifold", "tanh_map",
    "tanh_map_fixed_points",
    "tanh_saddle_node_b", "rotated_flipflop", "flipflop_fixed_points", "line_attractor",
    "random_rate_network", "ReferenceAnswer",
]


def random_orthogonal(n: int, seed: int = 0) -> np.ndarray:
    """A random orthogonal matrix (Haar measure), shape ``(n, n)``."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, n))
    q, r = np.linalg.qr(a)
    return q * np.sign(np.diag(r))


@dataclass(frozen=True)
class ReferenceAnswer:
    """Known fixed points of a reference system.

    Attributes
    ----------
    x : ndarray of shape (k, n)
    n_unstable : ndarray of shape (k,)
    """

    x: np.ndarray
    n_unstable: np.ndarray


def _t(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=float), dtype=torch.float64)


def linear(A, time: str = "continuous", b=None) -> Dynamics:
    """Affine system ``dx/dt = A x + b`` (continuous) or ``x <- A x + b`` (discrete).

    Its only fixed point (for non-singular ``A - I`` / ``A``) solves the linear system; its
    eigenvalues are those of ``A``.

    Parameters
    ----------
    A : array_like of shape (n, n)
    time : {"continuous", "discrete"}
    b : array_like of shape (n,), optional
    """
    A_t = _t(A)
    n = A_t.shape[0]
    b_t = _t(np.zeros(n) if b is None else b)

    def fn(x, u):
        return x @ A_t.T + b_t

    def jac(x, u):
        return A_t.expand(x.shape[0], n, n)

    cls = ContinuousDynamics if time == "continuous" else DiscreteDynamics
    _check_time(time)
    return cls(fn, n, jacobian_fn=jac, name=f"linear({time})")


def _check_time(time: str) -> None:
    if time not in ("continuous", "discrete"):
        raise ValueError(f"time={time!r} is invalid; pass 'continuous' or 'discrete'")


def _embedding(n_states: int, seed: Optional[int]) -> torch.Tensor:
    Q = np.eye(n_states) if seed is None else random_orthogonal(n_states, seed)
    return _t(Q)


def saddle_node(r: float, n_states: int = 1, time: str = "continuous", dt: float = 0.1,
                rates: Optional[Sequence[float]] = None, seed: Optional[int] = 0) -> Dynamics:
    """The saddle-node normal form ``dy_0/dt = r + y_0²``, embedded in ``n_states`` dimensions.

    For r < 0 there are fixed points at ``y_0 = ±√|r|`` (eigenvalues ±2√|r|; the negative one is
    stable). For r > 0 there is none: a ghost at ``y_0 = 0`` with minimal |v| = r, crossed in time
    π/√r. Extra coordinates decay, ``dy_i/dt = -rate_i y_i``.

    Parameters
    ----------
    r : float
    n_states : int
    time : {"continuous", "discrete"}
        Discrete time is the Euler map ``y <- y + dt f(y)`` (its fixed points are the same).
    dt : float
        Euler step of the discrete version.
    rates : sequence of float, optional
        Decay rates of the extra coordinates (default evenly spaced in [0.5, 2]).
    seed : int or None
        Seed of the random rotation ``Q``; ``None`` leaves the coordinates unrotated.

    Returns
    -------
    Dynamics
        ``fn`` in the rotated coordinates ``x = Q y``; attribute ``Q`` holds the rotation.
    """
    _check_time(time)
    Q = _embedding(n_states, seed if n_states > 1 else None)
    rate_values = (np.linspace(0.5, 2.0, max(n_states - 1, 1))[: n_states - 1] if rates is None
                   else np.asarray(rates, dtype=float))
    rates_t = _t(np.concatenate([[0.0], rate_values]))

    def field(x, u):
        y = x @ Q
        fy = -rates_t * y
        fy = torch.cat([(r + y[:, :1] ** 2), fy[:, 1:]], dim=1)
        return fy @ Q.T

    dyn: Dynamics
    if time == "continuous":
        dyn = ContinuousDynamics(field, n_states, name=f"saddle_node(r={r})")
    else:
        dyn = DiscreteDynamics(lambda x, u: x + dt * field(x, u), n_states,
                               name=f"saddle_node_map(r={r}, dt={dt})")
    dyn.Q = Q.numpy()
    return dyn


def drift_manifold(eps: float, n_states: int = 1, time: str = "continuous",
                   corrugation: float = 0.0, dt: float = 0.5,
                   seed: Optional[int] = 0) -> Dynamics:
    """A slow manifold with no fixed point: ``dy_0/dt = eps (1 + corrugation sin y_0)``.

    The speed is at least ``eps (1 - corrugation)`` everywhere along the attracting line
    ``y_1 = … = 0``: a slow channel that is NOT a ghost (no isolated minimum of q for
    ``corrugation = 0``; shallow periodic minima otherwise). Extra coordinates decay,
    ``dy_i/dt = -rate_i y_i`` with rates evenly spaced in [0.5, 2].

    Parameters
    ----------
    eps : float
    n_states : int
    time : {"continuous", "discrete"}
        Discrete time is the Euler map ``y <- y + dt f(y)``.
    corrugation : float
        Relative modulation of the drift along the manifold (< 1).
    dt : float
        Euler step of the discrete version.
    seed : int or None
        Seed of the random rotation ``Q``; ``None`` leaves the coordinates unrotated.

    Returns
    -------
    Dynamics
        Attribute ``Q`` holds the rotation.
    """
    _check_time(time)
    Q = _embedding(n_states, seed if n_states > 1 else None)
    rates = _t(np.linspace(0.5, 2.0, max(n_states - 1, 1))[: n_states - 1])

    def field(x, u):
        y = x @ Q
        drift = eps * (1 + corrugation * torch.sin(y[:, :1]))
        return torch.cat([drift, -rates * y[:, 1:]], dim=1) @ Q.T

    dyn: Dynamics
    if time == "continuous":
        dyn = ContinuousDynamics(field, n_states, name=f"drift_manifold(eps={eps})")
    else:
        dyn = DiscreteDynamics(lambda x, u: x + dt * field(x, u), n_states,
                               name=f"drift_manifold_map(eps={eps}, dt={dt})")
    dyn.Q = Q.numpy()
    return dyn


def tanh_map(w: float = 2.0, b: float = 0.0, n_states: int = 1, contraction: float = 0.5,
             seed: Optional[int] = 0) -> Dynamics:
    """The one-unit map ``y_0 <- tanh(w y_0 + b)``, embedded in ``n_states`` dimensions.

    For w = 2 it has a saddle-node at ``|b| = b_c ≈ 0.5328`` (:func:`tanh_saddle_node_b`): for
    b = 0.40 three fixed points, for b = 0.55 one fixed point and a ghost near y_0 ≈ −0.716.
    Extra coordinates contract, ``y_i <- contraction · y_i``.

    Returns
    -------
    DiscreteDynamics
        With attribute ``Q`` (the rotation).
    """
    Q = _embedding(n_states, seed if n_states > 1 else None)

    def step(x, u):
        y = x @ Q
        y = torch.cat([torch.tanh(w * y[:, :1] + b), contraction * y[:, 1:]], dim=1)
        return y @ Q.T

    dyn = DiscreteDynamics(step, n_states, name=f"tanh_map(w={w}, b={b})")
    dyn.Q = Q.numpy()
    return dyn


def tanh_map_fixed_points(w: float, b: float) -> np.ndarray:
    """All real solutions of ``y = tanh(w y + b)``, sorted (1-D; by a fine root bracketing)."""
    grid = np.linspace(-1.0 - 1e-9, 1.0 + 1e-9, 200001)
    g = np.tanh(w * grid + b) - grid
    roots = []
    from scipy.optimize import brentq
    sign = np.sign(g)
    for i in np.flatnonzero(sign[:-1] * sign[1:] < 0):
        roots.append(brentq(lambda y: np.tanh(w * y + b) - y, grid[i], grid[i + 1], xtol=1e-15))
    roots += list(grid[g == 0])
    return np.sort(np.array(roots))


def tanh_saddle_node_b(w: float = 2.0) -> float:
    """Bias ``b_c > 0`` at which ``y <- tanh(w y + b)`` has its saddle-node (w > 1).

    At the bifurcation ``w (1 - y²) = 1`` and ``y = tanh(w y + b)``, so
    ``y_c = -√(1 - 1/w)`` and ``b_c = artanh(y_c) - w y_c``.
    """
    if w <= 1:
        raise ValueError(f"w={w} has no saddle-node; pass w > 1")
    y_c = -np.sqrt(1.0 - 1.0 / w)
    return float(np.arctanh(y_c) - w * y_c)


def rotated_flipflop(n_states: int = 64, n_bits: int = 3, gain: float = 2.0,
                     contraction: float = 0.5, seed: int = 0) -> DiscreteDynamics:
    """The map ``x <- Q tanh(D Qᵀ x)`` with ``D = diag(gain × n_bits, contraction, ...)``.

    In rotated coordinates each direction is a one-unit map ``y <- tanh(d y)``: each of the
    ``n_bits`` directions with d = 2 has fixed points {−y*, 0, +y*} (y* ≈ 0.9575, stable) and the
    rest only 0, so there are exactly 3^n_bits fixed points (27 for 3 bits: 8 stable, 12/6/1 of
    index 1/2/3). See :func:`flipflop_fixed_points`.

    Returns
    -------
    DiscreteDynamics
        With attributes ``Q`` and ``D``.
    """
    if n_bits > n_states:
        raise ValueError(f"n_bits={n_bits} exceeds n_states={n_states}; pass n_bits <= n_states")
    Q = _embedding(n_states, seed)
    d = np.full(n_states, contraction, dtype=float)
    d[:n_bits] = gain
    d_t = _t(d)

    def step(x, u):
        return torch.tanh((x @ Q) * d_t) @ Q.T

    def jac(x, u):
        y = (x @ Q) * d_t
        inner = (1 - torch.tanh(y) ** 2) * d_t
        return torch.einsum("ij,bj,kj->bik", Q, inner, Q)

    dyn = DiscreteDynamics(step, n_states, jacobian_fn=jac,
                           name=f"rotated_flipflop(n={n_states}, bits={n_bits})")
    dyn.Q, dyn.D = Q.numpy(), d
    return dyn


def flipflop_fixed_points(dynamics: DiscreteDynamics, n_bits: int = 3,
                          gain: float = 2.0) -> ReferenceAnswer:
    """The exact 3^n_bits fixed points of :func:`rotated_flipflop` and their indices."""
    from scipy.optimize import brentq
    y_star = brentq(lambda y: np.tanh(gain * y) - y, 0.1, 1.0, xtol=1e-15)
    values = np.array([-y_star, 0.0, y_star])
    grids = np.stack(np.meshgrid(*[values] * n_bits, indexing="ij"), -1).reshape(-1, n_bits)
    y = np.zeros((len(grids), dynamics.n_states))
    y[:, :n_bits] = grids
    if dynamics.Q is None:
        raise ValueError("flipflop_fixed_points needs the dynamics built by rotated_flipflop "
                         "(it carries the rotation Q)")
    return ReferenceAnswer(x=y @ dynamics.Q.T, n_unstable=(grids == 0).sum(1))


def line_attractor(n_states: int = 10, time: str = "continuous", decay: float = 1.0,
                   seed: Optional[int] = 0) -> Dynamics:
    """A line attractor: ``dy_0/dt = 0``, ``dy_i/dt = -decay · y_i`` (rotated by ``Q``).

    Every point of the line ``y_1 = ... = 0`` is a fixed point; the finder should report one
    slow region of dimension 1 rather than many points. Discrete time: ``y <- y + f(y) · 0.5``.
    """
    _check_time(time)
    Q = _embedding(n_states, seed)
    rates = _t(np.concatenate([[0.0], np.full(n_states - 1, decay)]))

    def field(x, u):
        return ((x @ Q) * -rates) @ Q.T

    dyn: Dynamics
    if time == "continuous":
        dyn = ContinuousDynamics(field, n_states, name="line_attractor")
    else:
        dyn = DiscreteDynamics(lambda x, u: x + 0.5 * field(x, u), n_states,
                               name="line_attractor_map")
    dyn.Q = Q.numpy()
    return dyn


def random_rate_network(n_states: int, gain: float = 1.2, alpha: float = 0.5, bias: float = 0.1,
                        seed: int = 0) -> DiscreteDynamics:
    """A random leaky firing-rate network ``r <- (1-α) r + α tanh(W r + b)``, with
    ``W ~ N(0, gain²/n)`` and ``b ~ N(0, bias²)``, and its Jacobian, curvature and
    Jacobian–vector products (``jvp_fn``) in closed form.

    No closed-form answer: above ``gain = 1`` such networks have many fixed points, most of them
    unstable; the large-network benchmark and tests of the finder use them (``gain = 1.2``).
    """
    n = int(n_states)
    gen = torch.Generator().manual_seed(int(seed))
    W = torch.randn(n, n, generator=gen, dtype=torch.float64) * gain / np.sqrt(n)
    b = bias * torch.randn(n, generator=gen, dtype=torch.float64)

    def step(x, u):
        return (1 - alpha) * x + alpha * torch.tanh(x @ W.T + b)

    def jac(x, u):
        slope = 1 - torch.tanh(x @ W.T + b) ** 2
        return (1 - alpha) * torch.eye(n, dtype=x.dtype) + alpha * slope.unsqueeze(-1) * W

    def curvature(x, u, weights):  # Σ_k w_k ∇²F_k = α Wᵀ diag(w tanh'') W
        t = torch.tanh(x @ W.T + b)
        return alpha * W.T @ ((weights * -2 * t * (1 - t ** 2)).unsqueeze(-1) * W)

    def jvp(x, u):  # t -> J_F t = (1-α) t + α tanh'(W x + b) ⊙ (W t): one matrix product
        slope = 1 - torch.tanh(x @ W.T + b) ** 2
        return lambda t: (1 - alpha) * t + alpha * slope * (t @ W.T)

    dyn = DiscreteDynamics(step, n, jacobian_fn=jac, curvature_fn=curvature,
                           name=f"leaky_rnn_{n}")
    dyn.jvp_fn = jvp
    return dyn
