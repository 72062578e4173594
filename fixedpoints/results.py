"""Result objects of the finder: frozen dataclasses of numpy arrays, saved as ``.npz`` + ``.json``.

Points are on axis 0 (a struct of arrays): ``x[i]``, ``speed[i]``, ``eigvals[i]`` ... describe
point ``i``. Nothing here is ever pickled: arrays go to an ``.npz`` loaded with
``allow_pickle=False`` and everything else to a human-readable ``.json``.
"""
from __future__ import annotations

import enum
import json
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np

from .serialization import atomic_write, json_float_field, json_text, to_json, write_text

__all__ = ["FinderStatus", "FixedPoints", "PointArrays", "SlowRegion", "KINDS", "save_result",
           "load_result"]

#: Point kinds, in display order. ``slow`` is a local minimum of q with q > 0.
KINDS = ("stable", "saddle", "unstable", "slow")


class FinderStatus(enum.Enum):
    """How a search ended. Each value is a message that says what to change."""

    CONVERGED = ("converged: every kept point is a fixed point (q at round-off) or a converged "
                 "slow point")
    MAX_ITER = ("hit max_iter before some points converged; they were dropped. Raise max_iter or "
                "newton_steps, or start closer (sample initial states from trajectories)")
    NON_FINITE = ("the velocity became NaN/inf at some states; those points were dropped. Check "
                  "the weights, or keep initial states inside the region the network visits")
    BUDGET = ("the polish budget ran out before every candidate was polished (the slowest were "
              "done first); raise polish_budget, or pass fewer initial states")
    NONE_FOUND = ("no fixed or slow point was found; sample more initial states, add noise, or "
                  "raise slow_tol to accept slower points")


def _as_path(path: Union[str, os.PathLike]) -> Path:
    p = Path(path)
    if p.suffix in (".npz", ".json"):
        p = p.with_suffix("")
    return p


@dataclass(frozen=True)
class SlowRegion:
    """A connected set of slow or fixed points: a line attractor, ring, or slow manifold.

    Attributes
    ----------
    points : ndarray of shape (m, n_states)
        The converged points that make it up.
    speed : ndarray of shape (m,)
        q at each of them.
    dimension : int
        Estimated dimension (principal components needed for 95% of the variance of ``points``,
        capped by the median number of marginal Jacobian eigenvalues).
    center : ndarray of shape (n_states,)
    axes : ndarray of shape (dimension, n_states)
        Orthonormal principal axes of the region.
    extent : ndarray of shape (dimension,)
        Range (max - min) of the points along each axis.
    """

    points: np.ndarray
    speed: np.ndarray
    dimension: int
    center: np.ndarray
    axes: np.ndarray
    extent: np.ndarray

    def to_dict(self) -> Dict[str, Any]:
        return {"n_points": int(len(self.points)), "dimension": int(self.dimension),
                "center": self.center.tolist(), "extent": self.extent.tolist(),
                "max_speed": float(np.max(self.speed)) if len(self.speed) else 0.0}


class PointArrays:
    """Container protocol of point results: one row per point on axis 0 of each ``_ARRAYS`` field.

    ``len()`` counts points; indexing with an int, slice, index array or boolean mask returns
    the same result type holding those rows (the other fields are kept).
    """

    _ARRAYS: tuple = ()
    x: np.ndarray  # every point result has its locations, shape (n, n_states)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        return replace(self, **{name: getattr(self, name)[index] for name in self._ARRAYS})

    @property
    def n_states(self) -> int:
        return int(self.x.shape[1])


@dataclass(frozen=True)
class FixedPoints(PointArrays):
    """Fixed points and slow points of one system at one input.

    Attributes
    ----------
    x : ndarray of shape (k, n_states)
        Locations.
    speed : ndarray of shape (k,)
        q(x) = ½‖v(x)‖² at each point.
    eigvals : ndarray of shape (k, n_states), complex
        Jacobian eigenvalues in the system's native form: of ``J_v`` in continuous time (stable:
        all real parts < 0), of the map ``∂F/∂x`` in discrete time (stable: all moduli < 1),
        sorted by decreasing real part (continuous) or modulus (discrete).
    kind : ndarray of shape (k,), str
        One of ``stable``, ``saddle``, ``unstable`` (fixed points by index) or ``slow`` (local
        minimum of q above the fixed-point tolerance).
    n_unstable : ndarray of shape (k,), int
        Number of unstable directions (the index).
    time : {"discrete", "continuous"}
    status : FinderStatus
    slow_regions : tuple of SlowRegion
        Connected sets of slow/fixed points reported as regions instead of as points.
    q_fixed : float
        Points with ``speed <= q_fixed`` are fixed points; the others are slow points.
    scale : float
        Spread (RMS distance to the centroid) of the initial states; tolerances are relative to it.
    info : dict
        Counters from the search (initial states, iterations, dropped points, seconds).
    certified_radius : ndarray of shape (k,)
        The max-norm cube of this radius around ``x[i]`` provably holds exactly one fixed point
        (Krawczyk, :mod:`fixedpoints.certify`); NaN where nothing was proved (slow points,
        models without an interval enclosure).
    error_bound : ndarray of shape (k,)
        The true fixed point is provably within this max-norm distance of ``x[i]``; NaN if not.
    stability_certified : ndarray of shape (k,), bool
        The index ``n_unstable[i]`` (and so the kind) is proved: no eigenvalue's perturbation
        disc meets the stability boundary.
    kappa : ndarray of shape (k, K)
        Reduced coordinates ``κ = R x`` for low-rank models (K = 0 otherwise).
    complete : bool
        The fixed points are ALL the fixed points (exhaustive low-rank search with no unresolved
        box, :mod:`fixedpoints.lowrank`); each then has a certificate.
    search_box : ndarray of shape (K, 2)
        The κ box the exhaustive search covered (it holds every fixed point); (0, 2) if none.
    unresolved : ndarray of shape (m, K, 2)
        κ boxes the search could neither exclude nor certify (they may hold fixed points).
    """

    x: np.ndarray
    speed: np.ndarray
    eigvals: np.ndarray
    kind: np.ndarray
    n_unstable: np.ndarray
    time: str = "discrete"
    status: FinderStatus = FinderStatus.CONVERGED
    slow_regions: Tuple[SlowRegion, ...] = ()
    q_fixed: float = 0.0
    scale: float = 1.0
    info: Dict[str, Any] = field(default_factory=dict)
    certified_radius: Optional[np.ndarray] = None
    error_bound: Optional[np.ndarray] = None
    stability_certified: Optional[np.ndarray] = None
    kappa: Optional[np.ndarray] = None
    complete: bool = False
    search_box: Optional[np.ndarray] = None
    unresolved: Optional[np.ndarray] = None

    _ARRAYS = ("x", "speed", "eigvals", "kind", "n_unstable", "certified_radius", "error_bound",
               "stability_certified", "kappa")

    def __post_init__(self):
        k = int(np.shape(self.x)[0])
        defaults = {"certified_radius": np.full(k, np.nan), "error_bound": np.full(k, np.nan),
                    "stability_certified": np.zeros(k, dtype=bool), "kappa": np.zeros((k, 0)),
                    "search_box": np.zeros((0, 2))}
        for name, value in defaults.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        if self.unresolved is None:
            rank = int(np.shape(self.search_box)[0])
            object.__setattr__(self, "unresolved", np.zeros((0, rank, 2)))
        for name in ("certified_radius", "error_bound", "stability_certified", "kappa"):
            if int(np.shape(getattr(self, name))[0]) != k:
                raise ValueError(f"{name} has {np.shape(getattr(self, name))[0]} row(s) but x "
                                 f"has {k}; pass one row per point")

    @property
    def n_certified(self) -> int:
        """Number of points with a certificate (a finite ``certified_radius``)."""
        return int(np.isfinite(np.asarray(self.certified_radius)).sum())

    def certification_text(self) -> str:
        """One line for reports, e.g. ``"complete (certified): 9/9 fixed points certified, 9
        stability verdicts proved"``."""
        n_fixed = int(np.sum(self.kind != "slow"))
        return (f"{self.provenance()}: {self.n_certified}/{n_fixed} fixed points certified, "
                f"{int(np.sum(np.asarray(self.stability_certified)))} stability verdicts "
                f"proved")

    def provenance(self) -> str:
        """``"complete (certified)"`` or ``"found from N starts"``, for reports."""
        if self.complete:
            return "complete (certified)"
        return f"found from {int(self.info.get('n_initial', 0))} starts"

    @property
    def success(self) -> bool:
        return self.status is FinderStatus.CONVERGED

    @property
    def message(self) -> str:
        return self.status.value

    def counts(self) -> Dict[str, int]:
        """Number of points of each kind, e.g. ``{"stable": 8, "saddle": 19, ...}``."""
        return {k: int(np.sum(self.kind == k)) for k in KINDS}

    def index_counts(self) -> Dict[int, int]:
        """Number of fixed points (slow points excluded) of each index."""
        fixed = self.kind != "slow"
        values, counts = np.unique(self.n_unstable[fixed], return_counts=True)
        return {int(v): int(c) for v, c in zip(values, counts)}

    def of_kind(self, *kinds: str) -> "FixedPoints":
        """The subset whose kind is one of ``kinds``."""
        return self[np.isin(self.kind, kinds)]

    def _repr_html_(self) -> str:
        from .display import fixed_points_html  # Jupyter's rich display
        return fixed_points_html(self)

    def __repr__(self) -> str:
        parts = ", ".join(f"{k}={v}" for k, v in self.counts().items() if v)
        regions = f", slow_regions={len(self.slow_regions)}" if self.slow_regions else ""
        return (f"FixedPoints({len(self)} points: {parts or 'none'}{regions}; time={self.time!r}, "
                f"status={self.status.name})")

    # --------------------------------------------------------------- persistence
    def save(self, path: Union[str, os.PathLike]) -> Path:
        """Write ``path.npz`` (arrays) and ``path.json`` (everything else). Returns the stem."""
        return save_result(self, path)

    @classmethod
    def load(cls, path: Union[str, os.PathLike]) -> "FixedPoints":
        """Read what :meth:`save` wrote (``path``, ``path.npz`` or ``path.json``)."""
        return load_result(cls, path)

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-ready description (per-point lists plus metadata)."""
        radius, error = np.asarray(self.certified_radius), np.asarray(self.error_bound)
        stable = np.asarray(self.stability_certified)
        return {
            "time": self.time,
            "status": self.status.name,
            "message": self.message,
            "q_fixed": float(self.q_fixed),
            "scale": float(self.scale),
            "counts": self.counts(),
            "points": [
                {"x": self.x[i].tolist(), "speed": float(self.speed[i]), "kind": str(self.kind[i]),
                 "n_unstable": int(self.n_unstable[i]),
                 "eigvals_real": np.real(self.eigvals[i]).tolist(),
                 "eigvals_imag": np.imag(self.eigvals[i]).tolist(),
                 "certified_radius": _finite_or_none(radius[i]),
                 "error_bound": _finite_or_none(error[i]),
                 "stability_certified": bool(stable[i])}
                for i in range(len(self))
            ],
            "complete": bool(self.complete),
            "provenance": self.provenance(),
            "n_certified": self.n_certified,
            "search_box": np.asarray(self.search_box).tolist(),
            "unresolved": np.asarray(self.unresolved).tolist(),
            "slow_regions": [r.to_dict() for r in self.slow_regions],
            "info": to_json(self.info),
        }


def _finite_or_none(value):
    value = float(value)
    return value if np.isfinite(value) else None


def save_result(result, path: Union[str, os.PathLike]) -> Path:
    """Save a frozen result dataclass as ``<stem>.npz`` + ``<stem>.json`` (no pickle).

    Array fields (and the arrays of nested slow regions) go to the ``.npz``; scalars, strings,
    enums and dicts to the ``.json``. Both files are written to a temporary name first and then
    renamed, so an interrupted save leaves no half-written file.
    """
    stem = _as_path(path)
    stem.parent.mkdir(parents=True, exist_ok=True)
    arrays: Dict[str, Any] = {}  # Any: np.savez_compressed's stub types **kwds as bool
    meta: Dict[str, Any] = {"type": type(result).__name__, "format": 1}
    for f in fields(result):
        value = getattr(result, f.name)
        if isinstance(value, np.ndarray):
            arrays[f.name] = value.astype(str) if value.dtype == object else value
        elif isinstance(value, tuple) and value and all(isinstance(v, SlowRegion) for v in value):
            meta[f.name] = []
            for j, region in enumerate(value):
                entry = {"dimension": int(region.dimension)}
                for name in ("points", "speed", "center", "axes", "extent"):
                    arrays[f"{f.name}.{j}.{name}"] = getattr(region, name)
                meta[f.name].append(entry)
        elif isinstance(value, enum.Enum):
            meta[f.name] = {"enum": type(value).__name__, "name": value.name}
        else:
            meta[f.name] = to_json(value)
    atomic_write(stem.with_suffix(".npz"), lambda h: np.savez_compressed(h, **arrays))
    write_text(stem.with_suffix(".json"), json_text(meta))
    return stem


_ENUMS = {"FinderStatus": FinderStatus}


def register_enum(enum_type) -> None:
    """Make an enum type loadable by :func:`load_result` (used by other result modules)."""
    _ENUMS[enum_type.__name__] = enum_type


def load_result(cls, path: Union[str, os.PathLike]):
    """Load a result of dataclass ``cls`` saved by :func:`save_result`."""
    stem = _as_path(path)
    npz_path, json_path = stem.with_suffix(".npz"), stem.with_suffix(".json")
    for p in (npz_path, json_path):
        if not p.exists():
            raise FileNotFoundError(f"{p} is missing; a saved result is a .npz and .json pair "
                                    f"written by .save()")
    meta = json.loads(json_path.read_text())
    if meta.get("type") != cls.__name__:
        raise ValueError(f"{json_path} holds a {meta.get('type')}, not a {cls.__name__}; load it "
                         f"with {meta.get('type')}.load")
    with np.load(npz_path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    kwargs: Dict[str, Any] = {}
    for f in fields(cls):
        if f.name in arrays:
            kwargs[f.name] = arrays[f.name]
        elif f.name in meta:
            value = meta[f.name]
            if isinstance(value, dict) and "enum" in value:
                value = _ENUMS[value["enum"]][value["name"]]
            elif isinstance(value, list) and f.name == "slow_regions":
                value = tuple(
                    SlowRegion(dimension=entry["dimension"],
                               **{n: arrays[f"{f.name}.{j}.{n}"]
                                  for n in ("points", "speed", "center", "axes", "extent")})
                    for j, entry in enumerate(value))
            kwargs[f.name] = json_float_field(f, value)
    return cls(**kwargs)
