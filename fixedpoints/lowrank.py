"""Complete, certified fixed-point sets of low-rank tanh networks.

Every fixed point of ``r ← (1 − α) r + α tanh(L R r + c)`` (and of ``dr/dt = −r + tanh(L R r +
c)``; the leak does not move fixed points) is ``r* = tanh(c + L κ*)`` where ``κ* = R r*`` solves
the K-dimensional equation

    G(κ) = κ − R tanh(c + L κ) = 0,

and ``|tanh| ≤ 1`` puts every root in the box ``|κ_j| ≤ Σ_i |R_ji|``. Fixed points and roots of G
are in one-to-one correspondence, so solving G exhaustively over that box finds them all.

:func:`solve_reduced` does it by interval branch-and-bound, vectorized over boxes
(:mod:`fixedpoints.intervals` gives the rigorous enclosures):

1. **Exclusion**: a box whose enclosure of G misses 0 in one coordinate holds no root.
2. **Krawczyk**: with ``m`` the box's midpoint and ``A ≈ G'(m)⁻¹``,
   ``K(X) = m − A G(m) + (I − A G'(X))(X − m)``. Every root in X lies in K(X); if
   ``K(X) ⊂ int X`` the box holds exactly one root (Krawczyk 1969, Moore 1977); if ``K(X) ∩ X``
   is empty it holds none. Otherwise the search continues in ``X ∩ K(X)``.
3. **Inflation**: when Krawczyk on a small box is inconclusive (a root near its face), a Newton
   iterate ``κ̃`` from its midpoint gives ``Y = hull(X, κ̃ ± δ)``; ``K(Y) ⊂ int Y`` proves one
   root in Y, which then accounts for every root in X.
4. **Bisection** of the rest along its widest side.

Two certificates (Y₁, E₁) and (Y₂, E₂) (E: the root's enclosure) are the same root when
``E₂ ⊆ Y₁`` or ``E₁ ⊆ Y₂`` (uniqueness in Y), distinct when E₁ and E₂ are disjoint; any other
overlap is reported as unresolved. Boxes still undecided when the budget runs out are returned
as ``unresolved`` (never dropped), and then the set is not complete. A double root (the
saddle-node itself, at the bifurcation) can never be certified and stays unresolved.
"""
from __future__ import annotations

from dataclasses import dataclass, field
import logging
from typing import Dict, Optional

import numpy as np

from .intervals import Interval, down, gamma, imatmul, point, tanh_slope, up

__all__ = ["LowRankForm", "ReducedSolution", "solve_reduced", "low_rank_form", "coalesce",
           "box_budget",
           "MAX_RANK", "low_rank_form_or_none"]

log = logging.getLogger(__name__)

#: Largest rank the exhaustive search is run for by default.
MAX_RANK = 3


@dataclass(frozen=True)
class LowRankForm:
    """The reduced form of a leaky tanh network at one input: ``r* = tanh(c + L κ)``, κ = R r*.

    Attributes
    ----------
    left : ndarray of shape (n, K)
        ``L``.
    right : ndarray of shape (K, n)
        ``R`` (W = L R in the column convention ``W r``).
    bias : ndarray of shape (n,)
        The whole constant drive ``c = W_in u + b`` at the bound input.
    nonlinearity : str
        ``"tanh"`` (the only one supported).
    """

    left: np.ndarray
    right: np.ndarray
    bias: np.ndarray
    nonlinearity: str = "tanh"

    def __post_init__(self):
        left = np.asarray(self.left, dtype=np.float64)
        right = np.asarray(self.right, dtype=np.float64)
        bias = np.asarray(self.bias, dtype=np.float64).reshape(-1)
        if left.ndim != 2 or right.ndim != 2 or right.shape != (left.shape[1], left.shape[0]):
            raise ValueError(f"left has shape {left.shape} and right {right.shape}; pass L of "
                             f"shape (n, K) and R of shape (K, n)")
        if bias.shape != (left.shape[0],):
            raise ValueError(f"bias has shape {bias.shape}; pass c of shape ({left.shape[0]},)")
        for name, value in (("left", left), ("right", right), ("bias", bias)):
            if not np.isfinite(value).all():
                raise ValueError(f"{name} has non-finite values; the dynamics are undefined")
        if self.nonlinearity != "tanh":
            raise ValueError(f"nonlinearity={self.nonlinearity!r} is not supported; the reduced "
                             f"search handles 'tanh' only")
        object.__setattr__(self, "left", left)
        object.__setattr__(self, "right", right)
        object.__setattr__(self, "bias", bias)

    @property
    def rank(self) -> int:
        return int(self.left.shape[1])

    @property
    def n_states(self) -> int:
        return int(self.left.shape[0])

    @classmethod
    def from_dict(cls, form: Dict) -> "LowRankForm":
        """From the plain dict a ``checkpoints`` model's ``low_rank_form(u)`` returns."""
        def arr(v):
            return v.detach().cpu().double().numpy() if hasattr(v, "detach") else np.asarray(v)
        return cls(left=arr(form["left"]), right=arr(form["right"]), bias=arr(form["bias"]),
                   nonlinearity=str(form.get("nonlinearity", "tanh")))

    @classmethod
    def from_matrix(cls, weight: np.ndarray, bias: np.ndarray, max_rank: int = MAX_RANK,
                    rtol: float = 1e-12) -> Optional["LowRankForm"]:
        """The form of a full matrix W of numerical rank ≤ ``max_rank``, else None.

        The numerical rank counts singular values above ``rtol · σ_max · n``. The discarded part
        is not zero in exact arithmetic, so the result describes the network with W replaced by
        its truncated SVD (exact when W was built as a product of rank ≤ max_rank).
        """
        weight = np.asarray(weight, dtype=np.float64)
        u, s, vt = np.linalg.svd(weight)
        if s[0] == 0:
            k = 1
        else:
            k = int(np.sum(s > rtol * s[0] * weight.shape[0]))
        if k > max_rank:
            return None
        k = max(k, 1)
        return cls(left=u[:, :k] * s[:k], right=vt[:k], bias=bias)

    def states(self, kappa: np.ndarray) -> np.ndarray:
        """``r = tanh(c + L κ)`` for κ of shape (b, K); returns (b, n)."""
        return np.tanh(self.bias + np.asarray(kappa) @ self.left.T)

    def residual(self, kappa: np.ndarray) -> np.ndarray:
        """``G(κ) = κ − R tanh(c + L κ)``, shape (b, K)."""
        kappa = np.asarray(kappa, dtype=np.float64)
        return kappa - self.states(kappa) @ self.right.T

    def residual_jacobian(self, kappa: np.ndarray) -> np.ndarray:
        """``G'(κ) = I − R diag(tanh'(c + L κ)) L``, shape (b, K, K)."""
        t = self.states(kappa)
        inner = np.einsum("jn,bn,nk->bjk", self.right, 1.0 - t * t, self.left)
        return np.eye(self.rank) - inner

    def box(self) -> Interval:
        """The box ``|κ_j| ≤ Σ_i |R_ji|`` that holds every root, shape (K,)."""
        s = imatmul(np.abs(self.right), np.ones((self.n_states, 1))).hi[:, 0]
        return Interval(-s, s)

    # ------------------------------------------------------------------ enclosures
    def enclose(self, kappa: Interval, only_alive: bool = False):
        """Enclosures of ``G`` and of ``G'`` over boxes ``kappa`` of shape (b, K).

        Parameters
        ----------
        kappa : Interval of shape (b, K)
        only_alive : bool
            Compute ``G'`` only over the boxes whose enclosure of G holds 0, and return their
            mask too (the others hold no root).

        Returns
        -------
        g : Interval of shape (b, K)
        jac : Interval of shape (b, K, K)  (of the alive boxes with ``only_alive``)
        alive : ndarray of shape (b,), bool  (only with ``only_alive``)
        """
        pre = _affine(self.left, kappa, self.bias)
        t = pre.tanh()
        g = kappa - _rows(imatmul(self.right, _cols(t)))
        alive = None
        if only_alive:
            alive = g.contains_zero().all(1)
            t = t[alive]
        d = tanh_slope(t)
        # R diag(d) L over each box, mid-radius with the 3-factor rounding bound
        jac = Interval(*scaled_gram(self.right, d, self.left))
        eye = np.eye(self.rank)
        if only_alive:
            return g, eye - jac, alive
        return g, eye - jac

    def residual_enclosure(self, kappa: np.ndarray) -> Interval:
        """An enclosure of ``G`` at points κ (b, K), rounding errors included."""
        g, _ = self.enclose(point(kappa))
        return g


def _cols(x: Interval) -> Interval:
    return Interval(x.lo[..., None], x.hi[..., None])


def _rows(x: Interval) -> Interval:
    return Interval(x.lo[..., 0], x.hi[..., 0])


def _affine(matrix: np.ndarray, x: Interval, bias: np.ndarray) -> Interval:
    """``bias + matrix @ x`` for x of shape (b, q): shape (b, p)."""
    return _rows(imatmul(matrix, _cols(x))) + bias


def scaled_gram(right: np.ndarray, d: Interval, left: np.ndarray):
    """Enclosure ``[lo, hi]`` of ``R diag(d) L`` for d of shape (b, n): (b, K, K)."""
    dm, dr = d.mid_rad()
    center = np.einsum("jn,bn,nk->bjk", right, dm, left)
    ar, al = np.abs(right), np.abs(left)
    radius = np.einsum("jn,bn,nk->bjk", ar, dr, al)
    g = gamma(right.shape[1] + 3)
    radius = radius + g * np.einsum("jn,bn,nk->bjk", ar, np.abs(dm), al)
    radius = up(radius * (1.0 + 4.0 * g) + right.shape[1] * 2.0 ** -1021)
    return down(center - radius), up(center + radius)


# ============================================================================ the search
@dataclass(frozen=True)
class ReducedSolution:
    """The result of :func:`solve_reduced`.

    Attributes
    ----------
    kappa : ndarray of shape (k, K)
        The roots of G (floating-point estimates, inside their enclosures).
    enclosure : ndarray of shape (k, K, 2)
        Boxes ``[lo, hi]`` each proved to contain exactly that root (tight: ~1e-14).
    uniqueness : ndarray of shape (k, K, 2)
        Larger boxes in which that root is proved to be the only one.
    unresolved : ndarray of shape (m, K, 2)
        Boxes neither excluded nor certified within the budget (may hold roots); touching
        ones are merged into their hull (:func:`coalesce`).
    box : ndarray of shape (K, 2)
        The box searched (holds every root).
    complete : bool
        No unresolved box: ``kappa`` is every root.
    info : dict
        Counters: boxes processed, excluded, certified, rounds.
    """

    kappa: np.ndarray
    enclosure: np.ndarray
    uniqueness: np.ndarray
    unresolved: np.ndarray
    box: np.ndarray
    complete: bool
    info: Dict = field(default_factory=dict)


def _inverse(mats: np.ndarray) -> np.ndarray:
    """Approximate inverses of small matrices (any matrix is a valid Krawczyk preconditioner:
    singular ones get the identity)."""
    out = np.empty_like(mats)
    with np.errstate(all="ignore"):
        det = np.linalg.det(mats)
        ok = np.isfinite(mats).all((-1, -2))
        ok[ok] = np.isfinite(det[ok]) & (np.abs(det[ok]) > 1e-300)
    if ok.any():
        out[ok] = np.linalg.inv(mats[ok])
    out[~ok] = np.eye(mats.shape[-1])
    return out


def _krawczyk(form: LowRankForm, box: Interval, centre: np.ndarray,
              jac: Optional[Interval] = None) -> Interval:
    """``K(X)`` for boxes X (b, K) around points ``centre`` (b, K) inside them."""
    if jac is None:
        _, jac = form.enclose(box)
    a = _inverse(form.residual_jacobian(centre))
    g_mid = form.residual_enclosure(centre)
    step = _rows(imatmul(a, _cols(g_mid)))
    contraction = np.eye(form.rank) - imatmul(a, jac)
    offset = box - centre
    return (point(centre) - step) + _rows(imatmul(contraction, _cols(offset)))


def _newton(form: LowRankForm, kappa: np.ndarray, steps: int = 8) -> np.ndarray:
    with np.errstate(all="ignore"):
        for _ in range(steps):
            jac_inv = _inverse(form.residual_jacobian(kappa))
            kappa = kappa - np.einsum("bij,bj->bi", jac_inv, form.residual(kappa))
    return kappa


def solve_reduced(form: LowRankForm, *, max_boxes: int = 50_000, batch: int = 4096,
                  min_width: float = 1e-10, tighten: int = 60) -> ReducedSolution:
    """Every root of ``G(κ) = κ − R tanh(c + L κ)`` by interval branch-and-bound.

    Parameters
    ----------
    form : LowRankForm
    max_boxes : int
        Budget: boxes examined in all. What is left then is returned as ``unresolved``.
    batch : int
        Boxes examined together (vectorized).
    min_width : float
        Boxes narrower than ``min_width · (1 + |κ|)`` on every side are not split further
        (they stay unresolved: a double root or a root the arithmetic cannot separate).
    tighten : int
        At most this many Krawczyk iterations ``E ← K(E) ∩ E`` shrink each root's enclosure
        (they stop once it no longer shrinks, at round-off).

    Returns
    -------
    ReducedSolution
    """
    k = form.rank
    root_box = form.box()
    todo_lo, todo_hi = _grid(root_box, _GRID.get(k, 4))
    certified_z, certified_e = [], []
    unresolved = []
    counters = {"boxes": 0, "excluded": 0, "certified": 0, "inflated": 0, "rounds": 0}
    while len(todo_lo):
        if counters["boxes"] >= max_boxes:
            unresolved.append(np.stack([todo_lo, todo_hi], -1))
            break
        take = min(batch, len(todo_lo), max(1, max_boxes - counters["boxes"]))
        x = Interval(todo_lo[:take], todo_hi[:take])
        todo_lo, todo_hi = todo_lo[take:], todo_hi[take:]
        counters["boxes"] += take
        counters["rounds"] += 1
        g, jac, alive = form.enclose(x, only_alive=True)
        counters["excluded"] += int((~alive).sum())
        x = x[alive]
        if len(x.lo) == 0:
            continue
        centre = np.clip(0.5 * x.lo + 0.5 * x.hi, x.lo, x.hi)
        kx = _krawczyk(form, x, centre, jac)
        inside = ((kx.lo > x.lo) & (kx.hi < x.hi)).all(1)
        empty = ((kx.hi < x.lo) | (kx.lo > x.hi)).any(1)
        counters["excluded"] += int((empty & ~inside).sum())
        if inside.any():
            certified_z.append(np.stack([x.lo[inside], x.hi[inside]], -1))
            certified_e.append(np.stack([kx.lo[inside], kx.hi[inside]], -1))
        rest = ~inside & ~empty
        if not rest.any():
            continue
        y = x[rest].intersect(kx[rest])
        # inflation around a Newton iterate for small inconclusive boxes (root near a face)
        scale = 1.0 + np.abs(y.lo) + np.abs(y.hi)
        # ... only where K(X) is already much narrower than X (a contraction: a simple root
        # poking out of a face; at a degenerate root K(X) is wide and Newton would not help)
        contracting = (kx.width[rest] <= 0.5 * x.width[rest]).all(1)
        small = contracting & (y.width <= 1e-3 * (root_box.width + 1e-300)).all(1)
        resolved = np.zeros(len(y.lo), dtype=bool)
        if small.any():
            ys = y[small]
            guess = _newton(form, np.clip(0.5 * ys.lo + 0.5 * ys.hi, ys.lo, ys.hi))
            ok = np.isfinite(guess).all(1)
            near = ok & ((guess >= ys.lo - ys.width) & (guess <= ys.hi + ys.width)).all(1)
            if near.any():
                ys, guess = ys[near], guess[near]
                delta = 1e-9 * (1.0 + np.abs(guess)) + 0.1 * ys.width
                inflated = Interval(np.minimum(ys.lo, guess - delta),
                                    np.maximum(ys.hi, guess + delta))
                ky = _krawczyk(form, inflated, guess)
                good = ((ky.lo > inflated.lo) & (ky.hi < inflated.hi)).all(1)
                if good.any():
                    certified_z.append(np.stack([inflated.lo[good], inflated.hi[good]], -1))
                    certified_e.append(np.stack([ky.lo[good], ky.hi[good]], -1))
                    counters["inflated"] += int(good.sum())
                    idx = np.flatnonzero(small)[np.flatnonzero(near)[good]]
                    resolved[idx] = True
        y = y[~resolved]
        scale = scale[~resolved]
        too_small = (y.width <= min_width * scale).all(1)
        if too_small.any():
            unresolved.append(np.stack([y.lo[too_small], y.hi[too_small]], -1))
        y = y[~too_small]
        if len(y.lo) == 0:
            continue
        # bisect along the widest side, a little off-centre so no root sits on every cut
        axis = np.argmax(y.width, axis=1)
        rows = np.arange(len(y.lo))
        cut = y.lo[rows, axis] + 0.4990234375 * y.width[rows, axis]
        left_hi = y.hi.copy()
        left_hi[rows, axis] = cut
        right_lo = y.lo.copy()
        right_lo[rows, axis] = cut
        todo_lo = np.concatenate([y.lo, right_lo, todo_lo])
        todo_hi = np.concatenate([left_hi, y.hi, todo_hi])
    z = np.concatenate(certified_z) if certified_z else np.zeros((0, k, 2))
    e = np.concatenate(certified_e) if certified_e else np.zeros((0, k, 2))
    unres = np.concatenate(unresolved) if unresolved else np.zeros((0, k, 2))
    z, e, ambiguous = _merge(z, e)
    if len(ambiguous):
        unres = np.concatenate([unres, ambiguous])
    unres = coalesce(unres)
    e = _tighten(form, z, e, tighten)
    kappa = np.clip(_newton(form, 0.5 * e[..., 0] + 0.5 * e[..., 1], 3), e[..., 0], e[..., 1]) \
        if len(e) else np.zeros((0, k))
    counters["certified"] = int(len(e))
    return ReducedSolution(kappa=kappa, enclosure=e, uniqueness=z, unresolved=unres,
                           box=np.stack([root_box.lo, root_box.hi], -1),
                           complete=len(unres) == 0, info=counters)


def box_budget(n_states: int, max_boxes: int = 50_000) -> int:
    """Boxes the exhaustive search may examine for a network of ``n_states`` units.

    A box costs about 100 n operations: at most ``5e6 / n`` boxes (about a second), whatever
    ``max_boxes`` says. A continuum of fixed points (a ring or line attractor) spends all of
    it and is returned unresolved.
    """
    return int(min(max_boxes, max(5e6 / max(int(n_states), 1), 2000)))


#: Cells per side of the first subdivision (one vectorized round instead of ~6 bisections).
_GRID = {1: 64, 2: 16, 3: 6}


def _grid(box: Interval, cells: int):
    """The box cut into ``cells**K`` boxes (cuts at exactly representable fractions)."""
    k = box.lo.shape[0]
    edges = [np.linspace(box.lo[j], box.hi[j], cells + 1) for j in range(k)]
    edges = [np.concatenate([[box.lo[j]], e[1:-1], [box.hi[j]]]) for j, e in enumerate(edges)]
    index = np.stack(np.meshgrid(*[np.arange(cells)] * k, indexing="ij"), -1).reshape(-1, k)
    lo = np.stack([edges[j][index[:, j]] for j in range(k)], -1)
    hi = np.stack([edges[j][index[:, j] + 1] for j in range(k)], -1)
    return lo, hi


def coalesce(boxes: np.ndarray, max_pairs: int = 2_000_000) -> np.ndarray:
    """Replace each connected set of touching boxes by its hull (a superset: still a region
    that may hold roots). Boxes (m, K, 2) in, fewer out; unchanged when the touching graph would
    be too large to build (``max_pairs``)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    if len(boxes) <= 1:
        return boxes
    lo, hi = boxes[..., 0], boxes[..., 1]
    centre, half = 0.5 * (lo + hi), 0.5 * (hi - lo)
    reach = float(2.0 * half.max()) * (1 + 1e-12) + 1e-300
    tree = cKDTree(centre)
    if tree.count_neighbors(tree, reach, p=np.inf) > 2 * max_pairs + len(boxes):
        return boxes
    pairs = tree.query_pairs(reach, p=np.inf, output_type="ndarray")
    if len(pairs):
        i, j = pairs[:, 0], pairs[:, 1]
        touch = ((lo[i] <= hi[j]) & (lo[j] <= hi[i])).all(1)
        i, j = i[touch], j[touch]
    else:
        i = j = np.zeros(0, dtype=int)
    graph = coo_matrix((np.ones(len(i)), (i, j)), shape=(len(boxes), len(boxes)))
    n_comp, label = connected_components(graph, directed=False)
    out_lo = np.full((n_comp, lo.shape[1]), np.inf)
    out_hi = np.full((n_comp, lo.shape[1]), -np.inf)
    np.minimum.at(out_lo, label, lo)
    np.maximum.at(out_hi, label, hi)
    return np.stack([out_lo, out_hi], -1)


def _merge(z: np.ndarray, e: np.ndarray):
    """One certificate per root (module docstring). Returns (z, e, ambiguous boxes)."""
    keep: list = []
    ambiguous: list = []
    for i in range(len(z)):
        same = False
        for j in keep:
            e_in_zj = ((e[i, :, 0] >= z[j, :, 0]) & (e[i, :, 1] <= z[j, :, 1])).all()
            e_j_in_zi = ((e[j, :, 0] >= z[i, :, 0]) & (e[j, :, 1] <= z[i, :, 1])).all()
            disjoint = ((e[i, :, 1] < e[j, :, 0]) | (e[i, :, 0] > e[j, :, 1])).any()
            if e_in_zj or e_j_in_zi:
                same = True
                break
            if not disjoint:
                ambiguous.append(z[i])
                same = True
                break
        if not same:
            keep.append(i)
    keep_arr = np.asarray(keep, dtype=int)
    amb = np.asarray(ambiguous).reshape(-1, z.shape[1], 2) if ambiguous else \
        np.zeros((0, z.shape[1], 2))
    return z[keep_arr], e[keep_arr], amb


def _tighten(form: LowRankForm, z: np.ndarray, e: np.ndarray, iterations: int) -> np.ndarray:
    """``E ← K(E) ∩ E`` (valid: the root is unique in Z ⊇ E and lies in E)."""
    if len(e) == 0:
        return e
    box = Interval(e[..., 0], e[..., 1])
    width = box.width.max(-1)
    for _ in range(iterations):
        centre = np.clip(_newton(form, 0.5 * box.lo + 0.5 * box.hi, 2), box.lo, box.hi)
        centre = np.where(np.isfinite(centre), centre, 0.5 * box.lo + 0.5 * box.hi)
        box = box.intersect(_krawczyk(form, box, centre))
        new_width = box.width.max(-1)
        if (new_width >= width * (1.0 - 1e-6)).all():
            break  # at round-off
        width = new_width
    return np.stack([box.lo, box.hi], -1)


def low_rank_form(dynamics) -> Optional[LowRankForm]:
    """The :class:`LowRankForm` of ``dynamics`` at its bound input, or None.

    ``dynamics.low_rank_source`` (set by :func:`fixedpoints.from_module` for models with a
    ``low_rank_form(u)`` method, or by hand) maps the input (a float64 ndarray of shape
    ``(n_inputs,)``) to the form. The answer is kept on ``dynamics`` for that source and
    input (the systems wrap a private copy of the model, whose weights do not change).
    """
    source = getattr(dynamics, "low_rank_source", None)
    if source is None:
        return None
    u = dynamics.input.detach().cpu().double().numpy()
    # one answer per source and input (a full-rank model's costs an SVD, and the finder, its
    # certificates and the ghost detector each ask); a system with another input (with_input)
    # or another source asks its source again
    cached = getattr(dynamics, "_low_rank_form_cache", None)
    if cached is not None and cached[0] is source and cached[1] == u.tobytes():
        return cached[2]
    form = source(u)
    if form is not None and not isinstance(form, LowRankForm):
        form = LowRankForm.from_dict(form)
    try:
        dynamics._low_rank_form_cache = (source, u.tobytes(), form)
    except AttributeError:  # an object that takes no attributes: asked again next time
        pass
    return form


def low_rank_form_or_none(dynamics, max_rank: float) -> Optional[LowRankForm]:
    """:func:`low_rank_form` of ``dynamics`` when it has one of rank ≤ ``max_rank`` over all of
    its states, else None (also for a source that fails to give one: callers then use the
    system's own derivatives)."""
    try:
        form = low_rank_form(dynamics)
    except (ValueError, RuntimeError, TypeError, np.linalg.LinAlgError) as exc:
        log.debug("no low-rank form (%s)", exc)
        return None
    if form is None or form.rank > max_rank or form.n_states != dynamics.n_states:
        return None
    return form
