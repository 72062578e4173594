"""Exact fixed points and k-cycles of piecewise-linear RNNs (PLRNNs), region by region.

The PLRNN map ``z ← A z + W ReLU(z) + c`` (A diagonal, stored as a vector; W off-diagonal;
``c = C s + h`` the whole constant drive at input s) is affine on each orthant: with the ReLU
pattern ``D = diag(z > 0)`` it is ``z ← M_D z + c``, ``M_D = diag(A) + W D`` (the Jacobian there).
So a fixed point in the region of D solves ``(I − M_D) z = c`` and is a fixed point iff its own
pattern is D (``z_i > 0`` exactly where ``D_i = 1``; ``z_i = 0`` counts as inactive). A k-cycle
with patterns ``D_1 … D_k`` solves ``(I − P) z_1 = q`` with ``P = M_k ⋯ M_1`` and ``q`` the
composed drive, and is a cycle iff every state of the orbit has its pattern.

* :func:`plrnn_fixed_points`: for ``N ≤ max_exhaustive`` (16) all ``2^N`` patterns are solved in
  batches: the result holds EVERY isolated fixed point (``complete``), unless some ``I − M_D``
  is singular (a line or plane of fixed points may then exist; ``complete`` is False and the
  patterns are counted). Beyond, a SCYFI-style search (Eisenmann et al. 2023): from the pattern
  of each seed state, solve, move to the pattern of the solution, repeat; it finds fixed points
  but proves nothing (``complete`` False).
* :func:`plrnn_cycles`: k-cycles likewise; exhaustive over all ``2^(N k)`` pattern sequences when
  ``N k ≤ max_exhaustive``, otherwise seeded from windows of simulated trajectories.

Certificates (floating-point, not interval-rigorous): inside the open orthant the map is affine
with non-singular ``I − M_D``, so the max-norm cube of radius ``min_i |z_i|`` around a fixed
point holds exactly one fixed point (``certified_radius``); ``error_bound`` is
``‖(I − M_D)⁻¹‖_∞ ‖residual‖_∞`` computed in float64; the index is called proved when no
eigenvalue modulus is within ``1e-8 · max(1, ‖M_D‖)`` of 1.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional

import numpy as np
import torch
from numpy.typing import NDArray

__all__ = ["PLRNNForm", "PLRNNFixedPoints", "PLRNNCycles", "plrnn_fixed_points",
           "plrnn_cycles", "plrnn_form", "MAX_EXHAUSTIVE"]

#: Largest number of pattern bits (N for fixed points, N k for k-cycles) enumerated exhaustively.
MAX_EXHAUSTIVE = 16

_CHUNK = 8192


@dataclass(frozen=True)
class PLRNNForm:
    """The PLRNN map at one input: ``z ← A ⊙ z + W ReLU(z) + c``.

    Attributes
    ----------
    A : ndarray of shape (N,)
        The diagonal of the linear part.
    W : ndarray of shape (N, N)
        Off-diagonal coupling (its diagonal is removed on construction, as the model masks it).
    drive : ndarray of shape (N,)
        ``c = C s + h`` at the bound input.
    """

    A: np.ndarray
    W: np.ndarray
    drive: np.ndarray

    def __post_init__(self):
        a = np.asarray(self.A, dtype=np.float64).reshape(-1)
        w = np.asarray(self.W, dtype=np.float64)
        c = np.asarray(self.drive, dtype=np.float64).reshape(-1)
        n = a.shape[0]
        if w.shape != (n, n):
            raise ValueError(f"W has shape {w.shape} but A has {n} entries; pass W of shape "
                             f"({n}, {n})")
        if c.shape != (n,):
            raise ValueError(f"drive has shape {c.shape}; pass c = C s + h of shape ({n},)")
        for name, value in (("A", a), ("W", w), ("drive", c)):
            if not np.isfinite(value).all():
                raise ValueError(f"{name} has non-finite values; the PLRNN map is undefined")
        object.__setattr__(self, "A", a)
        object.__setattr__(self, "W", w - np.diag(np.diag(w)))
        object.__setattr__(self, "drive", c)

    @property
    def n_states(self) -> int:
        return int(self.A.shape[0])

    @classmethod
    def from_dict(cls, form: Dict) -> "PLRNNForm":
        """From the plain dict a ``checkpoints`` model's ``plrnn_form(u)`` returns."""
        def arr(v):
            return v.detach().cpu().double().numpy() if hasattr(v, "detach") else np.asarray(v)
        return cls(A=arr(form["A"]), W=arr(form["W"]), drive=arr(form["drive"]))

    def step(self, z: NDArray[np.float64]) -> NDArray[np.float64]:
        """One map iteration for states of shape (b, N)."""
        z = np.asarray(z, dtype=np.float64)
        return self.A * z + np.maximum(z, 0.0) @ self.W.T + self.drive

    def matrices(self, patterns: NDArray[np.bool_]) -> NDArray[np.float64]:
        """``M_D = diag(A) + W D`` for patterns of shape (b, N); returns (b, N, N)."""
        d = np.asarray(patterns, dtype=np.float64)
        return self.W[None] * d[:, None, :] + np.diag(self.A)[None]

    def simulate(self, z0: NDArray[np.float64], n_steps: int) -> NDArray[np.float64]:
        """Trajectories of shape (b, n_steps + 1, N) from states ``z0`` (b, N)."""
        out = [np.asarray(z0, dtype=np.float64).reshape(-1, self.n_states)]
        for _ in range(int(n_steps)):
            out.append(self.step(out[-1]))
        return np.stack(out, axis=1)


@dataclass(frozen=True)
class PLRNNFixedPoints:
    """The fixed points of a PLRNN at one input.

    Attributes
    ----------
    x : ndarray of shape (k, N)
    patterns : ndarray of shape (k, N), bool
        Each point's ReLU pattern.
    eigvals : ndarray of shape (k, N), complex
        Eigenvalues of ``M_D`` (the map's Jacobian), by decreasing modulus.
    n_unstable : ndarray of shape (k,), int
        Eigenvalues of modulus > 1.
    certified_radius, error_bound : ndarray of shape (k,)
        See the module docstring.
    stability_certified : ndarray of shape (k,), bool
    complete : bool
        All ``2^N`` patterns were solved and none was singular: these are ALL the fixed points.
    info : dict
        ``patterns_solved``, ``singular_patterns``, ``method`` (``"exhaustive"`` or
        ``"heuristic"``).
    """

    x: np.ndarray
    patterns: np.ndarray
    eigvals: np.ndarray
    n_unstable: np.ndarray
    certified_radius: np.ndarray
    error_bound: np.ndarray
    stability_certified: np.ndarray
    complete: bool
    info: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        k = int(np.shape(self.x)[0])
        for name in ("patterns", "eigvals", "n_unstable", "certified_radius", "error_bound",
                     "stability_certified"):
            if int(np.shape(getattr(self, name))[0]) != k:
                raise ValueError(f"{name} has {np.shape(getattr(self, name))[0]} row(s) but x "
                                 f"has {k}; pass one row per point")

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclass(frozen=True)
class PLRNNCycles:
    """The k-cycles (minimal period k ≥ 2) of a PLRNN at one input.

    Attributes
    ----------
    period : int
    orbits : ndarray of shape (m, k, N)
        Each orbit's states in map order, rotated so that the lexicographically smallest state
        comes first.
    patterns : ndarray of shape (m, k, N), bool
    multipliers : ndarray of shape (m, N), complex
        Eigenvalues of the k-step Jacobian ``M_k ⋯ M_1`` (Floquet multipliers), by decreasing
        modulus.
    stable : ndarray of shape (m,), bool
        All multipliers inside the unit circle.
    complete : bool
        Exhaustive over all pattern sequences with no singular one.
    info : dict
    """

    period: int
    orbits: np.ndarray
    patterns: np.ndarray
    multipliers: np.ndarray
    stable: np.ndarray
    complete: bool
    info: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if int(self.period) < 1:
            raise ValueError(f"period={self.period!r} is invalid; pass a positive integer")
        m = int(np.shape(self.orbits)[0])
        for name in ("patterns", "multipliers", "stable"):
            if int(np.shape(getattr(self, name))[0]) != m:
                raise ValueError(f"{name} has {np.shape(getattr(self, name))[0]} row(s) but "
                                 f"orbits has {m}; pass one row per orbit")

    def __len__(self) -> int:
        return int(self.orbits.shape[0])


def plrnn_form(dynamics) -> Optional[PLRNNForm]:
    """The :class:`PLRNNForm` of ``dynamics`` at its bound input, or None.

    Read from ``dynamics.plrnn_source`` (set by :func:`fixedpoints.from_module` for models with
    a ``plrnn_form(u)`` method, or by hand): a callable of the input (ndarray (n_inputs,)).
    """
    source = getattr(dynamics, "plrnn_source", None)
    if source is None:
        return None
    form = source(dynamics.input.detach().cpu().double().numpy())
    if form is None:
        return None
    return form if isinstance(form, PLRNNForm) else PLRNNForm.from_dict(form)


# ---------------------------------------------------------------------------- patterns
def _all_patterns(n_bits: int, start: int, stop: int) -> NDArray[np.bool_]:
    """Rows ``start … stop-1`` of the 2^n_bits patterns, as booleans (b, n_bits)."""
    idx = np.arange(start, stop, dtype=np.int64)
    return ((idx[:, None] >> np.arange(n_bits, dtype=np.int64)[None]) & 1).astype(bool)


def _solve(mats: NDArray[np.float64], rhs: NDArray[np.float64]):
    """Solve ``mats z = rhs`` batched (torch LU); returns (z (b, n), singular (b,) bool).

    A system counts as singular when LU meets a zero pivot or the ratio of its smallest to its
    largest pivot modulus is below ``n · eps`` (a cheap estimate of numerical singularity);
    those rows of ``z`` are NaN. One step of iterative refinement follows the solve.
    """
    b, n = rhs.shape
    m = torch.from_numpy(np.ascontiguousarray(mats))
    r = torch.from_numpy(np.ascontiguousarray(rhs)).unsqueeze(-1)
    lu, piv, info = torch.linalg.lu_factor_ex(m)
    diag = lu.diagonal(dim1=-2, dim2=-1).abs()
    ratio = diag.min(-1).values / diag.max(-1).values.clamp_min(1e-300)
    singular = (info != 0) | ~(ratio >= n * float(np.finfo(float).eps))
    z = torch.linalg.lu_solve(lu, piv, r)
    z = z + torch.linalg.lu_solve(lu, piv, r - m @ z)
    out = z.squeeze(-1).numpy().copy()
    sing = singular.numpy()
    out[sing] = np.nan
    return out, sing


def _solve_patterns(form: "PLRNNForm", eye: np.ndarray, pats: np.ndarray):
    """Solve ``(I − A − W D) z = c`` for each ReLU pattern D of ``pats`` (k, n): the solutions
    z (k, n), which systems were singular (k,), and which solutions have their own pattern
    (k,)."""
    z, singular = _solve(eye[None] - form.matrices(pats),
                         np.broadcast_to(form.drive, pats.shape).copy())
    return z, singular, _consistent(z, pats)


def _consistent(z: NDArray[np.float64], patterns: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Rows whose states have exactly the given patterns (z > 0 where active, ≤ 0 elsewhere)."""
    ok = np.isfinite(z).all(-1)
    return ok & ((z > 0) == patterns).all(-1)


def _unique_rows(x: NDArray[np.float64], tol: float) -> NDArray[np.int_]:
    """Indices of the first of each group of rows within ``tol`` (max-norm) of each other."""
    keep: list = []
    for i in range(len(x)):
        if not any(np.abs(x[i] - x[j]).max() <= tol for j in keep):
            keep.append(i)
    return np.asarray(keep, dtype=int)


# ---------------------------------------------------------------------------- fixed points
def plrnn_fixed_points(form: PLRNNForm, *, max_exhaustive: int = MAX_EXHAUSTIVE,
                       seeds: Optional[NDArray[np.float64]] = None, max_iter: int = 50,
                       n_random: int = 64, max_solves: Optional[int] = None,
                       seed: int = 0) -> PLRNNFixedPoints:
    """All fixed points of a PLRNN (exhaustive for N ≤ ``max_exhaustive``), else a heuristic set.

    Parameters
    ----------
    form : PLRNNForm
    max_exhaustive : int
        Largest N solved over all ``2^N`` patterns.
    seeds : ndarray of shape (b, N), optional
        States whose patterns start the heuristic search (visited states); trajectories from
        ``n_random`` random states are added.
    max_iter : int
        Pattern updates per seed in the heuristic search.
    n_random : int
        Random initial states (standard normal times the drive's scale) simulated for 100
        steps; the patterns of their last 20 states seed the search.
    max_solves : int, optional
        Budget of the heuristic search (patterns solved); default
        ``min(20000, max(64, 2e9 / N³))`` (about 2·10⁹ flops of LU).
    seed : int
        Random seed of the heuristic search.

    Returns
    -------
    PLRNNFixedPoints
    """
    n = form.n_states
    eye = np.eye(n)
    found_z, found_p = [], []
    n_singular = 0
    solved = 0
    if n <= max_exhaustive:
        total = 1 << n
        for start in range(0, total, _CHUNK):
            pats = _all_patterns(n, start, min(start + _CHUNK, total))
            z, singular, ok = _solve_patterns(form, eye, pats)
            n_singular += int(singular.sum())
            solved += len(pats)
            found_z.append(z[ok])
            found_p.append(pats[ok])
        method = "exhaustive"
        complete = n_singular == 0
    else:
        if max_solves is None:
            max_solves = int(min(20_000, max(64, 2e9 / float(n) ** 3)))
        rng = np.random.default_rng(seed)
        scale = max(float(np.abs(form.drive).max()), 1.0)
        starts = rng.standard_normal((n_random, n)) * scale
        with np.errstate(over="ignore", invalid="ignore"):
            traj = form.simulate(starts, 100)[:, -20:].reshape(-1, n)
        pool = traj if seeds is None else np.concatenate([np.asarray(seeds, float), traj])
        pats = np.unique(pool[np.isfinite(pool).all(1)] > 0, axis=0)
        seen: set = set()
        for _ in range(int(max_iter)):
            if not len(pats) or solved >= max_solves:
                break
            pats = pats[:max(int(max_solves) - solved, 1)]
            keys = [p.tobytes() for p in pats]
            fresh = np.array([k not in seen for k in keys], dtype=bool)
            seen.update(keys)
            pats = pats[fresh]
            if not len(pats):
                break
            z, singular, ok = _solve_patterns(form, eye, pats)
            n_singular += int(singular.sum())
            solved += len(pats)
            found_z.append(z[ok])
            found_p.append(pats[ok])
            nxt = ~ok & ~singular
            pats = np.unique(z[nxt] > 0, axis=0) if nxt.any() else pats[:0]
        method = "heuristic"
        complete = False
    z = np.concatenate(found_z) if found_z else np.zeros((0, n))
    p = np.concatenate(found_p) if found_p else np.zeros((0, n), bool)
    keep = _unique_rows(z, 1e-12 * max(1.0, float(np.abs(z).max(initial=0.0))))
    z, p = z[keep], p[keep]
    return _linearized(form, z, p, complete,
                       {"method": method, "patterns_solved": solved,
                        "singular_patterns": n_singular})


def _linearized(form: PLRNNForm, z, p, complete: bool, info) -> PLRNNFixedPoints:
    n = form.n_states
    mats = form.matrices(p)
    if len(z):
        eig = np.asarray(np.linalg.eigvals(mats), dtype=complex)
        eig = np.take_along_axis(eig, np.argsort(-np.abs(eig), axis=1), axis=1)
        resid = np.einsum("bij,bj->bi", np.eye(n)[None] - mats, z) - form.drive
        inv = np.linalg.inv(np.eye(n)[None] - mats)
        error = np.abs(inv).sum(-1).max(-1) * np.abs(resid).max(-1)
        radius = np.abs(z).min(-1)
        margin = np.abs(np.abs(eig) - 1.0).min(-1)
        stable_ok = margin > 1e-8 * np.maximum(1.0, np.abs(mats).sum(-1).max(-1))
        unstable = (np.abs(eig) > 1.0).sum(-1)
    else:
        eig = np.zeros((0, n), complex)
        error = radius = np.zeros(0)
        stable_ok = np.zeros(0, bool)
        unstable = np.zeros(0, int)
    return PLRNNFixedPoints(x=z, patterns=p, eigvals=eig, n_unstable=unstable.astype(int),
                            certified_radius=radius, error_bound=error,
                            stability_certified=stable_ok, complete=bool(complete), info=info)


# ---------------------------------------------------------------------------- cycles
def _compose(form: PLRNNForm, seq: NDArray[np.bool_]):
    """``P = M_k ⋯ M_1`` and ``q`` with ``z_{k+1} = P z_1 + q`` for sequences (b, k, N)."""
    b, k, n = seq.shape
    prod = np.broadcast_to(np.eye(n), (b, n, n)).copy()
    q = np.zeros((b, n))
    for t in range(k):
        m = form.matrices(seq[:, t])
        prod = m @ prod
        q = np.einsum("bij,bj->bi", m, q) + form.drive
    return prod, q


def _orbits(form: PLRNNForm, seq: NDArray[np.bool_]):
    """Solve every pattern sequence (b, k, N); return (orbits (b, k, N), valid (b,), singular)."""
    b, k, n = seq.shape
    prod, q = _compose(form, seq)
    z1, singular = _solve(np.eye(n)[None] - prod, q)
    orbit = np.empty((b, k, n))
    orbit[:, 0] = z1
    for t in range(1, k):
        m = form.matrices(seq[:, t - 1])
        orbit[:, t] = np.einsum("bij,bj->bi", m, orbit[:, t - 1]) + form.drive
    valid = ~singular & np.isfinite(orbit).all((1, 2))
    valid &= ((orbit > 0) == seq).all((1, 2))
    return orbit, valid, singular


def _canonical(orbit: NDArray[np.float64], pats: NDArray[np.bool_]):
    """Rotate an orbit (k, N) so that its lexicographically smallest state comes first."""
    k = orbit.shape[0]
    first = min(range(k), key=lambda t: tuple(orbit[t]))
    order = [(first + t) % k for t in range(k)]
    return orbit[order], pats[order]


def _minimal(orbit: NDArray[np.float64], tol: float) -> bool:
    """No proper divisor d of k with z_{1+d} = z_1 (the orbit's minimal period is k)."""
    k = orbit.shape[0]
    return all(np.abs(orbit[d] - orbit[0]).max() > tol for d in range(1, k) if k % d == 0)


def plrnn_cycles(form: PLRNNForm, period: int, *, max_exhaustive: int = MAX_EXHAUSTIVE,
                 seeds: Optional[NDArray[np.float64]] = None, n_random: int = 64,
                 max_iter: int = 50, max_solves: int = 20_000, seed: int = 0) -> PLRNNCycles:
    """All cycles of minimal period ``period`` ≥ 2 (exhaustive when ``N · period`` is small).

    Parameters
    ----------
    form : PLRNNForm
    period : int
        k ≥ 2.
    max_exhaustive : int
        Largest ``N · k`` solved over all ``2^(N k)`` pattern sequences.
    seeds : ndarray of shape (b, N), optional
        Initial states of trajectories whose k-windows seed the heuristic search.
    n_random, max_iter, max_solves, seed
        As in :func:`plrnn_fixed_points` (here windows of the last 2k of 200 + k steps).

    Returns
    -------
    PLRNNCycles
    """
    k = int(period)
    if k < 2:
        raise ValueError(f"period={period!r} is invalid; pass k >= 2 (fixed points: "
                         f"plrnn_fixed_points)")
    n = form.n_states
    got_o, got_p = [], []
    n_singular = solved = 0
    if n * k <= max_exhaustive:
        total = 1 << (n * k)
        for start in range(0, total, _CHUNK):
            seq = _all_patterns(n * k, start, min(start + _CHUNK, total)).reshape(-1, k, n)
            orbit, valid, singular = _orbits(form, seq)
            n_singular += int(singular.sum())
            solved += len(seq)
            got_o.append(orbit[valid])
            got_p.append(seq[valid])
        method, complete = "exhaustive", None
    else:
        rng = np.random.default_rng(seed)
        scale = max(float(np.abs(form.drive).max()), 1.0)
        starts = rng.standard_normal((n_random, n)) * scale
        if seeds is not None:
            starts = np.concatenate([np.asarray(seeds, float).reshape(-1, n), starts])
        with np.errstate(over="ignore", invalid="ignore"):
            traj = form.simulate(starts, 200 + k)[:, 200 - k:]  # late windows of length k
        traj = traj[np.isfinite(traj).all((1, 2))]
        windows = np.concatenate([traj[:, s:s + k] for s in range(k)]) > 0
        seqs = np.unique(windows.reshape(len(windows), -1), axis=0).reshape(-1, k, n)
        seen: set = set()
        for _ in range(int(max_iter)):
            keys = [s.tobytes() for s in seqs]
            fresh = np.array([key not in seen for key in keys], dtype=bool)
            seen.update(keys)
            seqs = seqs[fresh] if len(seqs) else seqs
            if not len(seqs) or solved >= max_solves:
                break
            seqs = seqs[:max(int(max_solves) - solved, 1)]
            orbit, valid, singular = _orbits(form, seqs)
            n_singular += int(singular.sum())
            solved += len(seqs)
            got_o.append(orbit[valid])
            got_p.append(seqs[valid])
            nxt = ~valid & ~singular
            seqs = (np.unique((orbit[nxt] > 0).reshape(int(nxt.sum()), -1), axis=0)
                    .reshape(-1, k, n) if nxt.any() else seqs[:0])
        method, complete = "heuristic", False
    orbits = np.concatenate(got_o) if got_o else np.zeros((0, k, n))
    pats = np.concatenate(got_p) if got_p else np.zeros((0, k, n), bool)
    tol = 1e-10 * max(1.0, float(np.abs(orbits).max(initial=0.0)))
    keep_o: list = []
    keep_p: list = []
    for o, p in zip(orbits, pats):
        if not _minimal(o, tol):
            continue
        o, p = _canonical(o, p)
        if not any(np.abs(o - q).max() <= tol for q in keep_o):
            keep_o.append(o)
            keep_p.append(p)
    orbits = np.asarray(keep_o).reshape(-1, k, n)
    pats = np.asarray(keep_p, dtype=bool).reshape(-1, k, n)
    if len(orbits):
        prod, _ = _compose(form, pats)
        mult = np.asarray(np.linalg.eigvals(prod), dtype=complex)
        mult = np.take_along_axis(mult, np.argsort(-np.abs(mult), axis=1), axis=1)
    else:
        mult = np.zeros((0, n), complex)
    stable = np.asarray((np.abs(mult) < 1.0).all(-1), dtype=bool).reshape(-1)
    if complete is None:
        complete = n_singular == 0
    return PLRNNCycles(period=k, orbits=orbits, patterns=pats, multipliers=mult, stable=stable,
                       complete=bool(complete),
                       info={"method": method, "sequences_solved": solved,
                             "singular_sequences": n_singular})

