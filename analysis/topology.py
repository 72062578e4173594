"""The topology of one system: which points exist and where their unstable directions lead.

Nodes are the fixed points (with their kind and index), the ghosts, the slow points that are not
ghosts, and the slow regions (line attractors, slow manifolds). Two extra sink nodes collect the
trajectories that find no attractor: ``escape`` (left the region the states visit) and
``unresolved`` (still moving when the step budget ran out: a cycle, chaos or a very slow drift).

Edges go

* from every fixed point with unstable directions (saddles and repellers) to the attractor that
  each branch of each unstable direction reaches: the trajectories start at ``x* ± ε·v`` for every
  real unstable direction ``v`` (a complex pair gives its real and imaginary parts);
* from every ghost and slow point to where its outflow leads: the trajectory starts at the
  point itself (the flow there is slow but non-zero, along the slow direction).

An attractor is a stable fixed point or a slow region; a trajectory has reached it once it is
within ``reach · scale`` of it.

Edges from points with one unstable direction (index-1 saddles) and from ghosts are **robust**:
a one-dimensional outflow has two branches whose destinations persist under small changes. The
branches of higher-index saddles follow a multi-dimensional unstable manifold and often run
along the stable manifold of a lower saddle, so where they end can hinge on round-off; they are
kept in the graph but left out of :func:`same_topology` and of the signature's edge count by
default (``max_source_index=1``). All trajectories of one system are integrated together in one
batch. A node's attributes are ``kind`` (stable, saddle, unstable, slow, ghost, slow_region,
escape, unresolved), ``index`` (number of unstable directions; -1 where undefined) and ``x``.
Edges carry ``branches``: how many trajectories took that route.

Periodic orbits (``cycles``, a :class:`fixedpoints.cycles.LimitCycles`) are nodes ``cycle<j>``
of kind ``limit_cycle`` (stable: an attractor, its orbit points are targets) or
``unstable_cycle``, with index the number of unstable Floquet multipliers and ``x`` the orbit's
centre; ``info["cycles"]`` keeps each one's period, multipliers and amplitude.

:meth:`Topology.signature` counts nodes by kind and index and the attractors;
:func:`same_topology` tests two topologies for graph isomorphism with matching node kinds and
indices.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple, Union

import numpy as np
import torch

if TYPE_CHECKING:
    import networkx as nx

    from fixedpoints import Dynamics, FixedPoints, Ghosts

__all__ = ["Topology", "Signature", "build_topology", "same_topology", "ATTRACTOR_KINDS",
           "CYCLE_KINDS", "SINK_NODES", "node_id", "parse_node_id", "TopologyOptions"]

logger = logging.getLogger(__name__)

@dataclass(frozen=True)
class TopologyOptions:
    """How :func:`build_topology` connects saddles and ghosts to attractors.

    Attributes
    ----------
    eps : float, default 1e-2
        Offset along each unstable direction, relative to the spread.
    max_steps : int, default 2000
        Step budget of each trajectory.
    reach : float, default 0.05
        Relative distance at which a trajectory has reached an attractor.
    """

    eps: float = 1e-2
    max_steps: int = 2000
    reach: float = 0.05

    def __post_init__(self) -> None:
        for name in ("eps", "reach"):
            value = getattr(self, name)
            if (isinstance(value, bool) or not isinstance(value, (int, float, np.floating))
                    or not np.isfinite(value) or value <= 0):
                raise ValueError(f"TopologyOptions.{name}={value!r} is invalid; pass a positive "
                                 f"number (a distance relative to the spread)")
        if (isinstance(self.max_steps, bool) or not isinstance(self.max_steps, (int, np.integer))
                or self.max_steps < 1):
            raise ValueError(f"TopologyOptions.max_steps={self.max_steps!r} is invalid; pass a "
                             f"positive integer (steps per trajectory)")


#: Node id prefix of each family of points (``node_id("fixed", 3) == "fp3"``).
NODE_PREFIX = {"fixed": "fp", "slow": "slow", "ghost": "ghost", "region": "region",
               "cycle": "cycle"}


def node_id(family: str, index: Union[int, np.integer]) -> str:
    """The id of a point's node in the topology graph and in events' ``points``.

    Parameters
    ----------
    family : {"fixed", "slow", "ghost", "region"}
        A fixed point or a slow point (``index`` into the finder's list of points), a ghost
        (into the ghosts), or a slow region (into ``fixed_points.slow_regions``).
    index : int

    Examples
    --------
    >>> node_id("fixed", 3), node_id("ghost", 0)
    ('fp3', 'ghost0')
    """
    return f"{NODE_PREFIX[family]}{int(index)}"


def parse_node_id(node: str) -> Optional[Tuple[str, int]]:
    """``(family, index)`` of a point's node id (the inverse of :func:`node_id`); None for the
    sink nodes ``escape`` and ``unresolved`` and anything else."""
    for family, prefix in NODE_PREFIX.items():
        rest = node[len(prefix):]
        if node.startswith(prefix) and rest.isdigit():
            return family, int(rest)
    return None

#: Node kinds that count as attractors.
ATTRACTOR_KINDS = ("stable", "slow_region", "limit_cycle")
#: Node kinds of periodic orbits (:mod:`fixedpoints.cycles`): stable and unstable.
CYCLE_KINDS = ("limit_cycle", "unstable_cycle")
#: Nodes that collect trajectories that reach no attractor.
SINK_NODES = ("escape", "unresolved")


@dataclass(frozen=True)
class Signature:
    """A coarse fingerprint of a topology.

    Attributes
    ----------
    counts : dict
        Number of nodes of each kind (``stable``, ``saddle``, ``unstable``, ``slow``, ``ghost``,
        ``slow_region``); sink nodes are not counted.
    index_counts : dict
        Number of fixed points of each index (``{0: 8, 1: 12, ...}``).
    n_attractors : int
        Stable fixed points plus slow regions, plus one when some trajectory reached no point
        attractor within the step budget (the ``unresolved`` sink: a cycle, chaos, or a drift
        slower than the budget).
    n_edges : int
        Number of distinct robust connections (from index-1 saddles, ghosts and slow points) to
        attractors or sinks.
    """

    counts: Dict[str, int]
    index_counts: Dict[int, int]
    n_attractors: int
    n_edges: int = 0

    def to_dict(self) -> Dict[str, Any]:
        return {"counts": dict(self.counts),
                "index_counts": {str(k): v for k, v in self.index_counts.items()},
                "n_attractors": int(self.n_attractors), "n_edges": int(self.n_edges)}

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "Signature":
        return cls(counts={k: int(v) for k, v in data["counts"].items()},
                   index_counts={int(k): int(v) for k, v in data["index_counts"].items()},
                   n_attractors=int(data["n_attractors"]), n_edges=int(data.get("n_edges", 0)))

    def points_equal(self, other: "Signature") -> bool:
        """Same counts by kind and index and same number of attractors (edges ignored)."""
        return (self.counts == other.counts and self.index_counts == other.index_counts
                and self.n_attractors == other.n_attractors)

    def __str__(self) -> str:
        kinds = ", ".join(f"{k}={v}" for k, v in self.counts.items() if v)
        index = " ".join(f"i{k}:{v}" for k, v in sorted(self.index_counts.items()))
        return f"{kinds or 'no points'}; index {index or '-'}; attractors={self.n_attractors}"


@dataclass(frozen=True)
class Topology:
    """Nodes and connections of one system (struct of arrays; ``.graph`` builds the DiGraph).

    Attributes
    ----------
    node_id : ndarray of shape (m,), str
        ``fp<i>`` (fixed point i of the FixedPoints), ``slow<i>`` (a finder slow point that is
        not a ghost), ``ghost<j>``, ``region<r>``, ``escape``, ``unresolved``.
    node_kind : ndarray of shape (m,), str
    node_index : ndarray of shape (m,), int
        Number of unstable directions (-1 for regions and sinks).
    node_ref : ndarray of shape (m,), int
        Row in the source array (FixedPoints, Ghosts, slow_regions); -1 for sinks.
    node_x : ndarray of shape (m, n_states)
        Location (region centre; NaN for sinks).
    edge_source, edge_target : ndarray of shape (e,), int
        Node rows of each connection.
    edge_branches : ndarray of shape (e,), int
        Number of trajectories that took it.
    info : dict
        Trajectory counts and the parameters used.
    """

    node_id: np.ndarray
    node_kind: np.ndarray
    node_index: np.ndarray
    node_ref: np.ndarray
    node_x: np.ndarray
    edge_source: np.ndarray
    edge_target: np.ndarray
    edge_branches: np.ndarray
    info: Dict[str, Any] = field(default_factory=dict)

    ARRAYS = ("node_id", "node_kind", "node_index", "node_ref", "node_x", "edge_source",
              "edge_target", "edge_branches")

    def __len__(self) -> int:
        return int(len(self.node_id))

    @property
    def graph(self) -> "nx.DiGraph":
        """A ``networkx.DiGraph``: node attributes kind, index, x; edge attribute branches."""
        return self.to_graph(max_source_index=None)

    def to_graph(self, max_source_index: Optional[int] = None) -> "nx.DiGraph":
        """The DiGraph, keeping only edges whose source has at most this index (None: all)."""
        import networkx as nx

        g = nx.DiGraph()
        for i, name in enumerate(self.node_id):
            g.add_node(str(name), kind=str(self.node_kind[i]), index=int(self.node_index[i]),
                       x=self.node_x[i])
        keep = self._edge_mask(max_source_index)
        for s, t, b in zip(self.edge_source[keep], self.edge_target[keep],
                           self.edge_branches[keep]):
            g.add_edge(str(self.node_id[s]), str(self.node_id[t]), branches=int(b))
        return g

    def _edge_mask(self, max_source_index: Optional[int]) -> np.ndarray:
        if max_source_index is None:
            return np.ones(len(self.edge_source), bool)
        return self.node_index[self.edge_source] <= max_source_index

    def edges(self, max_source_index: Optional[int] = None) -> List[Tuple[str, str]]:
        """Connections as (source id, target id) pairs (only from sources of index at most
        ``max_source_index`` when given)."""
        keep = self._edge_mask(max_source_index)
        return [(str(self.node_id[s]), str(self.node_id[t]))
                for s, t in zip(self.edge_source[keep], self.edge_target[keep])]

    def attractors(self) -> List[str]:
        """Ids of the attractor nodes."""
        return [str(n) for n, k in zip(self.node_id, self.node_kind) if k in ATTRACTOR_KINDS]

    def ends_unresolved(self) -> bool:
        """Whether some trajectory found no point attractor (a cycle, chaos, or a slow drift)."""
        rows = np.flatnonzero(self.node_id == "unresolved")
        return bool(len(rows) and np.any(self.edge_target == rows[0]))

    def signature(self) -> Signature:
        """Counts by kind and index, number of attractors and of connections."""
        kinds = ("stable", "saddle", "unstable", "slow", "ghost", "slow_region")
        counts = {k: int(np.sum(self.node_kind == k)) for k in kinds}
        for k in CYCLE_KINDS:  # only when present, so cycle-free signatures keep their keys
            if np.any(self.node_kind == k):
                counts[k] = int(np.sum(self.node_kind == k))
        fixed = np.isin(self.node_kind, ("stable", "saddle", "unstable"))
        values, n = np.unique(self.node_index[fixed], return_counts=True)
        return Signature(counts=counts, index_counts={int(v): int(c) for v, c in zip(values, n)},
                         n_attractors=int(np.isin(self.node_kind, ATTRACTOR_KINDS).sum())
                         + int(self.ends_unresolved()),
                         n_edges=int(self._edge_mask(1).sum()))

    def to_arrays(self, prefix: str = "topology.") -> Dict[str, np.ndarray]:
        """Arrays for an ``.npz`` (see :meth:`from_arrays`)."""
        return {prefix + name: np.asarray(getattr(self, name)) for name in self.ARRAYS}

    @classmethod
    def from_arrays(cls, arrays: Dict[str, np.ndarray], prefix: str = "topology.",
                    info: Optional[Dict[str, Any]] = None) -> "Topology":
        kw = {name: arrays[prefix + name] for name in cls.ARRAYS}
        kw["node_id"] = kw["node_id"].astype(str)
        kw["node_kind"] = kw["node_kind"].astype(str)
        return cls(**kw, info=dict(info or {}))


def same_topology(a: Topology, b: Topology, *, edges: bool = True,
                  max_source_index: Optional[int] = 1) -> bool:
    """Whether two topologies are the same up to relabelling.

    Parameters
    ----------
    a, b : Topology
    edges : bool, default True
        Compare the graphs (isomorphism with equal node kinds and indices); with False, only the
        node multisets (the signatures without edge counts).
    max_source_index : int or None, default 1
        Compare only edges whose source has at most this index (the robust ones, see the module
        docstring); None compares every edge.
    """
    import networkx as nx
    from networkx.algorithms.isomorphism import categorical_node_match

    sa, sb = a.signature(), b.signature()
    if not sa.points_equal(sb):
        return False
    if not edges:
        return True
    if sa.n_edges != sb.n_edges:
        return False
    match = categorical_node_match(["kind", "index"], [None, None])
    return nx.is_isomorphic(a.to_graph(max_source_index), b.to_graph(max_source_index),
                            node_match=match)


# ------------------------------------------------------------------------------ construction
def _unstable_directions(dynamics, x: np.ndarray) -> List[np.ndarray]:
    """Real unit vectors spanning the unstable subspace at each point: a list of (m_i, n)."""
    from fixedpoints.linearize import linearize

    if len(x) == 0:
        return []
    lin = linearize(dynamics, x)
    return [lin.unstable_directions(i) for i in range(len(x))]


def build_topology(dynamics: Dynamics, fixed_points: FixedPoints, ghosts: Optional[Ghosts] = None,
                   *, scale: Optional[float] = None,
                   eps: float = 1e-2, max_steps: int = 2000, reach: float = 0.05,
                   escape: float = 20.0, dt: Optional[float] = None,
                   check_every: int = 10, ghost_match: float = 0.05,
                   cycles=None) -> Topology:
    """Build the topology of one system.

    Parameters
    ----------
    dynamics : fixedpoints.Dynamics
    fixed_points : fixedpoints.FixedPoints
    ghosts : fixedpoints.ghosts.Ghosts, optional
        Ghosts (``.x (g, n)``, ``.n_unstable``); finder slow points within
        ``ghost_match · scale`` of a ghost are represented by the ghost.
    scale : float, optional
        Spread of the visited states; ``fixed_points.scale`` when omitted.
    eps : float, default 1e-2
        Offset along each unstable direction, relative to ``scale``.
    max_steps : int, default 2000
        Step budget of each trajectory (map iterations, or RK4 steps of ``dt``).
    reach : float, default 0.05
        A trajectory has reached an attractor within ``reach · scale`` of it.
    escape : float, default 20
        A trajectory farther than ``escape · scale`` from every point (or non-finite) escaped.
    dt : float, optional
        RK4 step in continuous time (``dynamics.dt`` when omitted).
    check_every : int, default 10
        Steps between arrival checks.
    ghost_match : float, default 0.05
        Relative distance under which a slow point and a ghost are the same node.
    cycles : fixedpoints.cycles.LimitCycles, optional
        Periodic orbits to add as nodes (stable ones are attractors).

    Returns
    -------
    Topology
    """
    fp = fixed_points
    n = int(dynamics.n_states)
    scale = float(fp.scale if scale is None else scale)
    if not np.isfinite(scale) or scale <= 0:
        scale = 1.0
    ids: List[str] = []
    kinds: List[str] = []
    index: List[int] = []
    refs: List[int] = []
    xs: List[np.ndarray] = []

    def add(node_id, kind, idx, ref, x):
        ids.append(node_id)
        kinds.append(kind)
        index.append(int(idx))
        refs.append(int(ref))
        xs.append(np.asarray(x, dtype=float).reshape(n))
        return len(ids) - 1

    ghost_x = (np.zeros((0, n)) if ghosts is None
               else np.asarray(ghosts.x, dtype=float).reshape(-1, n))
    ghost_index = (np.zeros(len(ghost_x), int) if ghosts is None
                   else np.asarray(ghosts.n_unstable, dtype=int).reshape(-1))
    fp_rows: Dict[int, int] = {}
    for i in range(len(fp)):
        kind = str(fp.kind[i])
        if kind == "slow":
            if (len(ghost_x)
                    and np.min(np.linalg.norm(ghost_x - fp.x[i], axis=1)) <= ghost_match * scale):
                continue  # represented by its ghost
            fp_rows[i] = add(node_id("slow", i), "slow", fp.n_unstable[i], i, fp.x[i])
        else:
            fp_rows[i] = add(node_id("fixed", i), kind, fp.n_unstable[i], i, fp.x[i])
    ghost_rows = [add(node_id("ghost", j), "ghost", ghost_index[j], j, ghost_x[j])
                  for j in range(len(ghost_x))]
    region_rows = []
    for r, region in enumerate(fp.slow_regions):
        region_rows.append(add(node_id("region", r), "slow_region", -1, r, region.center))
    cycle_list = list(cycles) if cycles is not None else []
    cycle_rows = [add(node_id("cycle", c), "limit_cycle" if cyc.stable else "unstable_cycle",
                      cyc.n_unstable, c, cyc.center) for c, cyc in enumerate(cycle_list)]
    escape_row = add("escape", "escape", -1, -1, np.full(n, np.nan))
    unresolved_row = add("unresolved", "unresolved", -1, -1, np.full(n, np.nan))

    # ---- starting states: unstable branches of fixed points, outflow of ghosts/slow points
    starts: List[np.ndarray] = []
    origin: List[int] = []
    unstable_fp = [i for i in fp_rows if str(fp.kind[i]) in ("saddle", "unstable")]
    directions = _unstable_directions(dynamics, fp.x[unstable_fp]) if unstable_fp else []
    for i, dirs in zip(unstable_fp, directions):
        for v in dirs:
            for sign in (1.0, -1.0):
                starts.append(fp.x[i] + sign * eps * scale * v)
                origin.append(fp_rows[i])
    for i, row in fp_rows.items():
        if str(fp.kind[i]) == "slow":
            starts.append(fp.x[i])
            origin.append(row)
    for j, row in enumerate(ghost_rows):
        starts.append(ghost_x[j])
        origin.append(row)

    # ---- attractor targets: stable fixed points and the points of slow regions
    target_x: List[np.ndarray] = []
    target_row: List[np.ndarray] = []
    for i, row in fp_rows.items():
        if str(fp.kind[i]) == "stable":
            target_x.append(fp.x[i][None])
            target_row.append(np.array([row]))
    for r, region in enumerate(fp.slow_regions):
        pts = np.asarray(region.points, dtype=float).reshape(-1, n)
        target_x.append(pts)
        target_row.append(np.full(len(pts), region_rows[r]))
    for c, cyc in enumerate(cycle_list):
        if cyc.stable:
            target_x.append(np.asarray(cyc.points, dtype=float).reshape(-1, n))
            target_row.append(np.full(len(cyc.points), cycle_rows[c]))
    targets = np.concatenate(target_x) if target_x else np.zeros((0, n))
    target_rows = np.concatenate(target_row) if target_row else np.zeros(0, int)

    ends = np.full(len(starts), -1, dtype=int)
    info: Dict[str, Any] = {"n_trajectories": len(starts), "eps": eps, "max_steps": max_steps,
                            "reach": reach, "scale": scale}
    if cycle_list:
        info["cycles"] = [cyc.to_dict() for cyc in cycle_list]
    if starts:
        all_points = np.array([x for x, k in zip(xs, kinds) if k not in SINK_NODES])
        ends, steps = _integrate(dynamics, np.array(starts), targets, target_rows,
                                 center=all_points.mean(0), scale=scale, reach=reach,
                                 escape=escape, max_steps=max_steps, dt=dt,
                                 check_every=check_every, eps=eps)
        info["steps"] = int(steps)
        ends = np.where(ends == -1, unresolved_row, np.where(ends == -2, escape_row, ends))
    counts: Dict[Tuple[int, int], int] = {}
    for o, e in zip(origin, ends):
        if o == e:  # a slow point that sits inside its own attractor region
            continue
        counts[(o, int(e))] = counts.get((o, int(e)), 0) + 1
    edge_items = sorted(counts.items())
    info["n_unresolved"] = int(np.sum(ends == unresolved_row))
    info["n_escaped"] = int(np.sum(ends == escape_row))
    return Topology(
        node_id=np.array(ids, dtype=str), node_kind=np.array(kinds, dtype=str),
        node_index=np.array(index, dtype=int), node_ref=np.array(refs, dtype=int),
        node_x=np.array(xs, dtype=float).reshape(len(ids), n),
        edge_source=np.array([k[0] for k, _ in edge_items], dtype=int),
        edge_target=np.array([k[1] for k, _ in edge_items], dtype=int),
        edge_branches=np.array([c for _, c in edge_items], dtype=int), info=info)


def _integrate(dynamics, starts: np.ndarray, targets: np.ndarray, target_rows: np.ndarray, *,
               center: np.ndarray, scale: float, reach: float, escape: float, max_steps: int,
               dt: Optional[float], check_every: int, eps: float):
    """Run all trajectories in one batch until each reaches a target, escapes, or time runs out.

    Returns the node row reached per trajectory (-1 unresolved, -2 escaped) and the steps used.
    A trajectory counts as arrived only once it has moved more than ``2·eps·scale`` away from
    its start, or when its start already lies within reach of a target after ``check_every``
    steps and it has stopped moving.
    """
    x = dynamics.states(starts)
    start = x.clone()
    tg = torch.as_tensor(targets, dtype=x.dtype, device=x.device)
    ctr = torch.as_tensor(center, dtype=x.dtype, device=x.device)
    result = np.full(len(starts), -1, dtype=int)
    active = torch.ones(len(starts), dtype=torch.bool, device=x.device)
    left_start = torch.zeros(len(starts), dtype=torch.bool, device=x.device)
    radius = reach * scale
    steps = 0
    with torch.no_grad():
        while steps < max_steps and bool(active.any()):
            idx = torch.nonzero(active).reshape(-1)
            xa = x[idx]
            for _ in range(min(check_every, max_steps - steps)):
                xa = dynamics.step(xa, None, dt)
            steps += min(check_every, max_steps - steps)
            x[idx] = xa
            finite = torch.isfinite(xa).all(1)
            far = torch.linalg.norm(torch.nan_to_num(xa, nan=0.0) - ctr, dim=1) > escape * scale
            gone = ~finite | far
            left_start[idx] |= torch.linalg.norm(xa - start[idx], dim=1) > 2 * eps * scale
            if len(tg):
                d = torch.cdist(torch.nan_to_num(xa), tg)
                dmin, arg = d.min(1)
                near = (dmin <= radius) & left_start[idx] & ~gone
                if steps >= max_steps:  # last chance: anything inside reach counts
                    near = (dmin <= radius) & ~gone
                near_np = near.cpu().numpy()
                result[idx.cpu().numpy()[near_np]] = target_rows[arg.cpu().numpy()[near_np]]
            else:
                near = torch.zeros_like(gone)
            result[idx[gone & ~near].cpu().numpy()] = -2
            done = near | gone
            active[idx[done]] = False
    return result, steps
