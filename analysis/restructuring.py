"""The restructuring curve: how fast the phase space changes, per epoch, interval by interval.

Restructuring is not only a change of topology: attractors can move apart and a saddle can become
more unstable through a loss drop while the set of fixed points stays the same. For each interval
between consecutive analyzed checkpoints k and k + 1 (``Δe = e_{k+1} − e_k`` epochs) three
dimensionless parts are measured (points are paired as the event rules pair them: the gated
matching of :mod:`analysis.events` plus its moves, with the same spread ``s``):

``topology``
    The number of restructuring events of the interval that change the topology (every kind
    except ``attractor_moved``).
``displacement``
    The mean distance a paired fixed point moved, relative to ``s``: ``mean |x_B − x_A| / s``.
``eigenvalue``
    The mean relative change of the paired points' leading stability margin μ (the largest real
    part of the Jacobian's eigenvalues in continuous time, ``log |λ|`` of the largest eigenvalue
    of the map in discrete time; μ > 0 is unstable): ``mean |μ_B − μ_A| / max(|μ_A|, |μ_B|,
    μ_floor)``, in [0, 2]. ``μ_floor`` (default 0.01) keeps nearly marginal points from
    dominating.

The **restructuring rate** of the interval is their sum per epoch::

    rate = (topology + displacement + eigenvalue) / Δe

so that unevenly spaced checkpoints (denser around the drop) are comparable: a per-epoch rate.

**Episodes** are runs of consecutive intervals that hold at least one event. An episode's
**signed lead** to the drop is ``drop.epoch − e`` where e is the epoch after its first interval
(the convention of event lead times: an event of an interval is dated at its later checkpoint);
positive when the episode came first. ``lead_bracket`` gives the same with both ends of that
first interval, since the restructuring happened somewhere inside it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

__all__ = ["IntervalRate", "Episode", "RestructuringCurve", "restructuring_curve",
           "leading_margin", "group_episodes", "describe_restructuring"]

#: Kinds that do not change the topology (counted in the displacement instead).
GEOMETRIC_KINDS = ("attractor_moved",)


@dataclass(frozen=True)
class IntervalRate:
    """The restructuring of one interval between checkpoints.

    Attributes
    ----------
    epoch_before, epoch_after : int
    topology : float
        Events that changed the topology.
    displacement : float
        Mean displacement of the paired fixed points relative to the spread.
    eigenvalue : float
        Mean relative change of their leading stability margin.
    rate : float
        ``(topology + displacement + eigenvalue) / (epoch_after − epoch_before)``.
    n_events : int
        All events of the interval (moves included).
    n_paired : int
        Fixed points paired across the interval.
    """

    epoch_before: int
    epoch_after: int
    topology: float
    displacement: float
    eigenvalue: float
    rate: float
    n_events: int
    n_paired: int

    def to_dict(self) -> Dict[str, Any]:
        return {"epoch_before": int(self.epoch_before), "epoch_after": int(self.epoch_after),
                "topology": float(self.topology), "displacement": float(self.displacement),
                "eigenvalue": float(self.eigenvalue), "rate": float(self.rate),
                "n_events": int(self.n_events), "n_paired": int(self.n_paired)}


@dataclass(frozen=True)
class Episode:
    """A run of consecutive intervals with events.

    Attributes
    ----------
    epoch_start, epoch_end : int
        The checkpoints bracketing the whole run.
    first_epoch : int
        The epoch after its first interval (where its first events are dated).
    n_events : int
    kinds : dict
        Events by kind.
    peak_rate : float
        Largest restructuring rate among its intervals.
    lead : float or None
        ``drop.epoch − first_epoch`` (positive: before the drop); None without a drop.
    lead_bracket : (float, float) or None
        ``drop.epoch − epoch_after`` and ``drop.epoch − epoch_before`` of the first interval.
    """

    epoch_start: int
    epoch_end: int
    first_epoch: int
    n_events: int
    kinds: Dict[str, int]
    peak_rate: float
    lead: Optional[float] = None
    lead_bracket: Optional[Tuple[float, float]] = None

    def to_dict(self) -> Dict[str, Any]:
        return {"epoch_start": int(self.epoch_start), "epoch_end": int(self.epoch_end),
                "first_epoch": int(self.first_epoch), "n_events": int(self.n_events),
                "kinds": dict(self.kinds), "peak_rate": float(self.peak_rate),
                "lead": self.lead,
                "lead_bracket": None if self.lead_bracket is None else list(self.lead_bracket)}


@dataclass(frozen=True)
class RestructuringCurve:
    """The restructuring rate per interval, and the episodes.

    Attributes
    ----------
    intervals : tuple of IntervalRate
    episodes : tuple of Episode
    drop_epoch : float or None
    """

    intervals: Tuple[IntervalRate, ...] = ()
    episodes: Tuple[Episode, ...] = ()
    drop_epoch: Optional[float] = None
    info: Dict[str, Any] = field(default_factory=dict)

    @property
    def first_episode(self) -> Optional[Episode]:
        return self.episodes[0] if self.episodes else None

    def midpoints(self) -> np.ndarray:
        """Middle epoch of each interval, shape (k,)."""
        return np.array([0.5 * (i.epoch_before + i.epoch_after) for i in self.intervals])

    def rates(self) -> np.ndarray:
        """Rate of each interval, shape (k,)."""
        return np.array([i.rate for i in self.intervals])

    def to_dict(self) -> Dict[str, Any]:
        first = self.first_episode
        return {"definition": "rate = (topology + displacement + eigenvalue) / epochs; see "
                              "analysis.restructuring",
                "curve": [i.to_dict() for i in self.intervals],
                "episodes": [e.to_dict() for e in self.episodes],
                "first_episode": None if first is None else first.to_dict(),
                "first_episode_lead": None if first is None else first.lead,
                "drop_epoch": self.drop_epoch}


def leading_margin(eigvals: np.ndarray, time: str) -> np.ndarray:
    """Leading stability margin μ of each point: max Re λ (continuous), log max |λ| (discrete).

    Parameters
    ----------
    eigvals : ndarray of shape (k, n), complex
    time : {"discrete", "continuous"}

    Returns
    -------
    ndarray of shape (k,)
    """
    eig = np.asarray(eigvals).reshape(len(eigvals), -1)
    if eig.shape[1] == 0:
        return np.zeros(len(eig))
    if time == "discrete":
        return np.log(np.maximum(np.max(np.abs(eig), axis=1), 1e-300))
    return np.max(np.real(eig), axis=1)


def _interval(before, after, events: Sequence[Any], event_options, mu_floor: float) -> IntervalRate:
    from .events import rule_moves, rule_state

    st = rule_state(before, after, event_options)
    rule_moves(st)
    pairs = [(int(i), int(j)) for i, j in st.mf.pairs] + [(i, j) for i, j, _ in st.moves]
    displacement = eigenvalue = 0.0
    if pairs:
        ia = np.array([p[0] for p in pairs])
        ib = np.array([p[1] for p in pairs])
        displacement = float(np.mean(np.linalg.norm(st.A.fx[ia] - st.B.fx[ib], axis=1))) / st.spread
        mu_a = leading_margin(st.A.f_eig[ia], st.A.time)
        mu_b = leading_margin(st.B.f_eig[ib], st.B.time)
        denom = np.maximum(np.maximum(np.abs(mu_a), np.abs(mu_b)), mu_floor)
        eigenvalue = float(np.mean(np.abs(mu_b - mu_a) / denom))
    mine = [e for e in events if e.epoch_before == before.epoch and e.epoch_after == after.epoch]
    topology = float(sum(1 for e in mine if e.kind not in GEOMETRIC_KINDS))
    span = max(float(after.epoch - before.epoch), 1.0)
    return IntervalRate(int(before.epoch), int(after.epoch), topology, displacement, eigenvalue,
                        (topology + displacement + eigenvalue) / span, len(mine), len(pairs))


def group_episodes(intervals: Sequence[IntervalRate], events: Sequence[Any],
                   drop_epoch: Optional[float] = None) -> List[Episode]:
    """Runs of consecutive intervals that hold events (see the module docstring)."""
    episodes: List[Episode] = []
    run: List[IntervalRate] = []
    for interval in list(intervals) + [None]:
        if interval is not None and interval.n_events > 0:
            run.append(interval)
            continue
        if run:
            episodes.append(_episode(run, events, drop_epoch))
            run = []
    return episodes


def _episode(run: Sequence[IntervalRate], events: Sequence[Any],
             drop_epoch: Optional[float]) -> Episode:
    brackets = {(i.epoch_before, i.epoch_after) for i in run}
    kinds: Dict[str, int] = {}
    for e in events:
        if (e.epoch_before, e.epoch_after) in brackets:
            kinds[e.kind] = kinds.get(e.kind, 0) + 1
    first = run[0]
    lead = bracket = None
    if drop_epoch is not None:
        lead = float(drop_epoch) - float(first.epoch_after)
        bracket = (float(drop_epoch) - float(first.epoch_after),
                   float(drop_epoch) - float(first.epoch_before))
    return Episode(epoch_start=first.epoch_before, epoch_end=run[-1].epoch_after,
                   first_epoch=first.epoch_after, n_events=sum(i.n_events for i in run),
                   kinds=kinds, peak_rate=max(i.rate for i in run), lead=lead,
                   lead_bracket=bracket)


def restructuring_curve(results: Sequence[Any], events: Sequence[Any],
                        drop_epoch: Optional[float] = None, event_options=None,
                        mu_floor: float = 0.01) -> RestructuringCurve:
    """The restructuring curve of a series.

    Parameters
    ----------
    results : sequence of EpochAnalysis, in epoch order
    events : sequence of RestructuringEvent
    drop_epoch : float, optional
    event_options : EventOptions or dict, optional
        The event rules' options (the same pairing and spread).
    mu_floor : float
        Floor of the eigenvalue part's denominator.

    Returns
    -------
    RestructuringCurve
    """
    if not (np.isfinite(mu_floor) and mu_floor > 0):
        raise ValueError(f"mu_floor={mu_floor!r} is invalid; pass a positive number")
    intervals = [_interval(a, b, events, event_options, mu_floor)
                 for a, b in zip(results[:-1], results[1:]) if a.n_states == b.n_states]
    drop = None if drop_epoch is None else float(drop_epoch)
    return RestructuringCurve(tuple(intervals), tuple(group_episodes(intervals, events, drop)),
                              drop, {"mu_floor": float(mu_floor)})


def describe_restructuring(curve: RestructuringCurve, drop=None) -> List[str]:
    """Lines for people: the drop, each episode with its signed lead, the peak rate.

    Parameters
    ----------
    curve : RestructuringCurve
    drop : analysis.learning.Drop, optional
    """
    lines = []
    if drop is not None:
        size = getattr(drop, "size", float("nan"))
        size_text = f", the loss fell {100 * size:.0f}%" if np.isfinite(size) else ""
        lines.append(f"loss drop: steepest at epoch {drop.epoch:g} (onset {drop.start_epoch:g}"
                     f"{size_text})")
    else:
        lines.append("loss drop: none found")
    if not curve.episodes:
        lines.append("restructuring: no episode (no event between consecutive checkpoints)")
        return lines
    for k, e in enumerate(curve.episodes):
        kinds = ", ".join(f"{v} {n}" for n, v in sorted(e.kinds.items()))
        lead = ""
        if e.lead is not None and e.lead_bracket is not None:
            lo, hi = sorted(e.lead_bracket)
            lead = (f"; lead to the drop {e.lead:+g} epochs (between {lo:+g} and {hi:+g}: "
                    f"{'before' if e.lead > 0 else 'after' if hi < 0 else 'around'} the drop)")
        lines.append(f"restructuring episode {k + 1}: epochs {e.epoch_start}–{e.epoch_end}, "
                     f"{kinds}, peak rate {e.peak_rate:.3g} per epoch{lead}")
        if k == 4 and len(curve.episodes) > 5:
            lines.append(f"... and {len(curve.episodes) - 5} more episodes (summary.json)")
            break
    return lines
