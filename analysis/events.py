"""Restructuring events between two consecutive checkpoints.

Every rule compares two epoch analyses, *before* (A) and *after* (B). Distances are relative to
the **spread** ``s`` of the states: the larger of the two epochs' ``scale`` (RMS distance of the
visited states to their centroid), so that an epoch whose states collapse onto one attractor does
not shrink the gates. The options are fields of :class:`EventOptions`.

Point sets
    *Fixed points*: the finder's points of kind stable / saddle / unstable (any index).
    *Ghosts*: the ghost detector's ghosts; when ghost detection was off, the finder's slow points
    stand in for them. *Slow regions*: the finder's line attractors / slow manifolds (by centre).

Matching
    Each set is matched between A and B by an optimal assignment on distance, gated at
    ``gate · s`` (:func:`analysis.matching.match_points`). Unmatched points of A disappeared,
    unmatched points of B appeared. The compound rules below run first and *consume* the points
    they explain, so one bifurcation gives one event (its parts are listed in ``detail``).

Periodic orbits
    Applied last, by :func:`cycle_events`: ``cycle_birth`` / ``cycle_death`` /
    ``cycle_stability`` for the topology's cycle nodes, and ``hopf`` where a cycle is born from
    (or collapses into) a focus whose stability changed (that ``stability_change`` becomes the
    ``hopf`` event; a period-doubling orbit is attached to its ``stability_change`` instead).

Rules, in the order they are applied (:data:`RULES`; each is a function ``rule_*(state)`` of its
own that reads and updates one :class:`RuleState`)
    moves (:func:`rule_moves`, no event of its own)
        Fixed points of A and B left unmatched by the gate that have the same index, are each
        other's nearest point of that index on the other side, and lie within ``jump · s`` of
        each other or are each other's nearest fixed point of any index (nothing lies between
        them), are one point that moved within its basin (the nearest-point cell stands in for
        the basin): they are consumed, and a moved attractor is reported as
        ``attractor_moved`` with ``detail["jump"] = True``. This runs first, so that a stable
        point and a saddle that both moved far are not read as one saddle-node vanishing and
        another appearing, and a moved attractor is not a death plus a birth (generically a
        fixed point can only appear or vanish with a partner).
    ``saddle_node``
        Two fixed points of A whose indices differ by exactly one (a stable node and a saddle,
        or generally index k and k+1), that both disappeared and lay within ``pair_distance · s``
        of each other, collided: ``detail["direction"] = "vanish"``. The nearest ghost that
        appeared within ``max(pair distance, gate · s)`` of the pair's midpoint is the remnant and
        is consumed too (``detail["ghost"]``; None when no ghost was found). The reverse, a pair
        of indices k, k+1 appearing together (and a ghost that vanished near them), is
        ``direction = "appear"``. Pairs are taken closest first; each point is used once.
        A single fixed point that disappeared (appeared) within ``gate · s`` of a ghost that
        appeared (vanished) is a saddle-node whose partner the search missed
        (``detail["partner"] = None``): generically a fixed point can only vanish by colliding
        with another one.
    ``pitchfork``
        One point splits into three at the same place: a fixed point m of B whose index differs
        by one from that of a point a of A, flanked by two fixed points c1, c2 of B with a's
        index, all within ``pair_distance · s`` of a, with m near the flanks' midpoint
        (``|m − (c1 + c2)/2| ≤ symmetry · |c1 − c2|/2``), and at least two of the three new
        (unmatched), the third being a's partner (``direction = "split"``). Three merging into
        one (the time-reverse, flanks carrying the merged point's index) is ``"merge"``.
    ``stability_change``
        A matched fixed point whose index changed. ``detail["crossing"]`` is ``"complex"`` when
        the eigenvalues that crossed the stability boundary (the least unstable ones on the more
        unstable side) have a non-zero imaginary part (a Hopf-like crossing of a complex pair),
        else ``"real"``.
    ``birth`` / ``death``
        A fixed point (or slow region) that appeared / disappeared and no rule above explained.
    ghost moves (:func:`rule_ghost_moves`, no event of its own)
        A ghost of A and one of B left over, each other's nearest, within ``jump · s`` of each
        other or with no fixed point nearer to either than they are to each other, are one
        ghost that drifted.
    ``ghost_appeared`` / ``ghost_vanished``
        A ghost that appeared / vanished and no rule above consumed. Ghost events carry
        the ghost's ``strength`` (passage time / relaxation time, :mod:`fixedpoints.ghosts`) and
        ``strength_class`` in ``detail`` (a saddle-node its remnant's as ``ghost_strength``).
        Ghosts weaker than ``min_ghost_strength`` are not in the ghost set at all, the same rule
        as the detector's ``min_strength``: a ghost fading below it has vanished.
    ``attractor_moved``
        A stable fixed point matched to a stable fixed point that moved more than
        ``move · s`` (within the gate, or a move beyond it).
    ``connection_change``
        The robust connections of the topology (from index-1 saddles and ghosts, see
        :mod:`analysis.topology`) changed among points that exist on both sides: for each such
        source matched between A and B, with the same index on both sides and whose targets are
        all matched too, its set of targets (mapped through
        the matching; the ``escape`` and ``unresolved`` sinks map to themselves) differs.
        Connections that changed only because a target appeared or vanished, or because the
        source changed stability, are part of that event, not a connection change. One event
        per interval, listing the sources.
    ``attractor_count``
        The number of attractors (stable points, slow regions, and the ``unresolved`` sink when
        some trajectories end on a non-point attractor such as a cycle) changed. When the events
        above account for the whole change (a stable point born, dead, or changing stability,
        a saddle-node or pitchfork), each of them carries ``detail["n_attractors"] = [before,
        after]`` and no separate event is made; otherwise an ``attractor_count`` event reports
        the change that no point event explains.

Transients (:func:`split_transients`, over a whole series)
    A ghost seen at one checkpoint only (it appeared in the interval before and vanished in the
    interval after, or sits at the first or last checkpoint alone) is a **transient**: reported
    apart, with kind ``"transient"``, and not an event. Slow points near the finder's thresholds
    flicker like this between neighbouring checkpoints; one that persists stays an event.

Every event has ``epoch_before``, ``epoch_after``, ``kind``, ``points`` (node ids such as
``"before/fp3"`` or ``"after/ghost0"``), ``location`` (a representative state, shape
``(n_states,)``) and a JSON-ready ``detail``. ``lead_time`` (drop epoch − event epoch; positive:
the event precedes the drop) and ``alpha`` (where between the two checkpoints, from
:mod:`analysis.localize`) are filled later.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field, fields, replace
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from fixedpoints.options import resolve_options
from fixedpoints.serialization import to_json

from .matching import Matching, match_points
from .topology import node_id

__all__ = ["EVENT_KINDS", "EventOptions", "RestructuringEvent", "detect_events", "event_epoch",
           "RULES", "RuleState", "rule_state", "event_spread", "split_transients",
           "rule_moves", "rule_saddle_node", "rule_pitchfork", "rule_stability_change",
           "rule_birth_death", "rule_ghost_moves", "rule_ghosts", "rule_attractor_moved",
           "rule_connection_change",
           "rule_attractor_count", "describe_event", "lead_phrase", "cycle_events"]

#: All event kinds, in the order rules are applied.
EVENT_KINDS = ("saddle_node", "pitchfork", "stability_change", "birth", "death",
               "ghost_appeared", "ghost_vanished", "attractor_moved", "connection_change",
               "attractor_count", "hopf", "cycle_birth", "cycle_death", "cycle_stability")

#: Kinds that change the number of attractors through points.
_POINT_KINDS = ("saddle_node", "pitchfork", "stability_change", "birth", "death")


@dataclass(frozen=True)
class EventOptions:
    """Thresholds of the event rules (all distances relative to the state spread).

    Attributes
    ----------
    gate : float, default 0.5
        Largest relative distance of a matched pair.
    pair_distance : float, default 2.0
        Largest relative distance between the two points of a saddle-node pair, and between the
        three points of a pitchfork and their source.
    symmetry : float, default 0.5
        Pitchfork: largest offset of the middle point from the flanks' midpoint, relative to the
        flanks' half distance.
    move : float, default 0.1
        Relative displacement above which a matched attractor is reported as moved.
    jump : float, default 2.0
        Largest relative distance of a same-index pair of left-over points (see the rules).
    imag_tol : float, default 1e-6
        Relative imaginary part above which a crossing eigenvalue counts as complex.
    kinds : tuple of str, optional
        Only report these kinds (default: all of :data:`EVENT_KINDS`).
    min_ghost_strength : float, default 0.0
        Ghosts with a strength below this are ignored (0: every ghost the detector reported,
        whose own ``min_strength`` defaults to 0 too; set both to the same value).
    """

    gate: float = 0.5
    pair_distance: float = 2.0
    symmetry: float = 0.5
    move: float = 0.1
    jump: float = 2.0
    imag_tol: float = 1e-6
    kinds: Optional[Tuple[str, ...]] = None
    min_ghost_strength: float = 0.0

    def __post_init__(self):
        value = self.min_ghost_strength
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"EventOptions.min_ghost_strength={value!r} is invalid; pass a "
                             f"number >= 0 (passage time / relaxation time)")
        for name in ("gate", "pair_distance", "symmetry", "move", "jump", "imag_tol"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"EventOptions.{name}={value!r} is invalid; pass a positive "
                                 f"number")
        if self.kinds is not None:
            kinds = tuple(self.kinds)
            bad = sorted(set(kinds) - set(EVENT_KINDS))
            if bad:
                raise ValueError(f"EventOptions.kinds has unknown kind(s) {bad}; valid kinds are "
                                 f"{list(EVENT_KINDS)}")
            object.__setattr__(self, "kinds", kinds)

    @classmethod
    def make(cls, value=None) -> "EventOptions":
        """From None, an EventOptions, or a dict of its fields (unknown names raise)."""
        return resolve_options(cls, value, name="event")

    def to_dict(self) -> Dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["kinds"] = None if self.kinds is None else list(self.kinds)
        return d


@dataclass(frozen=True)
class RestructuringEvent:
    """One restructuring event between two consecutive checkpoints.

    Attributes
    ----------
    epoch_before, epoch_after : int
        The checkpoints that bracket it.
    kind : str
        One of :data:`EVENT_KINDS`.
    points : tuple of str
        Node ids involved, prefixed ``before/`` or ``after/`` (e.g. ``before/fp2``).
    location : ndarray of shape (n_states,)
        A representative state (the pair's midpoint, the new point, ...).
    detail : dict
        Rule-specific, JSON-ready facts (indices, distances, eigenvalues, ...).
    lead_time : float or None
        ``drop_epoch − epoch`` (positive: before the drop), when a drop was found.
    alpha : float or None
        Where the event happens on the straight path between the two checkpoints' weights
        (0: at epoch_before, 1: at epoch_after), when localized.
    """

    epoch_before: int
    epoch_after: int
    kind: str
    points: Tuple[str, ...] = ()
    location: Optional[np.ndarray] = None
    detail: Dict[str, Any] = field(default_factory=dict)
    lead_time: Optional[float] = None
    alpha: Optional[float] = None

    @property
    def epoch(self) -> float:
        """The event's epoch: interpolated with ``alpha`` when localized, else ``epoch_after``."""
        return event_epoch(self)

    def to_dict(self) -> Dict[str, Any]:
        return {"epoch_before": int(self.epoch_before), "epoch_after": int(self.epoch_after),
                "kind": self.kind, "points": list(self.points),
                "location": None if self.location is None else np.asarray(self.location).tolist(),
                "detail": to_json(self.detail), "lead_time": self.lead_time,
                "alpha": self.alpha, "epoch": float(self.epoch)}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "RestructuringEvent":
        loc = d.get("location")
        return cls(epoch_before=int(d["epoch_before"]), epoch_after=int(d["epoch_after"]),
                   kind=str(d["kind"]), points=tuple(d.get("points", ())),
                   location=None if loc is None else np.asarray(loc, dtype=float),
                   detail=dict(d.get("detail", {})), lead_time=d.get("lead_time"),
                   alpha=d.get("alpha"))

    def summary(self) -> str:
        """One line: epochs, kind and the most telling detail."""
        bits = [f"{self.kind} between epochs {self.epoch_before} and {self.epoch_after}"]
        if self.alpha is not None:
            bits.append(f"at alpha={self.alpha:.3f} (epoch ≈ {self.epoch:.1f})")
        if self.lead_time is not None:
            bits.append(f"lead time {self.lead_time:+.1f} epochs")
        return ", ".join(bits)


def event_epoch(event: RestructuringEvent) -> float:
    """``epoch_before + alpha · (epoch_after − epoch_before)`` if localized, else epoch_after."""
    if event.alpha is None:
        return float(event.epoch_after)
    return float(event.epoch_before + event.alpha * (event.epoch_after - event.epoch_before))


# ------------------------------------------------------------------------ epoch views
@dataclass
class _View:
    """The point sets of one epoch that the rules look at."""

    epoch: int
    scale: float
    time: str
    fx: np.ndarray          # (k, n) fixed points
    f_index: np.ndarray     # (k,)
    f_kind: np.ndarray      # (k,)
    f_eig: np.ndarray       # (k, n) native spectra
    f_id: List[str]         # node ids
    gx: np.ndarray          # (g, n) ghosts (or slow points)
    g_id: List[str]
    g_strength: np.ndarray  # (g,) passage / relaxation time (NaN for slow points)
    g_class: List[Optional[str]]
    rx: np.ndarray          # (r, n) region centres
    r_id: List[str]
    edges: Dict[str, set]   # source node id -> set of target node ids
    n_attractors: int
    unresolved_attractor: bool


def _view(result, min_ghost_strength: float = 0.0) -> _View:
    fp = result.fixed_points
    n = fp.x.shape[1] if fp.x.ndim == 2 else 0
    fixed = np.flatnonzero(fp.kind != "slow")
    ghosts = getattr(result, "ghosts", None)
    if ghosts is not None:
        count = len(ghosts.x)
        strength = getattr(ghosts, "strength", None)  # None: a result without strengths
        strength = np.full(count, np.nan) if strength is None else \
            np.asarray(strength, dtype=float).reshape(-1)
        classes = getattr(ghosts, "strength_class", None)
        keep = np.flatnonzero(~(strength < min_ghost_strength))  # unknown (NaN) is kept
        gx = np.asarray(ghosts.x, dtype=float).reshape(-1, n)[keep]
        g_id = [node_id("ghost", j) for j in keep]
        g_strength = strength[keep]
        g_class = [None if classes is None else str(classes[j]) or None for j in keep]
    else:
        slow = np.flatnonzero(fp.kind == "slow")
        gx = fp.x[slow].reshape(-1, n)
        g_id = [node_id("slow", i) for i in slow]
        g_strength = np.full(len(slow), np.nan)
        g_class = [None] * len(slow)
    rx = np.array([r.center for r in fp.slow_regions], dtype=float).reshape(-1, n)
    edges: Dict[str, set] = {}
    topo = getattr(result, "topology", None)
    unresolved = bool(topo is not None and topo.ends_unresolved())
    if topo is not None:
        for s, t in topo.edges(max_source_index=1):
            edges.setdefault(s, set()).add(t)
    n_attr = (topo.signature().n_attractors if topo is not None else
              int(np.sum(fp.kind[fixed] == "stable")) + len(fp.slow_regions))
    return _View(epoch=int(result.epoch), scale=float(result.scale), time=str(fp.time),
                 fx=fp.x[fixed].reshape(-1, n), f_index=fp.n_unstable[fixed].astype(int),
                 f_kind=fp.kind[fixed].astype(str), f_eig=fp.eigvals[fixed],
                 f_id=[node_id("fixed", i) for i in fixed], gx=gx, g_id=g_id,
                 g_strength=g_strength, g_class=g_class, rx=rx,
                 r_id=[node_id("region", r) for r in range(len(rx))], edges=edges,
                 n_attractors=n_attr, unresolved_attractor=unresolved)


def _strength(view: _View, j: int, prefix: str = "") -> Dict[str, Any]:
    """JSON-ready strength and class of ghost ``j`` of ``view`` (None when unknown)."""
    value = float(view.g_strength[j])
    return {f"{prefix}strength": value if math.isfinite(value) else None,
            f"{prefix}strength_class": view.g_class[j]}


def _margin(eig: np.ndarray, time: str) -> np.ndarray:
    """Signed distance of eigenvalues to the stability boundary (positive: unstable)."""
    return np.abs(eig) - 1.0 if time == "discrete" else np.real(eig)


def _crossing(eig_a: np.ndarray, eig_b: np.ndarray, ia: int, ib: int, time: str,
              imag_tol: float) -> Dict[str, Any]:
    """The eigenvalues that crossed: the least unstable ones on the more unstable side."""
    eig = eig_b if ib > ia else eig_a
    m = _margin(eig, time)
    unstable = np.flatnonzero(m > 0)
    k = abs(ib - ia)
    crossed = eig[unstable[np.argsort(m[unstable])][:k]] if len(unstable) else eig[:0]
    scale = np.maximum(1.0, np.abs(crossed))
    is_complex = bool(len(crossed) and np.any(np.abs(np.imag(crossed)) > imag_tol * scale))
    return {"crossing": "complex" if is_complex else "real",
            "crossed_eigvals": [[float(np.real(v)), float(np.imag(v))] for v in crossed],
            "side": "after" if ib > ia else "before"}


@dataclass
class RuleState:
    """What the rules share while comparing two epochs: the views, the matchings, the points not
    yet explained, and the events made so far. Each rule reads it, consumes the points it
    explains (removes them from ``dead`` / ``born`` / ``ghost_new`` / ``ghost_gone`` /
    ``changed_index``) and appends its events with :meth:`emit`."""

    A: _View
    B: _View
    opts: EventOptions
    spread: float
    mf: Matching
    mg: Matching
    mr: Matching
    dead: set
    born: set
    ghost_new: set
    ghost_gone: set
    changed_index: Dict[int, int]
    moves: List[Tuple[int, int, float]] = field(default_factory=list)
    ghost_moves: List[Tuple[int, int, float]] = field(default_factory=list)
    events: List[RestructuringEvent] = field(default_factory=list)

    @property
    def gate(self) -> float:
        return self.opts.gate * self.spread

    @property
    def pair_gate(self) -> float:
        return self.opts.pair_distance * self.spread

    def emit(self, kind: str, points, location, detail: Dict[str, Any]) -> None:
        self.events.append(RestructuringEvent(
            self.A.epoch, self.B.epoch, kind, tuple(points),
            None if location is None else np.asarray(location, float), detail))


def event_spread(A: _View, B: _View) -> float:
    """The spread ``s`` of a pair of epochs: the larger of their scales (1 when neither has one)."""
    values = [v for v in (A.scale, B.scale) if np.isfinite(v) and v > 0]
    return float(max(values or [1.0]))


def rule_state(before, after, options: Optional[EventOptions] = None) -> RuleState:
    """The views and matchings of two epoch analyses, before any rule ran."""
    opts = EventOptions.make(options)
    A, B = _view(before, opts.min_ghost_strength), _view(after, opts.min_ghost_strength)
    spread = event_spread(A, B)
    gate = opts.gate * spread
    mf = match_points(A.fx, B.fx, gate)
    mg = match_points(A.gx, B.gx, gate)
    mr = match_points(A.rx, B.rx, gate)
    return RuleState(
        A=A, B=B, opts=opts, spread=spread, mf=mf, mg=mg, mr=mr,
        dead={int(i) for i in mf.unmatched_a}, born={int(j) for j in mf.unmatched_b},
        ghost_new={int(j) for j in mg.unmatched_b}, ghost_gone={int(i) for i in mg.unmatched_a},
        changed_index={int(i): int(j) for i, j in mf.pairs if A.f_index[i] != B.f_index[j]})


def rule_moves(st: RuleState) -> None:
    """Same-index points that moved farther than the gate within their basin are moves.

    A fixed point of A and one of B left unmatched, of the same index, that are each other's
    nearest point of that index on the other side, and either lie within ``jump · s`` of each
    other or are each other's nearest fixed point of *any* index (nothing lies between them), are
    the same point: consumed, and an ``attractor_moved`` with ``detail["jump"] = True`` is made
    later for attractors. The nearest-point cell stands in for the basin: between two
    checkpoints an attractor's old place still lies in its new basin. Runs first: otherwise a
    stable point and a saddle that both moved far look like a saddle-node vanishing and another
    appearing.
    """
    A, B = st.A, st.B
    if not st.dead or not st.born:
        return
    da, db = sorted(st.dead), sorted(st.born)
    d = np.linalg.norm(A.fx[da][:, None, :] - B.fx[db][None, :, :], axis=2)
    same = A.f_index[da][:, None] == B.f_index[db][None, :]
    near_b = _nearest_same_index(A.fx[da], A.f_index[da], B.fx, B.f_index)
    near_a = _nearest_same_index(B.fx[db], B.f_index[db], A.fx, A.f_index)
    mutual = np.array([[near_b[r] == db[c] and near_a[c] == da[r] for c in range(len(db))]
                       for r in range(len(da))]).reshape(len(da), len(db))
    # nearest among all fixed points, of any index, on both sides: nothing (no saddle, no other
    # attractor) lies between the two places, so the old place is in the new point's basin
    # however far it moved
    any_b = _nearest_same_index(A.fx[da], np.zeros(len(da), int), B.fx, np.zeros(len(B.fx), int))
    any_a = _nearest_same_index(B.fx[db], np.zeros(len(db), int), A.fx, np.zeros(len(A.fx), int))
    alone = np.array([[any_b[r] == db[c] and any_a[c] == da[r] for c in range(len(db))]
                      for r in range(len(da))]).reshape(len(da), len(db))
    ok = same & mutual & ((d <= st.opts.jump * st.spread) | alone)
    for r, c in zip(*np.nonzero(ok)):
        i, j = da[r], db[c]
        st.dead.discard(i)
        st.born.discard(j)
        st.moves.append((i, j, float(d[r, c])))


def _nearest_same_index(x: np.ndarray, index: np.ndarray, others: np.ndarray,
                        other_index: np.ndarray) -> List[int]:
    """For each row of x, the row of ``others`` with the same index nearest to it (-1: none)."""
    out = []
    for xi, ii in zip(x, index):
        rows = np.flatnonzero(other_index == ii)
        out.append(int(rows[np.argmin(np.linalg.norm(others[rows] - xi, axis=1))])
                   if len(rows) else -1)
    return out


def rule_saddle_node(st: RuleState) -> None:
    """Pairs of adjacent indices that vanish together (or appear), with their ghost; then lone
    points that vanish where a ghost appears (or the reverse). See the module docstring."""
    for side in ("vanish", "appear"):
        _saddle_node_pairs(st, side)
        _saddle_node_lone(st, side)


def _saddle_node_sides(st: RuleState, side: str):
    if side == "vanish":
        return st.A, st.dead, st.B, st.ghost_new, ("before", "after")
    return st.B, st.born, st.A, st.ghost_gone, ("after", "before")


def _saddle_node_pairs(st: RuleState, side: str) -> None:
    V, pool, ghosts_v, ghost_pool, (tag, gtag) = _saddle_node_sides(st, side)
    cands = []
    for i, j in itertools.combinations(sorted(pool), 2):
        if abs(V.f_index[i] - V.f_index[j]) != 1:
            continue
        d = float(np.linalg.norm(V.fx[i] - V.fx[j]))
        if d <= st.pair_gate:
            cands.append((d, i, j))
    for d, i, j in sorted(cands):
        if i not in pool or j not in pool:
            continue
        pool.discard(i)
        pool.discard(j)
        lo, hi = (i, j) if V.f_index[i] < V.f_index[j] else (j, i)
        mid = 0.5 * (V.fx[i] + V.fx[j])
        ghost = None
        if ghost_pool:
            gl = sorted(ghost_pool)
            gd = np.linalg.norm(ghosts_v.gx[gl] - mid, axis=1)
            k = int(np.argmin(gd))
            if gd[k] <= max(d, st.gate):
                ghost = gl[k]
                ghost_pool.discard(ghost)
        pts = [f"{tag}/{V.f_id[lo]}", f"{tag}/{V.f_id[hi]}"]
        detail = {"direction": side, "indices": [int(V.f_index[lo]), int(V.f_index[hi])],
                  "kinds": [str(V.f_kind[lo]), str(V.f_kind[hi])],
                  "pair_distance": d / st.spread, "ghost": None}
        if ghost is not None:
            pts.append(f"{gtag}/{ghosts_v.g_id[ghost]}")
            detail["ghost"] = ghosts_v.g_id[ghost]
            detail["ghost_distance"] = float(np.linalg.norm(ghosts_v.gx[ghost] - mid)) / st.spread
            detail.update(_strength(ghosts_v, ghost, "ghost_"))
        st.emit("saddle_node", pts, mid, detail)


def _saddle_node_lone(st: RuleState, side: str) -> None:
    """A lone point that vanished where a ghost appeared (its partner was not found)."""
    V, pool, ghosts_v, ghost_pool, (tag, gtag) = _saddle_node_sides(st, side)
    for i in sorted(pool):
        if not ghost_pool:
            break
        gl = sorted(ghost_pool)
        gd = np.linalg.norm(ghosts_v.gx[gl] - V.fx[i], axis=1)
        k = int(np.argmin(gd))
        if gd[k] > st.gate:
            continue
        pool.discard(i)
        ghost_pool.discard(gl[k])
        st.emit("saddle_node", [f"{tag}/{V.f_id[i]}", f"{gtag}/{ghosts_v.g_id[gl[k]]}"],
                0.5 * (V.fx[i] + ghosts_v.gx[gl[k]]),
                {"direction": side, "indices": [int(V.f_index[i])], "kinds": [str(V.f_kind[i])],
                 "pair_distance": None, "partner": None, "ghost": ghosts_v.g_id[gl[k]],
                 "ghost_distance": float(gd[k]) / st.spread,
                 **_strength(ghosts_v, gl[k], "ghost_")})


def rule_pitchfork(st: RuleState) -> None:
    """One point becomes three at the same place (split), or three become one (merge)."""
    for side in ("split", "merge"):
        _pitchfork(st, side)


def _pitchfork(st: RuleState, side: str) -> None:
    # S: the side with one point (a), T: the side with three (c1, m, c2)
    S, T = (st.A, st.B) if side == "split" else (st.B, st.A)
    partner = st.mf.partner_of_a() if side == "split" else st.mf.partner_of_b()
    new_pool = st.born if side == "split" else st.dead
    for a in sorted(partner):
        t_a = partner[a]
        near = [t for t in sorted(new_pool) if np.linalg.norm(T.fx[t] - S.fx[a]) <= st.pair_gate]
        if len(near) < 2:
            continue
        found = _pitchfork_triple(S, T, a, near + [t_a], t_a, st.opts.symmetry)
        if not found:
            continue
        c1, m, c2, half, off = found
        for t in (c1, m, c2):
            new_pool.discard(t)
        st.changed_index.pop(a if side == "split" else t_a, None)
        s_tag, t_tag = ("before", "after") if side == "split" else ("after", "before")
        st.emit("pitchfork", [f"{s_tag}/{S.f_id[a]}"] + [f"{t_tag}/{T.f_id[t]}"
                                                          for t in (c1, m, c2)],
                S.fx[a], {"direction": side, "index_single": int(S.f_index[a]),
                          "index_middle": int(T.f_index[m]), "index_flanks": int(T.f_index[c1]),
                          "half_width": float(half) / st.spread,
                          "asymmetry": float(off) / max(float(half), 1e-300)})


def _pitchfork_triple(S: _View, T: _View, a: int, members: List[int], t_a: int,
                      symmetry: float):
    """(c1, m, c2, half width, offset) of a symmetric triple around S's point a, or None."""
    for m in members:
        if abs(T.f_index[m] - S.f_index[a]) != 1:
            continue
        flanks = [c for c in members if c != m and T.f_index[c] == S.f_index[a]]
        for c1, c2 in itertools.combinations(flanks, 2):
            half = 0.5 * np.linalg.norm(T.fx[c1] - T.fx[c2])
            off = np.linalg.norm(T.fx[m] - 0.5 * (T.fx[c1] + T.fx[c2]))
            if half > 0 and off <= symmetry * half and t_a in (c1, m, c2):
                return c1, m, c2, half, off
    return None


def rule_stability_change(st: RuleState) -> None:
    """Matched fixed points whose index changed (and no pitchfork explained)."""
    A, B = st.A, st.B
    for i, j in sorted(st.changed_index.items()):
        detail = {"index_before": int(A.f_index[i]), "index_after": int(B.f_index[j]),
                  "kind_before": str(A.f_kind[i]), "kind_after": str(B.f_kind[j]),
                  "distance": float(np.linalg.norm(A.fx[i] - B.fx[j])) / st.spread}
        detail.update(_crossing(A.f_eig[i], B.f_eig[j], int(A.f_index[i]), int(B.f_index[j]),
                                A.time, st.opts.imag_tol))
        st.emit("stability_change", [f"before/{A.f_id[i]}", f"after/{B.f_id[j]}"], B.fx[j],
                detail)


def rule_birth_death(st: RuleState) -> None:
    """Fixed points and slow regions that appeared / disappeared and no rule explained."""
    A, B, s = st.A, st.B, st.spread
    for j in sorted(st.born):
        st.emit("birth", [f"after/{B.f_id[j]}"], B.fx[j],
                {"kind": str(B.f_kind[j]), "index": int(B.f_index[j]),
                 "nearest_before": _nearest(B.fx[j], A.fx, s)})
    for i in sorted(st.dead):
        st.emit("death", [f"before/{A.f_id[i]}"], A.fx[i],
                {"kind": str(A.f_kind[i]), "index": int(A.f_index[i]),
                 "nearest_after": _nearest(A.fx[i], B.fx, s)})
    for j in st.mr.unmatched_b:
        st.emit("birth", [f"after/{B.r_id[j]}"], B.rx[j], {"kind": "slow_region", "index": -1})
    for i in st.mr.unmatched_a:
        st.emit("death", [f"before/{A.r_id[i]}"], A.rx[i], {"kind": "slow_region", "index": -1})


def rule_ghost_moves(st: RuleState) -> None:
    """Ghosts that moved farther than the gate are one ghost, not a vanishing and an appearance.

    :func:`rule_moves` for ghosts: a ghost of A and one of B that no rule explained, that are
    each other's nearest ghost on the other side, and either lie within ``jump · s`` of each
    other or are each other's nearest point of any kind (no fixed point or other ghost lies
    between the two places), are consumed without an event. A bottleneck drifts as the
    weights change, and with few checkpoints it can move beyond the gate between two.
    """
    A, B = st.A, st.B
    if not st.ghost_gone or not st.ghost_new:
        return
    ga, gb = sorted(st.ghost_gone), sorted(st.ghost_new)
    zeros = np.zeros
    near_b = _nearest_same_index(A.gx[ga], zeros(len(ga), int), B.gx, zeros(len(B.gx), int))
    near_a = _nearest_same_index(B.gx[gb], zeros(len(gb), int), A.gx, zeros(len(A.gx), int))
    # nearest among all points of the other side, its ghosts first (rows below len(gx))
    all_b = np.concatenate([B.gx, B.fx.reshape(-1, B.gx.shape[1])])
    all_a = np.concatenate([A.gx, A.fx.reshape(-1, A.gx.shape[1])])
    any_b = _nearest_same_index(A.gx[ga], zeros(len(ga), int), all_b, zeros(len(all_b), int))
    any_a = _nearest_same_index(B.gx[gb], zeros(len(gb), int), all_a, zeros(len(all_a), int))
    for r, i in enumerate(ga):
        j = near_b[r]
        if j not in st.ghost_new or near_a[gb.index(j)] != i:
            continue   # not each other's nearest, or the partner is explained already
        c = gb.index(j)
        d = float(np.linalg.norm(A.gx[i] - B.gx[j]))
        alone = any_b[r] == j and any_a[c] == i
        if d <= st.opts.jump * st.spread or alone:
            st.ghost_gone.discard(i)
            st.ghost_new.discard(j)
            st.ghost_moves.append((i, j, d))


def rule_ghosts(st: RuleState) -> None:
    """Ghosts that appeared / vanished and no saddle-node consumed."""
    A, B, s = st.A, st.B, st.spread
    for j in sorted(st.ghost_new):
        st.emit("ghost_appeared", [f"after/{B.g_id[j]}"], B.gx[j],
                {"nearest_fixed_before": _nearest(B.gx[j], A.fx, s), **_strength(B, j)})
    for i in sorted(st.ghost_gone):
        st.emit("ghost_vanished", [f"before/{A.g_id[i]}"], A.gx[i],
                {"nearest_fixed_after": _nearest(A.gx[i], B.fx, s), **_strength(A, i)})


def rule_attractor_moved(st: RuleState) -> None:
    """Matched attractors displaced by more than ``move · s``, and attractors that moved beyond
    the gate (:func:`rule_moves`)."""
    A, B = st.A, st.B
    for (i, j), d in zip(st.mf.pairs, st.mf.distance):
        if A.f_index[i] == 0 and B.f_index[j] == 0 and d > st.opts.move * st.spread:
            st.emit("attractor_moved", [f"before/{A.f_id[i]}", f"after/{B.f_id[j]}"], B.fx[j],
                    {"displacement": float(d) / st.spread, "jump": False})
    for i, j, d in st.moves:
        if A.f_index[i] == 0:
            st.emit("attractor_moved", [f"before/{A.f_id[i]}", f"after/{B.f_id[j]}"], B.fx[j],
                    {"displacement": d / st.spread, "jump": True})


def rule_connection_change(st: RuleState) -> None:
    """Robust connections that changed among sources present, with the same index, on both
    sides and whose targets are all present on both sides (one event per interval)."""
    A, B = st.A, st.B
    pairs = list(st.mf.pairs) + [(i, j) for i, j, _ in st.moves]
    node_a2b = {A.f_id[i]: B.f_id[j] for i, j in pairs}
    index_changed = {A.f_id[i] for i, j in pairs if A.f_index[i] != B.f_index[j]}
    node_a2b.update({A.g_id[i]: B.g_id[j] for i, j in st.mg.pairs})
    node_a2b.update({A.g_id[i]: B.g_id[j] for i, j, _ in st.ghost_moves})
    node_a2b.update({A.r_id[i]: B.r_id[j] for i, j in st.mr.pairs})
    node_a2b.update({s: s for s in ("escape", "unresolved")})
    b2a_nodes = {v: k for k, v in node_a2b.items()}
    changed = []
    for src_a, src_b in sorted(node_a2b.items()):
        if src_a in ("escape", "unresolved") or src_a in index_changed:
            continue
        ta = A.edges.get(src_a, set())
        tb = B.edges.get(src_b, set())
        if not ta and not tb:
            continue
        if any(t not in node_a2b for t in ta) or any(t not in b2a_nodes for t in tb):
            continue  # a target appeared or vanished: explained by that event
        mapped = {node_a2b[t] for t in ta}
        if mapped != tb:
            changed.append({"source_before": src_a, "source_after": src_b,
                            "targets_before": sorted(ta), "targets_after": sorted(tb)})
    if changed:
        st.emit("connection_change", [f"before/{c['source_before']}" for c in changed], None,
                {"changes": changed})


def rule_attractor_count(st: RuleState) -> None:
    """A change of the number of attractors: attached to the point events that explain it, or
    an ``attractor_count`` event of its own."""
    A, B = st.A, st.B
    if A.n_attractors == B.n_attractors:
        return
    deltas = [_attractor_delta(e) for e in st.events]
    counts = [A.n_attractors, B.n_attractors]
    if int(sum(deltas)) == B.n_attractors - A.n_attractors and any(deltas):
        for k, e in enumerate(st.events):
            if deltas[k]:
                st.events[k] = replace(e, detail={**e.detail, "n_attractors": counts})
        return
    st.emit("attractor_count", [], None,
            {"n_attractors": counts, "explained_by_point_events": int(sum(deltas)),
             "unresolved_before": A.unresolved_attractor,
             "unresolved_after": B.unresolved_attractor})


#: The rules, in the order :func:`detect_events` applies them.
RULES: Tuple[Callable[[RuleState], None], ...] = (
    rule_moves, rule_saddle_node, rule_pitchfork, rule_stability_change, rule_birth_death,
    rule_ghost_moves, rule_ghosts, rule_attractor_moved, rule_connection_change,
    rule_attractor_count)


def detect_events(before, after,
                  options: Optional[EventOptions] = None) -> List[RestructuringEvent]:
    """Restructuring events between two consecutive epoch analyses.

    Parameters
    ----------
    before, after : analysis.EpochAnalysis
        Anything with ``epoch``, ``scale``, ``fixed_points`` (FixedPoints), ``ghosts`` (Ghosts
        or None) and ``topology`` (Topology or None).
    options : EventOptions, optional

    Returns
    -------
    list of RestructuringEvent
        In rule order (:data:`RULES`, see the module docstring).
    """
    st = rule_state(before, after, options)
    for rule in RULES:
        rule(st)
    events = cycle_events(before, after, st.gate, st.events)  # periodic orbits, applied last
    if st.opts.kinds is not None:
        return [e for e in events if e.kind in st.opts.kinds]
    return events


def split_transients(events: Sequence[RestructuringEvent],
                     epochs: Optional[Sequence[int]] = None
                     ) -> Tuple[List[RestructuringEvent], List[RestructuringEvent]]:
    """Ghosts (slow points) seen at one checkpoint only are transients, not events.

    A ghost that appeared between checkpoints k − 1 and k (``ghost_appeared``, point
    ``after/ghostJ``) and vanished between k and k + 1 (``ghost_vanished``, point
    ``before/ghostJ``) existed at checkpoint k alone; so did a ghost that vanished right after the
    first checkpoint or appeared right before the last. Slow points near the finder's thresholds
    flicker like this between neighbouring checkpoints. A ghost left by a ``saddle_node`` that is
    gone at the next checkpoint was also seen once: the saddle-node stays an event, the ghost's
    vanishing becomes a transient. Transients are returned apart, as events of
    kind ``"transient"`` (``epoch_before = epoch_after = k``, ``detail["ghost"]``), and removed
    from the events. A ghost that persists over two checkpoints or more stays an event.

    Parameters
    ----------
    events : sequence of RestructuringEvent
        Events of a whole series, any order.
    epochs : sequence of int, optional
        The series' analyzed epochs, whose first and last bound it. Without them the events'
        own first and last epochs stand in, which cuts the series short when nothing happens
        at its end: ghosts that appeared before a quiet stretch were taken for transients.

    Returns
    -------
    list of RestructuringEvent
        The events without the transients' parts, in the given order.
    list of RestructuringEvent
        The transients, by epoch.
    """
    if epochs is None or not len(epochs):
        epochs = sorted({e.epoch_before for e in events} | {e.epoch_after for e in events})
    first, last = (min(epochs), max(epochs)) if len(epochs) else (None, None)
    appeared = {(e.epoch_after, e.points[0].split("/", 1)[1]): k for k, e in enumerate(events)
                if e.kind == "ghost_appeared" and e.points}
    # ghosts left by a saddle-node: the event stays, but a ghost gone one checkpoint later was
    # seen at that checkpoint only
    remnants = {(e.epoch_after, p.split("/", 1)[1]) for e in events if e.kind == "saddle_node"
                for p in e.points if p.startswith("after/ghost")}
    vanished = {(e.epoch_before, e.points[0].split("/", 1)[1]): k for k, e in enumerate(events)
                if e.kind == "ghost_vanished" and e.points}
    drop: set = set()
    transients = []
    for (epoch, ghost), k in sorted(vanished.items()):
        a = appeared.get((epoch, ghost))
        if a is None and epoch != first and (epoch, ghost) not in remnants:
            continue   # present before this checkpoint too
        parts = [events[k]] + ([events[a]] if a is not None else [])
        drop.update([k] + ([a] if a is not None else []))
        transients.append(_transient(epoch, ghost, parts))
    for (epoch, ghost), a in sorted(appeared.items()):
        if a not in drop and epoch == last:
            drop.add(a)
            transients.append(_transient(epoch, ghost, [events[a]]))
    transients.sort(key=lambda t: (t.epoch_before, t.detail["ghost"]))
    return [e for k, e in enumerate(events) if k not in drop], transients


def _transient(epoch: int, ghost: str, parts: Sequence[RestructuringEvent]) -> RestructuringEvent:
    location = next((p.location for p in parts if p.location is not None), None)
    return RestructuringEvent(int(epoch), int(epoch), "transient", (f"at/{ghost}",), location,
                              {"ghost": ghost, "parts": [p.kind for p in parts],
                               "brackets": [[p.epoch_before, p.epoch_after] for p in parts]})


def _cycle_nodes(result):
    """(ids, centres (m, n), index, stable, info dicts) of a topology's cycle nodes."""
    topo = getattr(result, "topology", None)
    if topo is None:
        return [], np.zeros((0, 0)), np.zeros(0, int), np.zeros(0, bool), []
    rows = np.flatnonzero(np.isin(topo.node_kind, ("limit_cycle", "unstable_cycle")))
    infos = list(topo.info.get("cycles", []))
    return ([str(topo.node_id[r]) for r in rows], np.asarray(topo.node_x)[rows],
            np.asarray(topo.node_index)[rows], topo.node_kind[rows] == "limit_cycle",
            [infos[int(topo.node_ref[r])] if int(topo.node_ref[r]) < len(infos) else {}
             for r in rows])


def cycle_events(before, after, gate: float,
                 events: Sequence[RestructuringEvent] = ()) -> List[RestructuringEvent]:
    """Add the periodic-orbit events between two epochs (the topology's ``cycle<j>`` nodes).

    Cycles are matched by centre (optimal assignment gated at ``gate``). A cycle of B with no
    partner is ``cycle_birth``, one of A with none ``cycle_death``; matched cycles whose
    stability differs give ``cycle_stability``. A cycle born (dying) within ``gate`` of a fixed
    point whose index changed between A and B came out of (collapsed into) that point: when the
    crossing eigenvalues are complex (a focus: Hopf / Neimark–Sacker) the point's
    ``stability_change`` event in ``events`` becomes one ``hopf`` event that names the focus
    before and after and the cycle (``detail["focus"]``, ``detail["direction"]`` "create" or
    "collapse"); when they are real (period doubling) the ``stability_change`` keeps its kind and
    gains ``detail["cycle"]`` and ``detail["bifurcation"] = "period_doubling"``. One
    bifurcation, one event.

    Returns
    -------
    list of RestructuringEvent
        ``events`` with those changes, then the new cycle events.
    """
    events = list(events)
    ids_a, ca, _, st_a, info_a = _cycle_nodes(before)
    ids_b, cb, _, st_b, info_b = _cycle_nodes(after)
    if not ids_a and not ids_b:
        return events
    ea, eb = int(before.epoch), int(after.epoch)
    n = ca.shape[1] if len(ca) else cb.shape[1]
    m = match_points(ca.reshape(-1, n), cb.reshape(-1, n), gate)
    fa, fb = _view(before), _view(after)
    mf = match_points(fa.fx, fb.fx, gate)
    changed = [(int(i), int(j)) for i, j in mf.pairs if fa.f_index[i] != fb.f_index[j]]
    out: List[RestructuringEvent] = []

    def focus_near(x, side):
        for i, j in changed:
            p = fb.fx[j] if side == "after" else fa.fx[i]
            if np.linalg.norm(p - x) <= gate:
                return {"before": f"before/{fa.f_id[i]}", "after": f"after/{fb.f_id[j]}",
                        "index_before": int(fa.f_index[i]), "index_after": int(fb.f_index[j]),
                        "complex": _complex_crossing(fa.f_eig[i], fb.f_eig[j], fa.time)}
        return None

    def link(focus, cycle_id, x, detail, direction) -> bool:
        """Fold the cycle into the focus's stability_change event; False if there is none."""
        for k, e in enumerate(events):
            if e.kind == "stability_change" and e.points[:2] == (focus["before"],
                                                                 focus["after"]):
                if focus["complex"]:
                    events[k] = RestructuringEvent(
                        e.epoch_before, e.epoch_after, "hopf", (*e.points, cycle_id), x,
                        {**e.detail, **detail, "direction": direction, "focus": focus})
                else:
                    events[k] = replace(e, points=(*e.points, cycle_id),
                                        detail={**e.detail, **detail,
                                                "bifurcation": "period_doubling"})
                return True
        return False

    for j in m.unmatched_b:
        j = int(j)
        focus = focus_near(cb[j], "after")
        detail = {"cycle": info_b[j], "stable": bool(st_b[j])}
        cid = f"after/{ids_b[j]}"
        if focus is None or not link(focus, cid, cb[j], detail, "create"):
            out.append(RestructuringEvent(ea, eb, "cycle_birth", (cid,), cb[j], detail))
    for i in m.unmatched_a:
        i = int(i)
        focus = focus_near(ca[i], "before")
        detail = {"cycle": info_a[i], "stable": bool(st_a[i])}
        cid = f"before/{ids_a[i]}"
        if focus is None or not link(focus, cid, ca[i], detail, "collapse"):
            out.append(RestructuringEvent(ea, eb, "cycle_death", (cid,), ca[i], detail))
    for i, j in m.pairs:
        if bool(st_a[i]) != bool(st_b[j]):
            out.append(RestructuringEvent(ea, eb, "cycle_stability",
                                          (f"before/{ids_a[i]}", f"after/{ids_b[j]}"), cb[j],
                                          {"stable_before": bool(st_a[i]),
                                           "stable_after": bool(st_b[j])}))
    return events + out


def _complex_crossing(eig_a: np.ndarray, eig_b: np.ndarray, time: str) -> bool:
    """Whether the eigenvalues that crossed the stability boundary between A and B are complex
    (those on the unstable side in exactly one of the two spectra)."""
    def crossed(eig):
        eig = np.asarray(eig)
        return np.abs(eig) > 1 if time == "discrete" else eig.real > 0
    a, b = crossed(eig_a), crossed(eig_b)
    moved = np.concatenate([np.asarray(eig_b)[b & ~a], np.asarray(eig_a)[a & ~b]])
    return bool(len(moved) and np.all(np.abs(moved.imag) > 1e-9))


def _attractor_delta(e: RestructuringEvent) -> int:
    """Change in the number of attractors that one point event accounts for."""
    d = e.detail
    if e.kind == "saddle_node":
        n_stable = sum(1 for i in d["indices"] if i == 0)
        return -n_stable if d["direction"] == "vanish" else n_stable
    if e.kind == "pitchfork":
        single = 1 if d["index_single"] == 0 else 0
        three = (1 if d["index_middle"] == 0 else 0) + 2 * (1 if d["index_flanks"] == 0 else 0)
        return three - single if d["direction"] == "split" else single - three
    if e.kind == "stability_change":
        return int(d["index_after"] == 0) - int(d["index_before"] == 0)
    if e.kind in ("birth", "death"):
        counts = d.get("kind") in ("stable", "slow_region")
        return (1 if e.kind == "birth" else -1) if counts else 0
    return 0


def _nearest(x: np.ndarray, others: np.ndarray, spread: float) -> Optional[float]:
    """Relative distance from x to the nearest row of others (None when there is none)."""
    if len(others) == 0:
        return None
    return float(np.min(np.linalg.norm(others - x, axis=1))) / spread


# ------------------------------------------------------------------------ events as sentences
_KIND_NAMES = {"stable": "a stable point", "saddle": "a saddle", "unstable": "an unstable point",
               "slow_region": "a slow region"}


def _point_name(kind: str, index: int) -> str:
    if kind in _KIND_NAMES:
        return _KIND_NAMES[kind]
    return f"a point of index {index}"


def lead_phrase(epoch_before: float, epoch_after: float, drop_epoch: Optional[float],
                alpha: Optional[float] = None) -> str:
    """Where an interval lies relative to the drop, in words (``""`` without a drop).

    ``"78 to 128 epochs before the drop"``, ``"22 epochs after to 28 before the drop"``, ...
    """
    if drop_epoch is None or not math.isfinite(float(drop_epoch)):
        return ""

    def side(lead: float) -> str:
        if lead == 0:
            return "at the drop"
        return f"{abs(lead):g} epochs {'before' if lead > 0 else 'after'} the drop"

    if alpha is not None:
        return side(float(drop_epoch) - (epoch_before + alpha * (epoch_after - epoch_before)))
    near, far = float(drop_epoch) - epoch_after, float(drop_epoch) - epoch_before
    if near > 0:
        return f"{near:g} to {far:g} epochs before the drop"
    if far < 0:
        return f"{-far:g} to {-near:g} epochs after the drop"
    return f"{-near:g} epochs after to {far:g} before the drop" if far > 0 else side(near)


def describe_event(event: RestructuringEvent, drop_epoch: Optional[float] = None) -> str:
    """One sentence a person can read: what happened, between which checkpoints, and when
    relative to the drop (the JSON detail stays in events.csv / events.json)."""
    d = event.detail
    what = _what_happened(event.kind, d, event.points)
    when = f"Between epochs {event.epoch_before} and {event.epoch_after}"
    if event.alpha is not None:
        when += f" (at epoch ≈ {event.epoch:.0f})"
    lead = lead_phrase(event.epoch_before, event.epoch_after, drop_epoch, event.alpha)
    return f"{when}, {what}" + (f" ({lead})." if lead else ".")


def _what_happened(kind: str, d: Dict[str, Any], points: Sequence[str]) -> str:
    if kind == "saddle_node":
        names = [_point_name(k, i) for k, i in zip(d.get("kinds", []), d.get("indices", []))]
        pair = " and ".join(names) if names else "a pair of fixed points"
        if d.get("direction") == "vanish":
            tail = ", leaving a ghost" if d.get("ghost") else ""
            return f"{pair} collided and vanished{tail}"
        tail = " where a ghost had been" if d.get("ghost") else ""
        return f"{pair} {'were' if len(names) > 1 else 'was'} born together{tail}"
    if kind == "pitchfork":
        if d.get("direction") == "split":
            return (f"a point of index {d.get('index_single')} split into three (a symmetric "
                    f"pitchfork)")
        return f"three points merged into one of index {d.get('index_single')} (a pitchfork)"
    if kind == "stability_change":
        crossing = " through a complex pair (Hopf-like)" if d.get("crossing") == "complex" else ""
        return (f"{_point_name(d.get('kind_before', ''), d.get('index_before', -1))} became "
                f"{_point_name(d.get('kind_after', ''), d.get('index_after', -1))}{crossing}")
    if kind in ("birth", "death"):
        name = _point_name(str(d.get("kind", "")), int(d.get("index", -1)))
        return f"{name} {'was born' if kind == 'birth' else 'disappeared'} alone"
    if kind == "ghost_appeared":
        return "a ghost (a slow bottleneck without a fixed point) appeared"
    if kind == "ghost_vanished":
        return "a ghost vanished"
    if kind == "attractor_moved":
        how = "jumped" if d.get("jump") else "moved"
        return f"an attractor {how} by {float(d.get('displacement', 0)):.2g} of the state spread"
    if kind == "connection_change":
        n = len(d.get("changes", []))
        plural = "s" if n != 1 else ""
        return f"where {n} saddle{plural} or ghost{plural} lead changed"
    if kind == "attractor_count":
        before, after = d.get("n_attractors", ["?", "?"])
        return f"the number of attractors went from {before} to {after}"
    if kind == "transient":
        return "a ghost was seen at one checkpoint only (transient, not an event)"
    return f"a {kind.replace('_', ' ')} event ({', '.join(points)})"
