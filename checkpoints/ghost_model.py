"""The canonical one-dimensional ghost model of the "ghost mechanism" paper (Dinc et al. 2025).

The model is the saddle-node normal form trained on a delayed-activation task::

    dx/dt = x² + r,   x(0) = 0,   Euler steps of length dt (0.1)
    o(t)  = sigmoid(a · (x(t) − θ))          a: the output confidence, θ = 10
    y(t)  = 0 for t < T, 1 for T ≤ t < 2T    (the target)
    L(r)  = dt · Σ_k (o(t_k) − y(t_k))²      (a time integral; t_k = k·dt, k = 0 … 2T/dt − 1)

For r > 0 there is no fixed point; the state crawls through the ghost at x = 0 and blows up
after ``t*(r) = π/(2√r)``. Learning r means placing that activation time at T. With a → ∞:

* optimum ``r_opt = π²/(4T²)`` (:func:`optimal_r`);
* **no-learning zone** ``r ≤ r_opt/4`` (:func:`no_learning_zone`): t* ≥ 2T, the output never
  turns on inside the trial, the loss is maximal (L = T) and its gradient is exactly zero;
* above it ``L ≈ |T − t*(r)|`` with ``dL/dr = ∓π/(4 r^{3/2})`` on either side of r_opt, a V-shaped
  **oscillatory minimum** (:func:`closed_form_loss`, :func:`closed_form_gradient`);
* **critical learning rate** ``η_c = 3π⁴/(32 T⁵)`` (:func:`critical_learning_rate`): one gradient
  step from just above r_opt lands exactly on the zone's edge r_opt/4, so plain gradient descent
  with η > η_c can jump into the zone and stay there. With the loss divided by T the law is
  ``3π⁴/(32 T⁴)``.

Numerics (:func:`loss_and_gradient`, :func:`gradient_descent`) use the exact Euler recursion with a
finite confidence (default ``a = 1``: inside the zone L/T = 0.9999 and |dL/dr| is below 0.5% of the
slope near r_opt). The gradient is propagated forward alongside the state,
``∂x_{k+1}/∂r = ∂x_k/∂r · (1 + 2 dt x_k) + dt``. Once ``x ≥ θ + 60/a`` the output equals 1 to
float64 round-off (1 − o < 1e-26) and the real Euler state would overflow a few steps later, so
the state is frozen there: this changes neither the loss nor its gradient at float64 precision and
avoids inf/NaN.

The Euler discretization matters in one respect worth knowing: near x = θ one Euler step moves x by
about dt·θ² = 10, so the sampled output switches on within one or two steps, and dL/dr carries a
ripple with a period of one Euler step in t*. Its amplitude grows with a (±8% at a = 0.3, from
0.3× to 1.9× the closed-form slope at a = 1); :func:`numerical_critical_learning_rate` measures how
it moves the learning-rate threshold: failures start at about 0.6 η_c instead of η_c (see its
docstring).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Tuple, Union

import numpy as np

__all__ = [
    "ToyModel", "simulate", "activation_time", "loss", "loss_and_gradient",
    "closed_form_activation_time", "optimal_r", "no_learning_zone", "closed_form_loss",
    "closed_form_gradient", "critical_learning_rate", "GradientDescentResult",
    "gradient_descent", "ideal_gradient_descent", "numerical_critical_learning_rate",
    "ThresholdResult",
]

#: 1 − sigmoid(z) < 1e-26 for z ≥ 60: the output is 1 to float64 round-off.
_SATURATION = 60.0


@dataclass(frozen=True)
class ToyModel:
    """Settings of the delayed-activation toy model.

    Parameters
    ----------
    T : float
        Delay: the target is 0 for t < T and 1 for T ≤ t < 2T (trial length 2T).
    dt : float
        Euler step. ``2T/dt`` steps per trial (2000 for T = 100, dt = 0.1).
    confidence : float
        Output gain ``a`` in ``o = sigmoid(a (x − threshold))``.
    threshold : float
        Output threshold θ.
    """

    T: float = 100.0
    dt: float = 0.1
    confidence: float = 1.0
    threshold: float = 10.0

    def __post_init__(self):
        for name in ("T", "dt", "confidence", "threshold"):
            value = getattr(self, name)
            if not isinstance(value, (int, float, np.integer, np.floating)) or \
                    not np.isfinite(value) or value <= 0:
                raise ValueError(f"ToyModel.{name}={value!r} is invalid; pass a positive finite "
                                 f"number")
        if self.T / self.dt < 1 or abs(self.T / self.dt - round(self.T / self.dt)) > 1e-6:
            raise ValueError(f"ToyModel: T={self.T} is not a whole number of Euler steps "
                             f"dt={self.dt}; pick T a multiple of dt")

    @property
    def n_delay(self) -> int:
        """Euler steps before the target switches on (T/dt)."""
        return int(round(self.T / self.dt))

    @property
    def n_steps(self) -> int:
        """Euler steps per trial (2T/dt)."""
        return 2 * self.n_delay

    @property
    def x_cap(self) -> float:
        """State at which the output has saturated to float64 round-off; x is frozen there."""
        return self.threshold + _SATURATION / self.confidence

    def times(self) -> np.ndarray:
        """Sample times ``t_k = k·dt``, shape ``(n_steps,)``."""
        return np.arange(self.n_steps) * self.dt

    def target(self) -> np.ndarray:
        """Target ``y(t_k)``, shape ``(n_steps,)``."""
        return (np.arange(self.n_steps) >= self.n_delay).astype(float)


def _model(model: Optional[ToyModel], **overrides) -> ToyModel:
    if model is None:
        return ToyModel(**overrides)
    if not isinstance(model, ToyModel):
        raise ValueError(f"model must be a ToyModel, got {type(model).__name__}")
    if overrides:
        from dataclasses import replace
        return replace(model, **overrides)
    return model


def _as_r(r, name: str = "r") -> np.ndarray:
    arr = np.asarray(r, dtype=float)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} has non-finite values; pass finite real numbers")
    return arr


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


# ---------------------------------------------------------------------------- simulation
def simulate(r, model: Optional[ToyModel] = None, n_steps: Optional[int] = None) -> np.ndarray:
    """Euler trajectories ``x(t_k)`` of ``dx/dt = x² + r`` from ``x(0) = 0``.

    Parameters
    ----------
    r : float or array_like of shape (b,)
    model : ToyModel, optional
    n_steps : int, optional
        Number of samples (default: one trial, ``model.n_steps``).

    Returns
    -------
    ndarray of shape (b, n_steps)
        ``x[:, k]`` is the state at ``t_k = k·dt`` (frozen at ``model.x_cap`` once the output has
        saturated).
    """
    m = _model(model)
    r = np.atleast_1d(_as_r(r))
    n = m.n_steps if n_steps is None else int(n_steps)
    out = np.empty((r.size, n))
    x = np.zeros(r.size)
    for k in range(n):
        out[:, k] = x
        x = np.minimum(x + m.dt * (x * x + r), m.x_cap)
    return out


def activation_time(r, model: Optional[ToyModel] = None, max_time: Optional[float] = None
                    ) -> np.ndarray:
    """First Euler time ``k·dt`` at which the output reaches 1/2 (``x ≥ threshold``).

    Parameters
    ----------
    r : float or array_like of shape (b,)
    model : ToyModel, optional
    max_time : float, optional
        Give up after this time (default 10× the closed-form time of the smallest positive r, at
        least 2T); ``inf`` is returned where the output never switches on.

    Returns
    -------
    ndarray of shape (b,)
    """
    m = _model(model)
    r = np.atleast_1d(_as_r(r))
    if max_time is None:
        positive = r[r > 0]
        max_time = 2 * m.T if positive.size == 0 else \
            max(2 * m.T, 10 * float(closed_form_activation_time(positive.min())))
    n_max = int(np.ceil(max_time / m.dt))
    t = np.full(r.size, np.inf)
    x = np.zeros(r.size)
    active = np.ones(r.size, dtype=bool)
    for k in range(n_max + 1):
        hit = active & (x >= m.threshold)
        t[hit] = k * m.dt
        active &= ~hit
        if not active.any():
            break
        x = np.minimum(x + m.dt * (x * x + r), m.x_cap)
    return t


def loss_and_gradient(r, model: Optional[ToyModel] = None
                      ) -> Tuple[Union[float, np.ndarray], Union[float, np.ndarray]]:
    """Loss ``L(r) = dt Σ (o − y)²`` and its exact derivative ``dL/dr`` (Euler, forward mode).

    Vectorized over r; stops early once every trajectory has saturated (the remaining steps add
    exactly known terms).

    Parameters
    ----------
    r : float or array_like of shape (b,)
    model : ToyModel, optional

    Returns
    -------
    loss, gradient : ndarray of shape (b,) (or scalars for a scalar r)
    """
    m = _model(model)
    r_in = _as_r(r)
    scalar = r_in.ndim == 0
    r = np.atleast_1d(r_in).ravel()
    if r.size == 1:
        value, grad = _loss_and_gradient_scalar(float(r[0]), m)
        if scalar:
            return value, grad
        return np.array([value]).reshape(r_in.shape), np.array([grad]).reshape(r_in.shape)
    a, dt, theta, cap = m.confidence, m.dt, m.threshold, m.x_cap
    n, n_delay = m.n_steps, m.n_delay
    x = np.zeros_like(r)
    dxdr = np.zeros_like(r)
    total = np.zeros_like(r)
    grad = np.zeros_like(r)
    for k in range(n):
        o = _sigmoid(a * (x - theta))
        err = o - (1.0 if k >= n_delay else 0.0)
        total += err * err
        grad += err * o * (1.0 - o) * dxdr
        frozen = x >= cap
        if frozen.all():
            # every output is saturated from here on: o is constant, dx/dr is 0
            before = max(n_delay - k - 1, 0)
            after = n - k - 1 - before
            total += before * o * o + after * (1.0 - o) ** 2
            break
        x_next = x + dt * (x * x + r)
        dxdr = np.where(frozen | (x_next >= cap), 0.0, dxdr * (1.0 + 2.0 * dt * x) + dt)
        x = np.where(frozen, x, np.minimum(x_next, cap))
    value, gradient = dt * total, 2.0 * dt * a * grad
    return value.reshape(r_in.shape), gradient.reshape(r_in.shape)


def _loss_and_gradient_scalar(r: float, m: ToyModel) -> Tuple[float, float]:
    """Same recursion as :func:`loss_and_gradient` for one r in plain floats (about 50× faster
    than numpy on length-1 arrays; gradient descent runs are sequential in r)."""
    a, dt, theta, cap = m.confidence, m.dt, m.threshold, m.x_cap
    n, n_delay = m.n_steps, m.n_delay
    x = dxdr = total = grad = 0.0
    exp = math.exp
    for k in range(n):
        z = a * (x - theta)
        o = 1.0 / (1.0 + exp(-z)) if z > -700.0 else 0.0
        err = o - 1.0 if k >= n_delay else o
        total += err * err
        grad += err * o * (1.0 - o) * dxdr
        if x >= cap:
            before = max(n_delay - k - 1, 0)
            after = n - k - 1 - before
            total += before * o * o + after * (1.0 - o) ** 2
            break
        x_next = x + dt * (x * x + r)
        if x_next >= cap:
            x, dxdr = cap, 0.0
        else:
            x, dxdr = x_next, dxdr * (1.0 + 2.0 * dt * x) + dt
    return dt * total, 2.0 * dt * a * grad


def loss(r, model: Optional[ToyModel] = None) -> Union[float, np.ndarray]:
    """Loss ``L(r)`` (see :func:`loss_and_gradient`)."""
    return loss_and_gradient(r, model)[0]


# ---------------------------------------------------------------------------- closed forms
def closed_form_activation_time(r) -> np.ndarray:
    """``t*(r) = π/(2√r)``: time for ``dx/dt = x² + r`` to go from 0 to ∞ (inf for r ≤ 0)."""
    r = _as_r(r)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(r > 0, np.pi / (2.0 * np.sqrt(np.where(r > 0, r, 1.0))), np.inf)


def optimal_r(T: float = 100.0) -> float:
    """``r_opt = π²/(4T²)``: t*(r_opt) = T (2.4674e-4 at T = 100)."""
    _check_T(T)
    return float(np.pi ** 2 / (4.0 * T ** 2))


def no_learning_zone(T: float = 100.0) -> float:
    """Upper edge of the no-learning zone, ``r_opt/4`` (t* = 2T: the output never switches on)."""
    return optimal_r(T) / 4.0


def closed_form_loss(r, T: float = 100.0) -> np.ndarray:
    """``L ≈ |T − t*(r)|`` above the zone, ``T`` inside it (a → ∞, continuous time)."""
    _check_T(T)
    t_star = closed_form_activation_time(r)
    return np.where(t_star >= 2 * T, T, np.abs(T - np.minimum(t_star, 2 * T)))


def closed_form_gradient(r, T: float = 100.0) -> np.ndarray:
    """``dL/dr = +π/(4 r^{3/2})`` above r_opt, ``−π/(4 r^{3/2})`` between the zone and r_opt,
    0 inside the zone (a → ∞)."""
    r = _as_r(r)
    r_opt, r_zone = optimal_r(T), no_learning_zone(T)
    safe = np.where(r > 0, r, 1.0)
    slope = np.pi / (4.0 * safe ** 1.5)
    return np.where(r <= r_zone, 0.0, np.where(r > r_opt, slope, -slope))


def critical_learning_rate(T: float = 100.0, normalized: bool = False) -> float:
    """``η_c = 3π⁴/(32 T⁵)`` (9.13e-10 at T = 100); ``3π⁴/(32 T⁴)`` for the loss divided by T.

    Derivation: just above r_opt a step moves r by ``η·π/(4 r_opt^{3/2}) = 2ηT³/π²``; it lands in
    the zone when that exceeds ``r_opt − r_opt/4 = 3π²/(16T²)``.
    """
    _check_T(T)
    eta = 3.0 * np.pi ** 4 / (32.0 * T ** 5)
    return float(eta * T if normalized else eta)


def _check_T(T: float) -> None:
    if not np.isfinite(T) or T <= 0:
        raise ValueError(f"T={T!r} is invalid; pass a positive delay")


# ---------------------------------------------------------------------------- learning
@dataclass(frozen=True)
class GradientDescentResult:
    """Plain gradient descent on r.

    Attributes
    ----------
    r : ndarray of shape (n_steps + 1,)
        r before each step and after the last.
    loss : ndarray of shape (n_steps + 1,)
        L(r) at each entry of ``r``.
    gradient : ndarray of shape (n_steps + 1,)
    eta : float
    model : ToyModel
    """

    r: np.ndarray
    loss: np.ndarray
    gradient: np.ndarray
    eta: float
    model: ToyModel

    @property
    def final_r(self) -> float:
        return float(self.r[-1])

    @property
    def final_loss(self) -> float:
        return float(self.loss[-1])

    @property
    def stuck(self) -> bool:
        """Whether the run ended in the no-learning zone (output never on: L within 1% of T)."""
        return bool(self.loss[-1] >= 0.99 * self.model.T)


def gradient_descent(r0: float, eta: float, n_steps: int = 3000,
                     model: Optional[ToyModel] = None) -> GradientDescentResult:
    """Plain gradient descent ``r ← r − η dL/dr`` on the exact Euler loss.

    Parameters
    ----------
    r0 : float
        Starting value.
    eta : float
        Learning rate (for the un-normalised loss ``dt Σ (o − y)²``).
    n_steps : int
    model : ToyModel, optional

    Returns
    -------
    GradientDescentResult
    """
    m = _model(model)
    r = float(_as_r(r0, "r0"))
    if not np.isfinite(eta) or eta <= 0:
        raise ValueError(f"eta={eta!r} is invalid; pass a positive learning rate")
    if int(n_steps) < 0:
        raise ValueError(f"n_steps={n_steps!r} is invalid; pass an integer >= 0")
    rs, losses, grads = [], [], []
    for _ in range(int(n_steps) + 1):
        value, grad = _loss_and_gradient_scalar(r, m)
        rs.append(r)
        losses.append(value)
        grads.append(grad)
        r = r - eta * grad
    return GradientDescentResult(r=np.array(rs), loss=np.array(losses), gradient=np.array(grads),
                                 eta=float(eta), model=m)


def ideal_gradient_descent(r0, eta, n_steps: int = 3000, T: float = 100.0) -> np.ndarray:
    """Gradient descent on the closed-form (a → ∞) landscape, vectorized over runs.

    Parameters
    ----------
    r0, eta : float or array_like, broadcast together
    n_steps : int
    T : float

    Returns
    -------
    ndarray
        Final r of every run (broadcast shape of ``r0`` and ``eta``).
    """
    r, eta = np.broadcast_arrays(_as_r(r0, "r0"), _as_r(eta, "eta"))
    r = r.astype(float).copy()
    for _ in range(int(n_steps)):
        r = r - eta * closed_form_gradient(r, T)
    return r


@dataclass(frozen=True)
class ThresholdResult:
    """Where gradient descent starts to fail, from :func:`numerical_critical_learning_rate`.

    Attributes
    ----------
    eta : float
        Smallest failing learning rate found (bisection bracket's upper end).
    eta_converged : float
        Largest learning rate found to converge below it (bracket's lower end).
    ratio : float
        ``eta / critical_learning_rate(T)``.
    eta_c : float
        The closed form.
    worst_case_eta : float
        ``min_r (r − r_zone)/L'(r)`` over the right branch of the exact landscape: the smallest
        learning rate at which SOME point above the minimum jumps into the zone in one step (the
        numerical analogue of the closed form's derivation).
    n_runs : int
        Gradient descent runs made.
    """

    eta: float
    eta_converged: float
    ratio: float
    eta_c: float
    worst_case_eta: float
    n_runs: int


def _worst_case_eta(m: ToyModel, n_grid: int = 4000) -> float:
    r_opt = optimal_r(m.T)
    grid = r_opt * np.linspace(0.05, 1.0, 400)
    zone_loss = np.asarray(loss_and_gradient(grid, m)[0])
    flat = zone_loss >= 0.99 * m.T
    r_zone = float(grid[flat].max()) if flat.any() else 0.0
    right = r_opt * np.linspace(0.9, 3.0, n_grid)
    value, grad = map(np.asarray, loss_and_gradient(right, m))
    beyond = right > right[np.argmin(value)]
    ok = beyond & (grad > 0)
    return float(np.min((right[ok] - r_zone) / grad[ok]))


def numerical_critical_learning_rate(model: Optional[ToyModel] = None, r0_factor: float = 2.0,
                                     n_steps: int = 3000, lo: float = 0.3, hi: float = 1.5,
                                     n_grid: int = 17, rtol: float = 0.01) -> ThresholdResult:
    """The smallest learning rate at which gradient descent ends in the no-learning zone.

    Protocol (ours; the paper's is not known to us): plain gradient descent on the exact Euler
    loss from ``r0 = r0_factor · r_opt`` for ``n_steps`` steps; a run fails when it ends with
    L ≥ 0.99 T. Learning rates ``η/η_c`` on a geometric grid of ``n_grid`` points from ``lo`` to
    ``hi`` are tried in increasing order up to the first failure; the interval between it and the
    last success below it is then bisected (geometrically) to relative width ``rtol``. Failure is
    not monotonic in η (the oscillation around r_opt may or may not land in the zone), which is
    why the grid comes first: plain bisection on ``[lo, hi]`` can settle on a later transition.

    What it finds (T = 25, 50, 100, 200, a = 1, r0 = 2 r_opt, 3000 steps): failures start at
    0.68, 0.60, 0.58 and 0.58 η_c, nearly the same fraction for every T, so the T⁻⁵ law holds
    but with a prefactor below one (SCIENCE.md quotes 1.12 η_c; we do not reproduce that). The
    cause is the Euler ripple of dL/dr (module docstring): near r_opt the exact slope reaches
    ~1.9× the closed form, so a smaller η already carries a step from above r_opt into the zone;
    ``worst_case_eta`` (0.55–0.58 η_c) quantifies this from the landscape alone. On the
    closed-form landscape (:func:`ideal_gradient_descent`) failures start just above η_c.

    Parameters
    ----------
    model : ToyModel, optional
    r0_factor : float
        Start at ``r0_factor · r_opt``.
    n_steps : int
        Gradient steps per run.
    lo, hi : float
        Grid range in units of η_c.
    n_grid : int
        Grid points.
    rtol : float
        Relative width at which bisection stops.

    Returns
    -------
    ThresholdResult

    Raises
    ------
    ValueError
        If gradient descent already fails at ``lo`` or never fails up to ``hi``.
    """
    m = _model(model)
    if not (0 < lo < hi) or int(n_grid) < 2:
        raise ValueError(f"lo={lo!r}, hi={hi!r}, n_grid={n_grid!r} are invalid; pass "
                         f"0 < lo < hi and n_grid >= 2")
    eta_c = critical_learning_rate(m.T)
    r0 = r0_factor * optimal_r(m.T)
    runs = 0

    def fails(ratio: float) -> bool:
        nonlocal runs
        runs += 1
        return gradient_descent(r0, ratio * eta_c, n_steps, m).stuck

    below = None
    above = None
    for ratio in np.geomspace(lo, hi, int(n_grid)):
        if fails(float(ratio)):
            above = float(ratio)
            break
        below = float(ratio)
    if above is None:
        raise ValueError(f"gradient descent still converges at hi={hi}·η_c; pass a larger hi")
    if below is None:
        raise ValueError(f"gradient descent already fails at lo={lo}·η_c; pass a smaller lo")
    while above / below - 1.0 > rtol:
        mid = math.sqrt(below * above)
        if fails(mid):
            above = mid
        else:
            below = mid
    return ThresholdResult(eta=above * eta_c, eta_converged=below * eta_c, ratio=above,
                           eta_c=eta_c, worst_case_eta=_worst_case_eta(m), n_runs=runs)
