"""Match points between consecutive checkpoints and follow them across epochs.

Points of two epochs are paired by an optimal assignment (``scipy.optimize.linear_sum_assignment``)
on their Euclidean distances; pairs farther apart than a gate are not matched. The gate is
relative to the spread of the states (``gate = gate_factor · spread``, the spread being the RMS
distance of the visited states to their centroid, averaged over the two epochs), so it means the
same thing for a network whose states live in [-1, 1] and one whose states reach 100.

Pairs beyond the gate are forbidden *before* the assignment (their cost is made prohibitive),
so a far pair never blocks a near one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from fixedpoints.initial import state_spread  # the one definition of a spread, re-exported

__all__ = ["Matching", "match_points", "state_spread", "Track", "build_tracks"]


@dataclass(frozen=True)
class Matching:
    """A matching between points ``a`` (before) and ``b`` (after).

    Attributes
    ----------
    pairs : ndarray of shape (m, 2), int
        Matched (row in a, row in b), sorted by row in a.
    distance : ndarray of shape (m,)
        Distance of each matched pair.
    unmatched_a : ndarray of shape (p,), int
        Rows of a without a partner (disappeared).
    unmatched_b : ndarray of shape (r,), int
        Rows of b without a partner (appeared).
    gate : float
        Largest distance allowed for a pair.
    """

    pairs: np.ndarray
    distance: np.ndarray
    unmatched_a: np.ndarray
    unmatched_b: np.ndarray
    gate: float

    def partner_of_a(self) -> Dict[int, int]:
        """Map row in a -> row in b."""
        return {int(i): int(j) for i, j in self.pairs}

    def partner_of_b(self) -> Dict[int, int]:
        """Map row in b -> row in a."""
        return {int(j): int(i) for i, j in self.pairs}


def match_points(a: np.ndarray, b: np.ndarray, gate: float) -> Matching:
    """Optimal one-to-one matching of two point sets with a distance gate.

    Parameters
    ----------
    a : ndarray of shape (k, n)
    b : ndarray of shape (l, n)
    gate : float
        Pairs farther apart than this are never matched.

    Returns
    -------
    Matching
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.ndim != 2 or b.ndim != 2 or (len(a) and len(b) and a.shape[1] != b.shape[1]):
        raise ValueError(f"match_points needs two arrays of shape (k, n) and (l, n); got "
                         f"{a.shape} and {b.shape}")
    if not np.isfinite(gate) or gate < 0:
        raise ValueError(f"gate={gate!r} is invalid; pass a non-negative distance")
    empty = np.zeros((0, 2), int)
    if len(a) == 0 or len(b) == 0:
        return Matching(empty, np.zeros(0), np.arange(len(a)), np.arange(len(b)), float(gate))
    d = cdist(a, b)
    allowed = d <= gate
    big = 1e6 * (1.0 + float(np.max(d)))
    rows, cols = linear_sum_assignment(np.where(allowed, d, big))
    ok = allowed[rows, cols]
    rows, cols = rows[ok], cols[ok]
    order = np.argsort(rows)
    rows, cols = rows[order], cols[order]
    return Matching(pairs=np.stack([rows, cols], 1).astype(int), distance=d[rows, cols],
                    unmatched_a=np.setdiff1d(np.arange(len(a)), rows),
                    unmatched_b=np.setdiff1d(np.arange(len(b)), cols), gate=float(gate))


@dataclass(frozen=True)
class Track:
    """One point followed across consecutive epochs.

    Attributes
    ----------
    track_id : int
    family : str
        ``"fixed"`` (fixed points of any index) or ``"ghost"``.
    epochs : tuple of int
        Epochs where the point exists (consecutive analyzed epochs).
    rows : tuple of int
        Its row in each epoch's point set.
    kinds : tuple of str
        Its kind at each epoch.
    n_unstable : tuple of int
        Its index at each epoch.
    x : ndarray of shape (len(epochs), n_states)
        Its location at each epoch.
    """

    track_id: int
    family: str
    epochs: Tuple[int, ...]
    rows: Tuple[int, ...]
    kinds: Tuple[str, ...]
    n_unstable: Tuple[int, ...]
    x: np.ndarray

    def __len__(self) -> int:
        return len(self.epochs)

    def to_dict(self) -> Dict:
        return {"track_id": self.track_id, "family": self.family, "epochs": list(self.epochs),
                "rows": list(self.rows), "kinds": list(self.kinds),
                "n_unstable": [int(v) for v in self.n_unstable]}


def build_tracks(epochs: Sequence[int], points: Sequence[Tuple[np.ndarray, np.ndarray, np.ndarray]],
                 matchings: Sequence[Matching], family: str = "fixed") -> List[Track]:
    """Chain consecutive matchings into tracks.

    Parameters
    ----------
    epochs : sequence of int, length E
    points : sequence of (x (k_e, n), kind (k_e,), n_unstable (k_e,)), length E
    matchings : sequence of Matching, length E - 1
        ``matchings[e]`` matches epoch e's points (a) to epoch e+1's (b).
    family : str

    Returns
    -------
    list of Track
        Sorted by first epoch, then row.
    """
    if len(matchings) != max(len(epochs) - 1, 0) or len(points) != len(epochs):
        raise ValueError(f"build_tracks needs E epochs, E point sets and E-1 matchings; got "
                         f"{len(epochs)}, {len(points)} and {len(matchings)}")
    open_tracks: Dict[int, List[Tuple[int, int]]] = {}  # row in current epoch -> [(e, row)]
    finished: List[List[Tuple[int, int]]] = []
    if len(epochs):
        open_tracks = {r: [(0, r)] for r in range(len(points[0][0]))}
    for e, m in enumerate(matchings):
        partner = m.partner_of_a()
        new_open: Dict[int, List[Tuple[int, int]]] = {}
        for row, chain in open_tracks.items():
            if row in partner:
                chain.append((e + 1, partner[row]))
                new_open[partner[row]] = chain
            else:
                finished.append(chain)
        for row in range(len(points[e + 1][0])):
            if row not in new_open:
                new_open[row] = [(e + 1, row)]
        open_tracks = new_open
    finished.extend(open_tracks.values())
    finished.sort(key=lambda c: (c[0][0], c[0][1]))
    tracks = []
    for tid, chain in enumerate(finished):
        x = np.array([points[e][0][r] for e, r in chain])
        tracks.append(Track(track_id=tid, family=family,
                            epochs=tuple(int(epochs[e]) for e, _ in chain),
                            rows=tuple(int(r) for _, r in chain),
                            kinds=tuple(str(points[e][1][r]) for e, r in chain),
                            n_unstable=tuple(int(points[e][2][r]) for e, r in chain), x=x))
    return tracks
