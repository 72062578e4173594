"""One projection shared by every epoch's phase portrait.

Portraits of different epochs are only comparable when they share axes. :class:`ProjectionFitter`
collects states from every epoch (streamed: a bounded random reservoir, never all states at
once) and fits one :class:`Projection`:

- ``"pca"``: the top principal components of the states of all epochs together;
- ``"latent"``: the latent coordinates κ = B x of a low-rank model (B = S_r for a rank-K leaky
  RNN, B = nᵀ for the rank-one RNN). The dynamics close exactly in κ (the nonlinearity sees x only
  through B x and the leak is linear), so the latent speed is exact, not a slice. B changes from
  epoch to epoch; the axis limits are shared;
- ``"identity"``: the state itself, for systems with one or two states.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["Projection", "ProjectionFitter", "latent_basis", "PROJECTION_KINDS"]

PROJECTION_KINDS = ("auto", "pca", "latent", "identity")


def latent_basis(model: Any) -> Optional[np.ndarray]:
    """The latent read-out ``B (K, n_states)`` of a low-rank model, or None.

    Recognized: a model with a ``latent_basis()`` method (returning B), the rank-one RNN (``n``),
    and a low-rank leaky RNN (``S_r``). For these, the recurrent drive depends on the state only
    through κ = B x and the leak is linear, so κ obeys closed K-dimensional dynamics.
    """
    if model is None:
        return None
    if callable(getattr(model, "latent_basis", None)):
        basis = model.latent_basis()
        if basis is None:
            return None
    elif getattr(model, "architecture", None) == "rank_one_rnn" and hasattr(model, "n"):
        basis = model.n
    elif getattr(model, "rank", None) is not None and hasattr(model, "S_r"):
        basis = model.S_r
    else:
        return None
    basis = basis.detach().cpu().double().numpy() if hasattr(basis, "detach") else np.asarray(
        basis, dtype=float)
    return np.atleast_2d(basis).astype(float)


@dataclass(frozen=True)
class Projection:
    """A map from states ``(..., n_states)`` to plot coordinates ``(..., n_components)``.

    Attributes
    ----------
    kind : {"pca", "latent", "identity"}
    n_states : int
    n_components : int
        1 or 2.
    mean : ndarray of shape (n_states,)
        Centre of the states (PCA); zeros otherwise.
    components : ndarray of shape (n_components, n_states)
        Orthonormal principal axes (PCA); the first unit vectors for ``identity``; empty for
        ``latent`` (each epoch brings its own basis).
    explained_variance_ratio : ndarray of shape (n_components,)
        Fraction of the variance of all epochs' states along each axis (PCA; NaN otherwise).
    limits : ndarray of shape (n_components, 2)
        Axis limits shared by all portraits.
    labels : tuple of str
        Axis labels.
    """

    kind: str
    n_states: int
    n_components: int
    mean: np.ndarray
    components: np.ndarray
    explained_variance_ratio: np.ndarray
    limits: np.ndarray
    labels: Tuple[str, ...]

    def _basis(self, basis: Optional[np.ndarray]) -> np.ndarray:
        if self.kind == "latent":
            if basis is None:
                raise ValueError("a latent projection needs each epoch's latent basis; pass "
                                 "basis=latent_basis(model)")
            basis = np.atleast_2d(np.asarray(basis, dtype=float))
            if basis.shape != (self.n_components, self.n_states):
                raise ValueError(f"latent basis has shape {basis.shape}, expected "
                                 f"({self.n_components}, {self.n_states})")
            return basis
        return self.components

    def transform(self, x: ArrayLike, basis: Optional[np.ndarray] = None) -> np.ndarray:
        """Plot coordinates of states ``x (..., n_states)`` -> ``(..., n_components)``."""
        x = np.asarray(x, dtype=float)
        return (x - self.mean) @ self._basis(basis).T

    def transform_direction(self, v: ArrayLike,
                            basis: Optional[np.ndarray] = None) -> np.ndarray:
        """Plot-space image of direction vectors ``v (..., n_states)`` (no centring)."""
        return np.asarray(v, dtype=float) @ self._basis(basis).T

    def lift(self, z: ArrayLike, basis: Optional[np.ndarray] = None) -> np.ndarray:
        """States ``(..., n_states)`` that project to ``z (..., n_components)``.

        PCA and identity: the point of the plane through the mean; latent: the minimum-norm state
        with B x = z (exact for the latent dynamics, whose velocity in κ depends only on κ).
        """
        z = np.asarray(z, dtype=float)
        if self.kind == "latent":
            return z @ np.linalg.pinv(self._basis(basis)).T
        return self.mean + z @ self.components

    @property
    def exact(self) -> bool:
        """Whether the speed in these coordinates is the system's own (identity, latent)."""
        return self.kind in ("latent", "identity")

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready description (arrays as lists)."""
        return {"kind": self.kind, "n_states": self.n_states, "n_components": self.n_components,
                "mean": self.mean.tolist(), "components": self.components.tolist(),
                "explained_variance_ratio": [None if np.isnan(v) else float(v)
                                             for v in self.explained_variance_ratio],
                "limits": self.limits.tolist(), "labels": list(self.labels)}

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "Projection":
        n, d = int(data["n_states"]), int(data["n_components"])
        return cls(kind=data["kind"], n_states=n, n_components=d,
                   mean=np.asarray(data["mean"], dtype=float).reshape(n),
                   components=np.asarray(data["components"], dtype=float).reshape(-1, n),
                   explained_variance_ratio=np.asarray(
                       [np.nan if v is None else v for v in data["explained_variance_ratio"]],
                       dtype=float),
                   limits=np.asarray(data["limits"], dtype=float).reshape(d, 2),
                   labels=tuple(data["labels"]))

    def key(self) -> str:
        """A short hash of the projection (portraits drawn with it can be reused)."""
        import hashlib
        text = json.dumps(self.to_dict(), sort_keys=True, default=float)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class ProjectionFitter:
    """Accumulate states from every epoch, then :meth:`fit` one :class:`Projection`.

    Memory stays bounded: a uniform random reservoir of at most ``reservoir`` visited states
    (every state seen so far is kept with the same probability) plus the points of each epoch.
    The principal axes are those of the reservoir and the points, after dropping states more
    than ten times the median distance from the median (runaway trajectories); with fewer
    states than ``reservoir`` this is the exact PCA of everything added.

    Parameters
    ----------
    kind : {"auto", "pca", "latent", "identity"}
        ``auto``: latent when every epoch brought a basis of one common rank ≤ 2, identity for
        one- or two-state systems, PCA otherwise.
    n_components : int, default 2
    reservoir : int, default 20000
    seed : int, default 0
    """

    kind: str = "auto"
    n_components: int = 2
    reservoir: int = 20000
    seed: int = 0
    n_states: Optional[int] = None
    _count: int = 0
    _rows: Optional[np.ndarray] = None       # reservoir of states
    _seen: int = 0
    _points: list = field(default_factory=list)         # per epoch: points (always in limits)
    _latent_rows: list = field(default_factory=list)    # per epoch: sampled latent coordinates
    _latent_points: list = field(default_factory=list)  # per epoch: points in latent coordinates
    _ranks: set = field(default_factory=set)
    _epochs: int = 0
    _latent_epochs: int = 0

    def __post_init__(self):
        if self.kind not in PROJECTION_KINDS:
            raise ValueError(f"projection kind {self.kind!r} is unknown; use one of "
                             f"{', '.join(PROJECTION_KINDS)}")
        if self.n_components not in (1, 2):
            raise ValueError(f"n_components={self.n_components}; portraits use 1 or 2")
        self._rng = np.random.default_rng(self.seed)

    def add(self, states: ArrayLike, basis: Optional[np.ndarray] = None,
            points: Optional[ArrayLike] = None) -> None:
        """Add one epoch.

        Parameters
        ----------
        states : array of shape (..., n_states)
            States visited (trajectories); they set the principal axes and, robustly, the limits.
        basis : array of shape (K, n_states), optional
            The epoch's latent basis (:func:`latent_basis`) for low-rank models.
        points : array of shape (..., n_states), optional
            Fixed points, ghosts and the like: always inside the limits.
        """
        x = _finite_rows(states)
        if self.n_states is None:
            self.n_states = x.shape[1]
        elif x.shape[1] != self.n_states:
            raise ValueError(f"states have {x.shape[1]} columns, earlier epochs had "
                             f"{self.n_states}; one projection needs one state size")
        extra = (_finite_rows(points).reshape(-1, self.n_states) if points is not None
                 else np.empty((0, self.n_states)))
        self._epochs += 1
        if basis is not None:
            basis = np.atleast_2d(np.asarray(basis, dtype=float))
            self._ranks.add(basis.shape[0])
            self._latent_epochs += 1
        if len(x) + len(extra) == 0:
            return
        self._count += len(x) + len(extra)
        self._rows = self._sample(self._rows, x)
        if len(extra):
            self._points.append(extra)
        if basis is not None:
            keep = self._rng.permutation(len(x))[:max(1, self.reservoir // 50)]
            self._latent_rows.append(x[keep] @ basis.T)
            if len(extra):
                self._latent_points.append(extra @ basis.T)

    def _sample(self, rows: Optional[np.ndarray], x: np.ndarray) -> np.ndarray:
        """Reservoir sampling: every state seen so far is kept with the same probability."""
        if rows is None:
            rows = np.empty((0, x.shape[1]))
        take = min(len(x), self.reservoir - len(rows))
        if take > 0:
            rows = np.vstack([rows, x[:take]])
        rest = x[take:]
        if len(rest):
            positions = self._seen + take + np.arange(1, len(rest) + 1)
            slots = (self._rng.random(len(rest)) * positions).astype(int)
            hit = slots < self.reservoir
            rows[slots[hit]] = rest[hit]
        self._seen += len(x)
        return rows

    def resolved_kind(self) -> str:
        """The kind :meth:`fit` will use."""
        if self.kind != "auto":
            return self.kind
        if (self._latent_epochs and self._latent_epochs == self._epochs and len(self._ranks) == 1
                and next(iter(self._ranks)) <= 2):
            return "latent"
        if self.n_states is not None and self.n_states <= 2:
            return "identity"
        return "pca"

    def fit(self) -> Projection:
        """The projection for everything added so far."""
        if self._count == 0 or self.n_states is None or self._rows is None:
            raise ValueError("no finite states were added; the projection needs at least one "
                             "epoch with trajectories or points")
        kind = self.resolved_kind()
        n = self.n_states
        labels: Tuple[str, ...]
        if kind == "latent":
            if not self._latent_rows:
                raise ValueError("projection kind 'latent' needs a low-rank model (a latent "
                                 "basis for every epoch); use kind='pca'")
            d = next(iter(self._ranks)) if len(self._ranks) == 1 else 0
            if d not in (1, 2):
                raise ValueError(f"latent coordinates have rank {sorted(self._ranks)}; portraits "
                                 f"show 1 or 2; use kind='pca'")
            labels = ("κ",) if d == 1 else ("κ₁", "κ₂")
            return Projection("latent", n, d, np.zeros(n), np.zeros((0, n)),
                              np.full(d, np.nan),
                              _limits(np.vstack(self._latent_rows), self._latent_points), labels)
        if kind == "identity":
            d = min(n, self.n_components)
            components = np.eye(n)[:d]
            labels = ("x",) if n == 1 else ("x₁", "x₂")[:d]
            return Projection("identity", n, d, np.zeros(n), components, np.full(d, np.nan),
                              _limits(self._rows[:, :d], [p[:, :d] for p in self._points]),
                              labels)
        d = min(self.n_components, n)
        data = np.vstack([_trim_outliers(self._rows), *self._points])
        mean = data.mean(axis=0)
        covariance = np.cov(data, rowvar=False, bias=True).reshape(n, n)
        values, vectors = np.linalg.eigh(covariance)
        order = np.argsort(values)[::-1]
        values, vectors = np.clip(values[order], 0, None), vectors[:, order]
        components = vectors[:, :d].T.copy()
        # a sign convention so that refits give the same picture: largest loading positive
        for row in components:
            if row[np.argmax(np.abs(row))] < 0:
                row *= -1
        total = values.sum()
        ratio = values[:d] / total if total > 0 else np.full(d, np.nan)
        projected = (self._rows - mean) @ components.T
        points = [(p - mean) @ components.T for p in self._points]
        labels = tuple(f"PC{i + 1} ({100 * r:.0f}%)" if np.isfinite(r) else f"PC{i + 1}"
                       for i, r in enumerate(ratio))
        return Projection("pca", n, d, mean, components, ratio, _limits(projected, points),
                          labels)


def _trim_outliers(rows: np.ndarray, factor: float = 10.0) -> np.ndarray:
    """Rows within ``factor`` times the median distance of the coordinate-wise median (a few
    diverging states would otherwise become the first principal component)."""
    if len(rows) < 10:
        return rows
    distance = np.linalg.norm(rows - np.median(rows, axis=0), axis=1)
    typical = np.median(distance)
    if not np.isfinite(typical) or typical <= 0:
        return rows
    return rows[distance <= factor * typical]


def _finite_rows(values) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    x = x.reshape(-1, x.shape[-1]) if x.ndim else x.reshape(1, 1)
    return x[np.all(np.isfinite(x), axis=1)]


def _limits(values: np.ndarray, include=(), pad: float = 0.08) -> np.ndarray:
    """Axis limits ``(d, 2)``: the central 99.6% of ``values`` (so a few runaway states do not
    squash the picture), widened to contain every row of ``include``, padded on each side."""
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        values = np.vstack([e for e in include if len(e)])
    lo = np.percentile(values, 0.2, axis=0)
    hi = np.percentile(values, 99.8, axis=0)
    for extra in include:
        if len(extra):
            lo = np.minimum(lo, extra.min(axis=0))
            hi = np.maximum(hi, extra.max(axis=0))
    span = hi - lo
    span = np.where(span > 0, span, np.maximum(1.0, np.abs(lo)))
    return np.stack([lo - pad * span, hi + pad * span], axis=1)
