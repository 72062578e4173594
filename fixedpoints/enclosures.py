"""Interval enclosures of the velocity and its Jacobian for the architectures whose equations
are known, the raw material of the certificates (:mod:`fixedpoints.certify`).

An :class:`Enclosure` is bound to one constant input and maps a box of states
``X`` (an :class:`~fixedpoints.intervals.Interval` of shape (b, n)) to

* ``velocity(X)``: an interval (b, n) holding ``v(x)`` for every ``x ∈ X``;
* ``jacobian(X)``: an interval (b, n, n) holding ``J_v(x)`` for every ``x ∈ X``,

with ``v`` the system's native velocity (discrete time ``F(x) − x``, continuous time ``f(x)``).
The mean-value form ``v(y) − v(x) ∈ J_v(X)(y − x)`` for ``x, y ∈ X`` then holds because J_v(X)
holds every Jacobian on the segment (for relu, every difference quotient).

Supported (anything else has no enclosure and its points are reported uncertified):

* leaky rate networks ``r ← (1 − α) r + α φ(W r + c)`` and ``dr/dt = −r + φ(W r + c)`` with
  φ = tanh or relu, W dense or low rank ``L R`` (:class:`RateEnclosure`); one-layer torch
  ``nn.RNN`` is the case α = 1;
* one-layer torch ``nn.GRU`` / ``nn.GRUCell`` (:class:`GRUEnclosure`) and ``nn.LSTM`` /
  ``nn.LSTMCell`` (:class:`LSTMEnclosure`, state ``[h, c]``).

Derivative bounds used: ``tanh' = 1 − tanh² ∈ [0, 1]``, ``σ' = σ(1 − σ) = ¼ − (σ − ½)² ∈ [0, ¼]``
(enclosed from the enclosure of the function itself, see :mod:`fixedpoints.intervals`), and
``relu' ∈ {0, 1}`` with ``[0, 1]`` across the kink.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from .intervals import Interval, imatmul, point, scaled_rows, sigmoid_slope, tanh_slope

__all__ = ["Enclosure", "RateEnclosure", "GRUEnclosure", "LSTMEnclosure"]


def _cols(x: Interval) -> Interval:
    return Interval(x.lo[..., None], x.hi[..., None])


def _rows(x: Interval) -> Interval:
    return Interval(x.lo[..., 0], x.hi[..., 0])


def _apply(matrix, x: Interval) -> Interval:
    """``matrix @ x`` for states x of shape (b, q): shape (b, p)."""
    return _rows(imatmul(matrix, _cols(x)))


def _drive(weight: Optional[np.ndarray], u: Optional[np.ndarray], bias, n: int) -> Interval:
    """Enclosure of ``weight @ u + bias`` (the constant drive), shape (n,)."""
    total = point(np.zeros(n))
    if weight is not None and u is not None and np.size(u):
        prod = imatmul(np.asarray(weight, dtype=float), np.asarray(u, dtype=float).reshape(-1, 1))
        total = total + Interval(prod.lo[:, 0], prod.hi[:, 0])
    if bias is not None:
        total = total + np.asarray(bias, dtype=float).reshape(-1)
    return total


class Enclosure:
    """Base class: interval velocity and Jacobian of one system at one input."""

    time: str = "discrete"
    n_states: int = 0
    #: low-rank factors (L, R) of the recurrence when the spectrum reduces to K×K, else None
    factors: Optional[Tuple[np.ndarray, np.ndarray]] = None
    #: α of a leaky rate network (discrete map eigenvalues are 1 − α + α μ), else None
    alpha: Optional[float] = None

    def velocity(self, x: Interval) -> Interval:  # pragma: no cover - interface
        raise NotImplementedError

    def jacobian(self, x: Interval) -> Interval:  # pragma: no cover - interface
        raise NotImplementedError

    def slopes(self, x: Interval) -> Interval:  # pragma: no cover - low-rank only
        raise NotImplementedError


class RateEnclosure(Enclosure):
    """``v = s (φ(W x + c) − x)`` with ``s = α`` (discrete) or 1 (continuous).

    Parameters
    ----------
    bias : ndarray of shape (n,)
        The whole constant drive ``c`` (input already applied).
    weight : ndarray of shape (n, n), optional
        Dense W, or
    left, right : ndarray of shape (n, K) and (K, n), optional
        Its factors (W = L R).
    alpha : float
        Leak of the discrete map (1 for a plain ``h ← φ(W h + c)``).
    time : {"discrete", "continuous"}
    nonlinearity : {"tanh", "relu"}
    drive : Interval of shape (n,), optional
        An enclosure of c when it is computed (``W_in u + b`` with rounding); ``[c, c]``
        otherwise.
    """

    def __init__(self, bias, *, weight=None, left=None, right=None, alpha: float = 1.0,
                 time: str = "discrete", nonlinearity: str = "tanh",
                 drive: Optional[Interval] = None):
        if (weight is None) == (left is None or right is None):
            raise ValueError("pass either weight (n, n) or both left (n, K) and right (K, n)")
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity={nonlinearity!r} is not supported; pass 'tanh' or "
                             f"'relu'")
        if not (0 < float(alpha) <= 1):
            raise ValueError(f"alpha={alpha!r} is invalid; pass a number in (0, 1]")
        self.bias = np.asarray(bias, dtype=float).reshape(-1)
        self.drive = drive if drive is not None else point(self.bias)
        self.time = time
        self.leak = float(alpha)
        self.alpha = self.leak
        self.nonlinearity = nonlinearity
        self.n_states = int(self.bias.shape[0])
        if weight is not None:
            self.weight = np.asarray(weight, dtype=float)
            self.weight_interval = point(self.weight)
        else:
            left_f, right_f = np.asarray(left, dtype=float), np.asarray(right, dtype=float)
            self.factors = (left_f, right_f)
            self.weight_interval = imatmul(left_f, right_f)
            self.weight = 0.5 * self.weight_interval.lo + 0.5 * self.weight_interval.hi

    @property
    def scale(self) -> float:
        return self.leak if self.time == "discrete" else 1.0

    def _pre(self, x: Interval) -> Interval:
        if self.factors is not None:
            left, right = self.factors
            return _apply(left, _apply(right, x)) + self.drive
        return _apply(self.weight, x) + self.drive

    def _phi(self, pre: Interval) -> Interval:
        return pre.tanh() if self.nonlinearity == "tanh" else pre.relu()

    def slopes(self, x: Interval) -> Interval:
        """``φ'`` at the pre-activations over the box, shape (b, n)."""
        pre = self._pre(x)
        return tanh_slope(pre.tanh()) if self.nonlinearity == "tanh" else pre.relu_slope()

    def velocity(self, x: Interval) -> Interval:
        v = self._phi(self._pre(x)) - x
        return v if self.scale == 1.0 else v * self.scale

    def jacobian(self, x: Interval) -> Interval:
        d = self.slopes(x)
        if self.factors is None:  # diag(d) W − I in one midpoint-radius pass, then × s
            jac = scaled_rows([(d, self.weight)], diagonal=point(np.full(d.shape, -1.0)))
        else:
            rows = Interval(d.lo[..., None], d.hi[..., None]) * self.weight_interval
            jac = rows - np.eye(self.n_states)
        return jac if self.scale == 1.0 else jac * self.scale


class GRUEnclosure(Enclosure):
    """One-layer torch GRU: ``h' = (1 − z) n + z h`` (torch's gate equations), discrete time.

    Parameters
    ----------
    w_ih : ndarray of shape (3n, m)
    w_hh : ndarray of shape (3n, n)
    b_ih, b_hh : ndarray of shape (3n,) or None
    u : ndarray of shape (m,)
        The bound input.
    """

    time = "discrete"

    def __init__(self, w_ih, w_hh, b_ih, b_hh, u):
        self.w_hh = np.asarray(w_hh, dtype=float)
        n = self.w_hh.shape[1]
        self.n_states = n
        self.gi = _drive(w_ih, u, b_ih, 3 * n)
        self.b_hh = np.zeros(3 * n) if b_hh is None else np.asarray(b_hh, dtype=float)
        self.w_hr, self.w_hz, self.w_hn = np.split(self.w_hh, 3, axis=0)

    def _gates(self, x: Interval):
        n = self.n_states
        gh = _apply(self.w_hh, x) + self.b_hh
        i_r, i_z, i_n = (self.gi[k * n:(k + 1) * n] for k in range(3))
        h_r, h_z, h_n = (gh[:, k * n:(k + 1) * n] for k in range(3))
        r = (h_r + i_r).sigmoid()
        z = (h_z + i_z).sigmoid()
        cand = (r * h_n + i_n).tanh()
        return r, z, cand, h_n

    def velocity(self, x: Interval) -> Interval:
        r, z, cand, _ = self._gates(x)
        return cand + z * (x - cand) - x

    def jacobian(self, x: Interval) -> Interval:
        r, z, cand, h_n = self._gates(x)
        dn = tanh_slope(cand)
        s_n = (1.0 - z) * dn
        s_z = (x - cand) * sigmoid_slope(z)
        s_r = s_n * h_n * sigmoid_slope(r)

        return scaled_rows([(s_n * r, self.w_hn), (s_z, self.w_hz), (s_r, self.w_hr)],
                           diagonal=z - 1.0)


class LSTMEnclosure(Enclosure):
    """One-layer torch LSTM on the state ``x = [h, c]`` (2n), discrete time.

    ``c' = f c + i g``, ``h' = o tanh(c')`` with ``i, f, o = σ(·)``, ``g = tanh(·)`` of
    ``W_ih u + b_ih + W_hh h + b_hh`` (torch's gate order i, f, g, o).

    Parameters
    ----------
    w_ih : ndarray of shape (4n, m)
    w_hh : ndarray of shape (4n, n)
    b_ih, b_hh : ndarray of shape (4n,) or None
    u : ndarray of shape (m,)
    """

    time = "discrete"

    def __init__(self, w_ih, w_hh, b_ih, b_hh, u):
        self.w_hh = np.asarray(w_hh, dtype=float)
        n = self.w_hh.shape[1]
        self.n_hidden = n
        self.n_states = 2 * n
        self.gi = _drive(w_ih, u, b_ih, 4 * n)
        self.b_hh = np.zeros(4 * n) if b_hh is None else np.asarray(b_hh, dtype=float)
        self.w_hi, self.w_hf, self.w_hg, self.w_ho = np.split(self.w_hh, 4, axis=0)

    def _parts(self, x: Interval):
        n = self.n_hidden
        h, c = x[:, :n], x[:, n:]
        pre = _apply(self.w_hh, h) + self.b_hh + self.gi
        i, f, g, o = (pre[:, k * n:(k + 1) * n] for k in range(4))
        i, f, o, g = i.sigmoid(), f.sigmoid(), o.sigmoid(), g.tanh()
        c_new = f * c + i * g
        tc = c_new.tanh()
        return h, c, i, f, g, o, c_new, tc

    def velocity(self, x: Interval) -> Interval:
        h, c, i, f, g, o, c_new, tc = self._parts(x)
        return Interval(np.concatenate([(o * tc - h).lo, (c_new - c).lo], axis=1),
                        np.concatenate([(o * tc - h).hi, (c_new - c).hi], axis=1))

    def jacobian(self, x: Interval) -> Interval:
        n = self.n_hidden
        h, c, i, f, g, o, c_new, tc = self._parts(x)
        di, df, do = sigmoid_slope(i), sigmoid_slope(f), sigmoid_slope(o)
        dg = tanh_slope(g)
        k = o * tanh_slope(tc)  # ∂h'/∂c'
        s_i, s_f, s_g = g * di, c * df, i * dg  # ∂c'/∂(pre-activations i, f, g)
        dc_dh = scaled_rows([(s_i, self.w_hi), (s_f, self.w_hf), (s_g, self.w_hg)],
                            diagonal=None)
        dh_dh = scaled_rows([(tc * do, self.w_ho), (k * s_i, self.w_hi), (k * s_f, self.w_hf),
                             (k * s_g, self.w_hg)], diagonal=point(np.full(h.shape, -1.0)))
        eye = np.eye(n)
        dh_dc = _diag(k * f, eye)
        dc_dc = _diag(f - 1.0, eye)
        dc_dh_lo, dc_dh_hi = dc_dh.lo, dc_dh.hi
        lo = np.concatenate([np.concatenate([dh_dh.lo, dh_dc.lo], 2),
                             np.concatenate([dc_dh_lo, dc_dc.lo], 2)], 1)
        hi = np.concatenate([np.concatenate([dh_dh.hi, dh_dc.hi], 2),
                             np.concatenate([dc_dh_hi, dc_dc.hi], 2)], 1)
        return Interval(lo, hi)


def _diag(d: Interval, eye: np.ndarray) -> Interval:
    """``diag(d)`` for d of shape (b, n): (b, n, n) (zeros off the diagonal, exactly)."""
    return Interval(eye * d.lo[..., None], eye * d.hi[..., None])
