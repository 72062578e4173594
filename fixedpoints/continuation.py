"""Fixed points continued along a straight path of constant inputs: folds and Hopf points.

The inputs run along ``u(s) = A + s (B − A)``, ``s ∈ [0, 1]``. A fixed point solves
``v(x, u(s)) = 0`` (v the velocity: ``F − x`` for maps, ``f`` for flows), one equation short of
the unknowns ``y = (x, s)``: the solutions are curves. **Pseudo-arclength continuation** follows
them through turning points: with the unit tangent ``t`` (the null vector of ``[v_x  v_s]``,
oriented like the previous one), a predictor ``y + h t`` and Newton on

    v(x, u(s)) = 0,      t · (y − y_pred) = 0,

``v_x`` from :meth:`Dynamics.jacobian` and ``v_s = (∂v/∂u)(B − A)`` by forward-mode AD.
The step h halves when Newton fails and grows by 1.3 after an easy step, within
``[min_step, max_step]``.

Bifurcations between two consecutive points:

* **fold** (saddle-node): the tangent's s-component changes sign (the branch turns back);
* **hopf**: a complex pair of the native spectrum crosses the stability boundary (real part 0
  for flows; modulus 1 for maps, a Neimark–Sacker point), with no fold in between.

Each is located by bisection on the arclength step from the earlier point (every trial point
corrected onto the curve) until the step is known to ``locate_tol``; the reported point is the
corrected one. A fold's ``s`` is accurate to far better than the step (s is quadratic in the
arclength there).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
from numpy.typing import NDArray

__all__ = ["ContinuationOptions", "Bifurcation", "Branch", "Continuation",
           "continue_fixed_points", "parse_input_path"]


@dataclass(frozen=True)
class ContinuationOptions:
    """Options of :func:`continue_fixed_points`.

    Attributes
    ----------
    step : float
        First arclength step (in units of ``(x, s)``).
    min_step, max_step : float
    max_points : int
        Points per branch at most.
    newton_tol : float
        Corrector convergence: ``‖v‖_∞ ≤ newton_tol``.
    max_newton : int
    locate_tol : float
        Bisection stops when the step bracket is this short.
    """

    step: float = 0.01
    min_step: float = 1e-8
    max_step: float = 0.05
    max_points: int = 5000
    newton_tol: float = 1e-12
    max_newton: int = 12
    locate_tol: float = 1e-12

    def __post_init__(self):
        for name in ("step", "min_step", "max_step", "newton_tol", "locate_tol"):
            value = getattr(self, name)
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"{name}={value!r} is invalid; pass a positive number")
        if not self.min_step <= self.step <= self.max_step:
            raise ValueError(f"step={self.step} is outside [min_step, max_step] = "
                             f"[{self.min_step}, {self.max_step}]; pass a step between them")
        for name in ("max_points", "max_newton"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name}={value!r} is invalid; pass a positive integer")


@dataclass(frozen=True)
class Bifurcation:
    """A fold or Hopf point on a branch.

    Attributes
    ----------
    kind : {"fold", "hopf"}
    s : float
        Path coordinate.
    input : ndarray of shape (n_inputs,)
        ``u(s)``.
    x : ndarray of shape (n_states,)
    eigvals : ndarray of shape (n_states,), complex
        Native spectrum there.
    branch : int
        Index of the branch it was found on.
    """

    kind: str
    s: float
    input: np.ndarray
    x: np.ndarray
    eigvals: np.ndarray
    branch: int = 0

    def __post_init__(self):
        if self.kind not in ("fold", "hopf"):
            raise ValueError(f"kind={self.kind!r} is invalid; pass 'fold' or 'hopf'")

    def to_dict(self) -> Dict[str, Any]:
        return {"kind": self.kind, "s": float(self.s), "input": np.asarray(self.input).tolist(),
                "x": np.asarray(self.x).tolist(), "branch": int(self.branch)}


@dataclass(frozen=True)
class Branch:
    """One continued curve of fixed points.

    Attributes
    ----------
    s : ndarray of shape (m,)
    x : ndarray of shape (m, n_states)
    n_unstable : ndarray of shape (m,), int
    eigvals : ndarray of shape (m, n_states), complex
    bifurcations : tuple of Bifurcation
    info : dict
        ``stopped`` (why the branch ended), ``points``.
    """

    s: np.ndarray
    x: np.ndarray
    n_unstable: np.ndarray
    eigvals: np.ndarray
    bifurcations: Tuple[Bifurcation, ...] = ()
    info: Dict[str, Any] = field(default_factory=dict)

    @property
    def stable(self) -> np.ndarray:
        return np.asarray(self.n_unstable) == 0


@dataclass(frozen=True)
class Continuation:
    """Branches from every starting point, and their bifurcations (duplicates merged).

    Attributes
    ----------
    start, end : ndarray of shape (n_inputs,)
        The path's ends A and B.
    branches : tuple of Branch
    bifurcations : tuple of Bifurcation
        Sorted by s; one per distinct point (branches that meet at a fold report it once).
    time : {"discrete", "continuous"}
    """

    start: np.ndarray
    end: np.ndarray
    branches: Tuple[Branch, ...]
    bifurcations: Tuple[Bifurcation, ...]
    time: str = "discrete"

    def inputs(self, s: NDArray[np.float64]) -> np.ndarray:
        """``u(s)`` for s of shape (m,); returns (m, n_inputs)."""
        s = np.asarray(s, dtype=float).reshape(-1, 1)
        return self.start[None] + s * (self.end - self.start)[None]

    def folds(self) -> List[Bifurcation]:
        return [b for b in self.bifurcations if b.kind == "fold"]

    def hopf_points(self) -> List[Bifurcation]:
        return [b for b in self.bifurcations if b.kind == "hopf"]

    def to_dict(self) -> Dict[str, Any]:
        return {"start": self.start.tolist(), "end": self.end.tolist(), "time": self.time,
                "bifurcations": [b.to_dict() for b in self.bifurcations],
                "branches": [{"s": b.s.tolist(), "n_unstable": b.n_unstable.tolist(),
                              **b.info} for b in self.branches]}


def parse_input_path(text: str, n_inputs: int) -> Tuple[np.ndarray, np.ndarray, int]:
    """Read ``"A:B:n"`` (A and B comma-separated vectors of ``n_inputs`` numbers, n the number
    of points to sample at least): returns (A, B, n).

    Examples
    --------
    >>> parse_input_path("0:1:50", 1)
    (array([0.]), array([1.]), 50)
    """
    parts = str(text).split(":")
    if len(parts) != 3:
        raise ValueError(f"input path {text!r} is not A:B:n; write e.g. '0:1:50' or "
                         f"'0,0:1,-1:100' for two inputs")
    try:
        a = np.array([float(v) for v in parts[0].split(",")])
        b = np.array([float(v) for v in parts[1].split(",")])
        n = int(parts[2])
    except ValueError as exc:
        raise ValueError(f"input path {text!r} has a value that is not a number ({exc}); write "
                         f"A:B:n with numbers, e.g. '0:1:50'") from exc
    for name, v in (("A", a), ("B", b)):
        if v.shape != (n_inputs,) or not np.isfinite(v).all():
            raise ValueError(f"input path {text!r}: {name} has {v.size} value(s) but the model "
                             f"takes {n_inputs} input(s); give {n_inputs} comma-separated "
                             f"finite numbers")
    if n < 2:
        raise ValueError(f"input path {text!r}: n={n} must be at least 2")
    if np.array_equal(a, b):
        raise ValueError(f"input path {text!r}: A and B are the same input; give two inputs")
    return a, b, n


# ---------------------------------------------------------------------------- the system
class _Path:
    def __init__(self, dynamics, start: np.ndarray, end: np.ndarray):
        self.dyn = dynamics
        self.a = torch.as_tensor(start, dtype=dynamics.dtype, device=dynamics.device)
        self.d = torch.as_tensor(end - start, dtype=dynamics.dtype, device=dynamics.device)
        self.n = dynamics.n_states

    def u(self, s: float) -> torch.Tensor:
        return self.a + float(s) * self.d

    def residual(self, y: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(y[None, :-1], dtype=self.dyn.dtype, device=self.dyn.device)
        with torch.no_grad():
            return self.dyn.velocity(x, self.u(y[-1])).cpu().numpy()[0]

    def jacobian(self, y: np.ndarray) -> np.ndarray:
        """``[v_x  v_s]``, shape (n, n + 1)."""
        x = torch.as_tensor(y[None, :-1], dtype=self.dyn.dtype, device=self.dyn.device)
        u = self.u(y[-1])
        vx = self.dyn.jacobian(x, u).detach().cpu().numpy()[0]
        vs = torch.func.jvp(lambda uu: self.dyn.velocity(x, uu), (u,), (self.d,))[1]
        return np.concatenate([vx, vs.detach().cpu().numpy().reshape(-1, 1)], axis=1)

    def spectrum(self, y: np.ndarray, jac: Optional[np.ndarray] = None) -> np.ndarray:
        """Native spectrum at y (from ``jac = [v_x  v_s]`` when the caller has it)."""
        jac = self.jacobian(y) if jac is None else jac
        return self.dyn.eigvals_native(np.linalg.eigvals(jac[:, :-1]))


def _tangent(jac: np.ndarray, previous: Optional[np.ndarray]) -> np.ndarray:
    """Unit null vector of the (n, n+1) Jacobian, oriented along ``previous``."""
    _, _, vt = np.linalg.svd(jac)
    t = vt[-1]
    if previous is not None and t @ previous < 0:
        t = -t
    elif previous is None and t[-1] < 0:
        t = -t  # start towards increasing s
    return t


def _correct(path: _Path, y_pred: np.ndarray, t: np.ndarray,
             opts: ContinuationOptions) -> Optional[np.ndarray]:
    y = y_pred.copy()
    for _ in range(opts.max_newton):
        r = path.residual(y)
        if not np.isfinite(r).all():
            return None
        if np.abs(r).max() <= opts.newton_tol:
            return y
        system = np.vstack([path.jacobian(y), t[None]])
        rhs = np.concatenate([-r, [-(t @ (y - y_pred))]])
        try:
            y = y + np.linalg.solve(system, rhs)
        except np.linalg.LinAlgError:
            return None
    r = path.residual(y)
    return y if np.isfinite(r).all() and np.abs(r).max() <= opts.newton_tol else None


def _hopf_test(eig: np.ndarray, time: str) -> float:
    """Largest distance past the stability boundary among complex eigenvalues (−inf: none)."""
    cplx = eig[np.abs(eig.imag) > 1e-10 * max(1.0, float(np.abs(eig).max(initial=0.0)))]
    if not len(cplx):
        return -np.inf
    return float((np.abs(cplx) - 1.0).max() if time == "discrete" else cplx.real.max())


def _n_unstable(dyn, eig: np.ndarray) -> int:
    return int(dyn.unstable_mask(eig[None], 1e-9).sum())


def _locate(path: _Path, y0: np.ndarray, t0: np.ndarray, h: float, test, opts) -> np.ndarray:
    """Bisection on the step from y0 along t0 for a sign change of ``test(y, t)``."""
    lo, hi = 0.0, h
    f_lo = test(y0, path.jacobian(y0), t0)
    best = y0
    while hi - lo > opts.locate_tol:
        mid = 0.5 * (lo + hi)
        y = _correct(path, y0 + mid * t0, t0, opts)
        if y is None:
            break
        f = test(y, path.jacobian(y), t0)
        best = y
        if np.sign(f) == np.sign(f_lo):
            lo, f_lo = mid, f
        else:
            hi = mid
    return best


def _run_branch(path: _Path, y: np.ndarray, opts: ContinuationOptions, index: int,
                direction: float) -> Branch:
    dyn = path.dyn
    jac = path.jacobian(y)
    t = _tangent(jac, None) * direction
    h = opts.step
    ys = [y]
    eigs = [path.spectrum(y, jac)]
    bifs: List[Bifurcation] = []
    stopped = "max_points"
    for _ in range(opts.max_points - 1):
        y_new = _correct(path, ys[-1] + h * t, t, opts)
        if y_new is None:
            h *= 0.5
            if h < opts.min_step:
                stopped = "step below min_step"
                break
            continue
        jac_new = path.jacobian(y_new)
        t_new = _tangent(jac_new, t)
        eig_new = path.spectrum(y_new, jac_new)
        if t[-1] * t_new[-1] < 0:  # fold
            yf = _locate(path, ys[-1], t, h, lambda yy, jj, tt: _tangent(jj, tt)[-1], opts)
            bifs.append(_bif(path, "fold", yf, index))
        else:
            ha, hb = _hopf_test(eigs[-1], dyn.time), _hopf_test(eig_new, dyn.time)
            if np.isfinite(ha) and np.isfinite(hb) and ha * hb < 0:
                yh = _locate(path, ys[-1], t, h,
                             lambda yy, jj, tt: _hopf_test(path.spectrum(yy, jj), dyn.time),
                             opts)
                bifs.append(_bif(path, "hopf", yh, index))
        ys.append(y_new)
        eigs.append(eig_new)
        t = t_new
        h = min(h * 1.3, opts.max_step)
        if not 0.0 <= y_new[-1] <= 1.0:
            stopped = "left the path"
            break
    arr = np.array(ys)
    eig = np.array(eigs)
    order = np.argsort(-np.abs(eig), axis=1) if dyn.time == "discrete" else \
        np.argsort(-eig.real, axis=1)
    eig = np.take_along_axis(eig, order, axis=1)
    return Branch(s=arr[:, -1], x=arr[:, :-1],
                  n_unstable=np.array([_n_unstable(dyn, e) for e in eig], dtype=int),
                  eigvals=eig, bifurcations=tuple(bifs),
                  info={"stopped": stopped, "points": int(len(arr))})


def _bif(path: _Path, kind: str, y: np.ndarray, index: int) -> Bifurcation:
    return Bifurcation(kind=kind, s=float(y[-1]), input=path.u(y[-1]).cpu().numpy(),
                       x=y[:-1].copy(), eigvals=path.spectrum(y), branch=index)


def continue_fixed_points(dynamics, start, end, x0: NDArray[np.float64],
                          options: Optional[ContinuationOptions] = None, *,
                          both_directions: bool = False) -> Continuation:
    """Continue the fixed points ``x0`` (at input ``start``) along the path to ``end``.

    Parameters
    ----------
    dynamics : Dynamics
    start, end : array_like of shape (n_inputs,)
        A and B.
    x0 : ndarray of shape (b, n_states)
        Fixed points at A (e.g. ``find_fixed_points(dynamics.with_input(A), …).x``); each is
        polished by the corrector first and starts one branch.
    options : ContinuationOptions, optional
    both_directions : bool
        Also continue each branch towards decreasing s (useful when A is inside the path).

    Returns
    -------
    Continuation
    """
    opts = options or ContinuationOptions()
    a = np.asarray(start, dtype=float).reshape(-1)
    b = np.asarray(end, dtype=float).reshape(-1)
    if a.shape != (dynamics.n_inputs,) or b.shape != (dynamics.n_inputs,):
        raise ValueError(f"start and end have {a.size} and {b.size} value(s) but "
                         f"{dynamics.name} takes {dynamics.n_inputs} input(s); pass two arrays "
                         f"of shape ({dynamics.n_inputs},)")
    if dynamics.n_inputs == 0 or np.array_equal(a, b):
        raise ValueError("start and end are the same input (or the system takes none); a path "
                         "needs two different constant inputs")
    path = _Path(dynamics, a, b)
    x0 = np.asarray(x0, dtype=float).reshape(-1, dynamics.n_states)
    branches: List[Branch] = []
    for x in x0:
        y = np.concatenate([x, [0.0]])
        y_fix = _correct(path, y, np.eye(len(y))[-1], opts)  # polish at s = 0
        if y_fix is None:
            continue
        for direction in ((1.0, -1.0) if both_directions else (1.0,)):
            branches.append(_run_branch(path, y_fix, opts, len(branches), direction))
    bifs: List[Bifurcation] = []
    for br in branches:
        for bif in br.bifurcations:
            if not any(o.kind == bif.kind and abs(o.s - bif.s) < 1e-6
                       and np.abs(o.x - bif.x).max() < 1e-4 for o in bifs):
                bifs.append(bif)
    bifs.sort(key=lambda z: z.s)
    return Continuation(start=a, end=b, branches=tuple(branches), bifurcations=tuple(bifs),
                        time=dynamics.time)
