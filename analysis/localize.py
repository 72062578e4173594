"""Where between two checkpoints an event happens: bisection along the interpolated weights.

The weights are interpolated linearly, ``θ(α) = (1 − α) θ_before + α θ_after`` for α in [0, 1]
(:func:`interpolate_modules` for torch modules; a user callable ``alpha -> Dynamics`` for
synthetic systems). A test that tells "before-like" from "after-like" is evaluated at α and the
interval is halved until it is shorter than ``tol``:

* ``saddle_node``, ``pitchfork``, ``birth``, ``death``: the number of fixed points near the
  event's location (within ``radius``), found by polishing seeds placed at the points of both
  checkpoints near there and a small cloud around the location; before-like while the count
  equals the count at α = 0;
* ``stability_change``: the index of the fixed point nearest to the tracked point; before-like
  while it equals the index before;
* ``ghost_appeared``, ``ghost_vanished``: the number of slow points (local minima of q that are
  not fixed points) near the location.

Other kinds (moves, connection changes, attractor counts) are gradual or global and are not
localized. At the end the result reports, at the two sides of the final bracket, the minimal
speed q near the location and the eigenvalue closest to the stability boundary (for a
saddle-node: the pair's marginal eigenvalue before, the ghost's speed after; for a stability
change: the crossing eigenvalue).
"""
from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional

import numpy as np

from .topology import parse_node_id

if TYPE_CHECKING:
    from .epoch import EpochAnalysis
    from .events import RestructuringEvent

__all__ = ["Localization", "localize_event", "interpolate_modules", "LOCALIZABLE"]

logger = logging.getLogger(__name__)

#: Event kinds that :func:`localize_event` can place.
LOCALIZABLE = ("saddle_node", "pitchfork", "birth", "death", "stability_change",
               "ghost_appeared", "ghost_vanished")


@dataclass(frozen=True)
class Localization:
    """Where on the path between two checkpoints an event happens.

    Attributes
    ----------
    alpha : float or None
        Midpoint of the final bracket (None when the event could not be localized).
    alpha_low, alpha_high : float
        The final bracket: before-like at ``alpha_low``, after-like at ``alpha_high``.
    n_evaluations : int
    measure : dict
        At both ends of the bracket: ``min_speed`` (smallest q near the location),
        ``margin`` (signed distance to the stability boundary of the eigenvalue closest to it
        among points near the location; discrete: ``|λ| − 1``, continuous: ``Re λ``) and that
        ``eigval``; keys suffixed ``_low`` / ``_high``.
    converged : bool
    message : str
    """

    alpha: Optional[float]
    alpha_low: float
    alpha_high: float
    n_evaluations: int
    measure: Dict[str, Any] = field(default_factory=dict)
    converged: bool = False
    message: str = ""

    def to_dict(self) -> Dict[str, Any]:
        return {"alpha": self.alpha, "alpha_low": self.alpha_low, "alpha_high": self.alpha_high,
                "n_evaluations": self.n_evaluations, "measure": self.measure,
                "converged": self.converged, "message": self.message}


def interpolate_modules(module_a: Any, module_b: Any, alpha: float) -> Any:
    """A copy of ``module_a`` whose floating-point weights are ``(1 − α) θ_a + α θ_b``.

    Parameters
    ----------
    module_a, module_b : torch.nn.Module
        Same architecture (same state-dict keys and shapes).
    alpha : float

    Returns
    -------
    torch.nn.Module
    """
    import torch

    sa, sb = module_a.state_dict(), module_b.state_dict()
    if set(sa) != set(sb):
        raise ValueError(f"cannot interpolate: the state dicts differ in keys "
                         f"{sorted(set(sa) ^ set(sb))[:6]}; both checkpoints must hold the same "
                         f"model")
    mixed = {}
    for key, a in sa.items():
        b = sb[key]
        if a.shape != b.shape:
            raise ValueError(f"cannot interpolate {key}: shapes {tuple(a.shape)} and "
                             f"{tuple(b.shape)} differ")
        mixed[key] = (1 - alpha) * a + alpha * b if torch.is_floating_point(a) else a
    out = copy.deepcopy(module_a)
    out.load_state_dict(mixed)
    return out


def _margin(eig: np.ndarray, time: str) -> np.ndarray:
    return np.abs(eig) - 1.0 if time == "discrete" else np.real(eig)


class _Probe:
    """Evaluates the local structure of the system at α near one location."""

    def __init__(self, system_at: Callable[[float], Any], location: np.ndarray, radius: float,
                 seeds: np.ndarray, finder_options: Dict[str, Any], seed: int = 0):
        self.system_at = system_at
        self.location = location
        self.radius = radius
        rng = np.random.default_rng(seed)
        n = location.shape[0]
        cloud = location + (0.5 * radius / math.sqrt(n)) * rng.standard_normal((48, n))
        self.seeds = np.concatenate([seeds.reshape(-1, n), location[None], cloud])
        self.finder_options = {"seed_midpoints": True, **finder_options}
        self.n_evaluations = 0
        self.cache: Dict[float, Any] = {}

    def points(self, alpha: float):
        """Fixed and slow points near the location at α (cached)."""
        from fixedpoints import find_fixed_points

        if alpha in self.cache:
            return self.cache[alpha]
        import warnings

        dyn = self.system_at(alpha)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fp = find_fixed_points(dyn, self.seeds, **self.finder_options)
        near = np.linalg.norm(fp.x - self.location, axis=1) <= self.radius if len(fp) else \
            np.zeros(0, bool)
        result = (fp[near], dyn.time)
        self.cache[alpha] = result
        self.n_evaluations += 1
        return result

    def fixed_count(self, alpha: float) -> int:
        fp, _ = self.points(alpha)
        return int(np.sum(fp.kind != "slow"))

    def slow_count(self, alpha: float) -> int:
        fp, _ = self.points(alpha)
        return int(np.sum(fp.kind == "slow"))

    def index_of_nearest(self, alpha: float, target: np.ndarray) -> Optional[int]:
        fp, _ = self.points(alpha)
        fixed = np.flatnonzero(fp.kind != "slow")
        if not len(fixed):
            return None
        d = np.linalg.norm(fp.x[fixed] - target, axis=1)
        return int(fp.n_unstable[fixed[int(np.argmin(d))]])

    def measure(self, alpha: float) -> Dict[str, Any]:
        fp, time = self.points(alpha)
        out: Dict[str, Any] = {"n_fixed": int(np.sum(fp.kind != "slow")),
                               "n_slow": int(np.sum(fp.kind == "slow")),
                               "min_speed": float(np.min(fp.speed)) if len(fp) else None}
        if len(fp):
            m = _margin(fp.eigvals, time)
            i, j = np.unravel_index(int(np.argmin(np.abs(m))), m.shape)
            eig = fp.eigvals[i, j]
            out.update(margin=float(m[i, j]), eigval=[float(np.real(eig)), float(np.imag(eig))])
        return out


def localize_event(event: RestructuringEvent, system_at: Callable[[float], Any], *,
                   before: Optional[EpochAnalysis] = None, after: Optional[EpochAnalysis] = None,
                   tol: float = 1e-3, max_evaluations: int = 40, radius: Optional[float] = None,
                   finder_options: Optional[Dict[str, Any]] = None) -> Localization:
    """Bisect along the straight path between two checkpoints to find where an event happens.

    Parameters
    ----------
    event : analysis.events.RestructuringEvent
    system_at : callable
        ``system_at(alpha) -> fixedpoints.Dynamics`` on the path (α = 0: the checkpoint before,
        α = 1: the one after).
    before, after : analysis.EpochAnalysis, optional
        The two analyses; their points near the event seed the search at every α, and their
        spread sets the default radius.
    tol : float, default 1e-3
        Stop when the bracket is shorter than this.
    max_evaluations : int, default 40
    radius : float, optional
        Only points within this distance of the event's location count. Default: the larger of
        0.3 × spread and 1.5 × the largest distance of the event's points to its location.
    finder_options : dict, optional
        Options for :func:`fixedpoints.find_fixed_points`.

    Returns
    -------
    Localization
    """
    if event.kind not in LOCALIZABLE:
        return Localization(None, 0.0, 1.0, 0, {}, False,
                            f"{event.kind} events are gradual or global; not localized")
    if event.location is None:
        return Localization(None, 0.0, 1.0, 0, {}, False, "the event has no location")
    location = np.asarray(event.location, dtype=float).reshape(-1)
    spread = np.mean([r.scale for r in (before, after) if r is not None] or [1.0])
    pts = _event_points(event, before, after)
    if radius is None:
        far = max([float(np.linalg.norm(p - location)) for p in pts] or [0.0])
        radius = max(0.3 * spread, 1.5 * far)
    seeds = list(pts)
    for r in (before, after):
        if r is None:
            continue
        x = r.fixed_points.x
        if len(x):
            seeds.extend(x[np.linalg.norm(x - location, axis=1) <= radius])
        if r.ghosts is not None and len(r.ghosts.x):
            g = np.asarray(r.ghosts.x)
            seeds.extend(g[np.linalg.norm(g - location, axis=1) <= radius])
    seeds_arr = np.array(seeds).reshape(-1, location.shape[0]) if seeds else \
        np.zeros((0, location.shape[0]))
    probe = _Probe(system_at, location, radius, seeds_arr, dict(finder_options or {}))

    if event.kind == "stability_change":
        target = location
        index_before = int(event.detail["index_before"])

        def before_like(alpha):
            return probe.index_of_nearest(alpha, target) == index_before
    elif event.kind in ("ghost_appeared", "ghost_vanished"):
        reference = probe.slow_count(0.0)

        def before_like(alpha):
            return probe.slow_count(alpha) == reference
    else:
        reference = probe.fixed_count(0.0)

        def before_like(alpha):
            return probe.fixed_count(alpha) == reference

    lo, hi = 0.0, 1.0
    if not before_like(lo) or before_like(hi):
        return Localization(None, lo, hi, probe.n_evaluations,
                            {**_suffix(probe.measure(lo), "_low"),
                             **_suffix(probe.measure(hi), "_high")},
                            False, "the test does not separate the two checkpoints (the event "
                                   "may depend on the search's seeds); not localized")
    while hi - lo > tol and probe.n_evaluations < max_evaluations:
        mid = 0.5 * (lo + hi)
        if before_like(mid):
            lo = mid
        else:
            hi = mid
    measure = {**_suffix(probe.measure(lo), "_low"), **_suffix(probe.measure(hi), "_high")}
    converged = hi - lo <= tol
    return Localization(0.5 * (lo + hi), lo, hi, probe.n_evaluations, measure, converged,
                        "converged" if converged else
                        f"stopped after {probe.n_evaluations} evaluations (max_evaluations)")


def _suffix(d: Dict[str, Any], suffix: str) -> Dict[str, Any]:
    return {k + suffix: v for k, v in d.items()}


def _event_points(event, before, after):
    """Locations of the event's points (from the two analyses), as a list of arrays."""
    out = []
    for ref in event.points:
        side, _, node = ref.partition("/")
        r = before if side == "before" else after
        if r is None:
            continue
        parsed = parse_node_id(node)
        if parsed is None:
            continue
        family, i = parsed
        if family in ("fixed", "slow") and i < len(r.fixed_points.x):
            out.append(np.asarray(r.fixed_points.x[i], float))
        elif family == "ghost" and r.ghosts is not None and i < len(r.ghosts.x):
            out.append(np.asarray(r.ghosts.x[i], float))
    return out
