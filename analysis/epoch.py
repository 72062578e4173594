"""One checkpoint, one analysis: fixed points, ghosts, topology, signature, loss.

:func:`analyze_checkpoint` is the per-epoch unit of work of :func:`analysis.analyze_series`.
It takes a model (``nn.Module``), a :class:`fixedpoints.Dynamics`, or a checkpoint file, finds
its fixed and slow points from initial states sampled on the model's own trajectories, detects
ghosts, builds the topology graph (where each saddle's unstable directions and each ghost's
outflow lead), and returns a frozen :class:`EpochAnalysis`.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import math
import os
import time as _time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional, Tuple, Union

import numpy as np
from numpy.typing import NDArray

from fixedpoints.serialization import atomic_write, json_float_field, json_text, to_json, \
    write_text

from fixedpoints.finder import FinderOptions
from fixedpoints.ghosts import GhostOptions
from fixedpoints.options import resolve_options

from .sources import as_dynamics
from .topology import TopologyOptions

if TYPE_CHECKING:
    from fixedpoints import Dynamics, FixedPoints, Ghosts

    from .topology import Signature, Topology

__all__ = ["EpochSettings", "EpochAnalysis", "analyze_checkpoint", "analyze_dynamics",
           "make_settings", "initial_states_for", "counts_text", "points_differ"]

logger = logging.getLogger(__name__)


_TIMES = (None, "discrete", "continuous")


def _freeze(value):
    """Nested lists/arrays -> nested tuples (hashable, JSON-friendly)."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


@dataclass(frozen=True)
class EpochSettings:
    """Settings of the per-checkpoint analysis (defaults keep small models fast).

    Attributes
    ----------
    n_initial : int, default 128
        Number of initial states for the fixed-point search.
    n_steps : int, default 100
        Length of the trajectories the initial states are sampled from.
    n_trajectories : int, default 64
        Number of autonomous trajectories (ignored when ``drive`` is given).
    burn_in : int, default 0
        Steps at the start of each trajectory that are not sampled.
    init_scale : float, default 1.0
        Standard deviation of the random starting states. A model's own ``initial_state`` (when
        it has one) starts a quarter of the trajectories.
    noise : float, default 0.01
        Gaussian noise added to the sampled states, relative to their spread.
    seed : int, default 0
        The same seed for every checkpoint, so that nearby weights give nearby initial states.
    input : tuple of float, optional
        Constant input at which fixed points are sought (zeros when omitted).
    drive : tuple, optional
        Task-like input sequences, shape ``(T, n_inputs)`` or ``(b, T, n_inputs)`` (arrays are
        converted to nested tuples), that drive the trajectories the initial states are sampled
        from. When omitted, models with inputs run autonomously at ``input`` from random states.
    time : {"discrete", "continuous"}, optional
        Which form of a model that has both (default: the model's own ``time``).
    scale : float, optional
        Spread of the states used for every relative distance. Default: the RMS distance of
        all the states the trajectories visited to their centroid (not only of the
        ``n_initial`` drawn, whose spread depends on the seed), or that of the fixed points
        found when it is larger (states that all fall onto one attractor would otherwise shrink
        it).
    finder : fixedpoints.FinderOptions
        Options of :func:`fixedpoints.find_fixed_points`.
    ghosts : fixedpoints.GhostOptions or None, default ``GhostOptions(max_starts=24)``
        Options of :func:`fixedpoints.detect_ghosts`; None skips ghost detection. The search
        starts from at most ``max_starts`` of the sampled states farther than 2% of the spread
        from every fixed point, thinned to one per 5% of the spread: each start costs a Newton
        search with exact Hessians, the dominant cost of the per-epoch analysis (hence 24 here
        instead of the detector's own 64).
    topology : analysis.topology.TopologyOptions or None, default ``TopologyOptions()``
        How saddles and ghosts are connected to attractors (integration along unstable
        directions); None skips the topology.
    segment_seeds : int, default 4
        Saddles lie between attractors, where sampled trajectories rarely linger: this many
        extra initial states are placed evenly on the segment between each distinct end state
        of autonomous runs (from a subset of the samples) and its three nearest others, for at
        most 32 pairs. 0 turns this off.
    subspace_seeds : int, default 32
        Extra initial states spread over the principal subspace of the sampled states, extended
        symmetrically beyond their range (:func:`fixedpoints.subspace_seeds`): they reach basins
        that no sampled trajectory entered. 0 turns this off.
    subspace_extend : float, default 1.0
        How far that box reaches beyond the sampled states' range on each side, relative to the
        range's width along each principal axis.
    continuation : bool, default True
        In a series, also start each checkpoint's search from its neighbours' fixed points (see
        :func:`analysis.analyze_series`).
    warm_start : bool, default True
        In a series, polish the previous checkpoint's fixed points first (the ``warm_starts``
        of :func:`fixedpoints.find_fixed_points`), so that candidates and midpoints near roots
        that only moved are attributed to them instead of being polished from scratch. The
        sampled initial states, the scales, the ghost search and the topology are those of a
        cold search, slow points come from the fresh candidates only, and a root a warm start
        reaches is kept only when a fresh candidate or midpoint reaches it too: only which
        candidates need a polish changes, not what is found, so results do not depend on how a
        series is split among workers. ``info["warm_start"]`` says from which epoch it started
        and what it spared.
    """

    n_initial: int = 128
    n_steps: int = 100
    n_trajectories: int = 64
    burn_in: int = 0
    init_scale: float = 1.0
    noise: float = 0.01
    seed: int = 0
    input: Optional[Tuple[float, ...]] = None
    drive: Optional[tuple] = None
    time: Optional[str] = None
    scale: Optional[float] = None
    finder: FinderOptions = field(default_factory=FinderOptions)
    ghosts: Optional[GhostOptions] = field(default_factory=lambda: GhostOptions(max_starts=24))
    topology: Optional[TopologyOptions] = field(default_factory=TopologyOptions)
    segment_seeds: int = 4
    subspace_seeds: int = 32
    subspace_extend: float = 1.0
    continuation: bool = True
    warm_start: bool = True

    def __post_init__(self) -> None:
        for name, kind, optional in (("finder", FinderOptions, False),
                                     ("ghosts", GhostOptions, True),
                                     ("topology", TopologyOptions, True)):
            value = getattr(self, name)
            if not (isinstance(value, kind) or (optional and value is None)):
                raise ValueError(f"{name}={value!r} is invalid; pass a {kind.__name__}"
                                 + (" or None (off)" if optional else "")
                                 + " (make_settings also takes a dict of its fields)")
        for name in ("n_initial", "n_steps", "n_trajectories"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name}={value!r} is invalid; pass a positive integer")
        for name in ("burn_in", "seed", "segment_seeds", "subspace_seeds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"{name}={value!r} is invalid; pass an integer >= 0")
        if self.burn_in >= self.n_steps:
            raise ValueError(f"burn_in={self.burn_in} leaves no state of trajectories with "
                             f"n_steps={self.n_steps}; pass burn_in < n_steps")
        for name in ("init_scale", "subspace_extend"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name}={value!r} is invalid; pass a positive number")
        if (not isinstance(self.noise, (int, float)) or not math.isfinite(self.noise)
                or self.noise < 0):
            raise ValueError(f"noise={self.noise!r} is invalid; pass a number >= 0")
        if self.scale is not None and (not math.isfinite(self.scale) or self.scale <= 0):
            raise ValueError(f"scale={self.scale!r} is invalid; pass a positive number or None")
        if self.time not in _TIMES:
            raise ValueError(f"time={self.time!r} is invalid; pass 'discrete', 'continuous' or "
                             f"None (the model's own)")
        if self.input is not None:
            object.__setattr__(self, "input", tuple(float(v) for v in
                                                    np.asarray(self.input, float).reshape(-1)))
        if self.drive is not None:
            arr = np.asarray(self.drive, dtype=float)
            if arr.ndim not in (2, 3) or not np.all(np.isfinite(arr)):
                raise ValueError(f"drive has shape {arr.shape}; pass finite inputs of shape "
                                 f"(T, n_inputs) or (b, T, n_inputs)")
            object.__setattr__(self, "drive", _freeze(arr))

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready dictionary of the settings."""
        out: Dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if dataclasses.is_dataclass(value):
                value = {g.name: getattr(value, g.name) for g in dataclasses.fields(value)}
            out[f.name] = list(value) if isinstance(value, tuple) else value
        out["drive"] = None if self.drive is None else np.asarray(self.drive).tolist()
        return to_json(out)

    def hash(self) -> str:
        """A short stable hash of the settings and of the code that computes an epoch.

        Used to resume an output directory: an epoch is reused only when both match, so
        results written by an older version of the finder, the ghost detector or the built-in
        models are recomputed rather than mixed with new ones.
        """
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha1((text + _epoch_code_digest()).encode()).hexdigest()[:12]


@functools.lru_cache(maxsize=1)
def _epoch_code_digest() -> str:
    """Digest of the sources an epoch's result depends on (read once per process)."""
    import checkpoints
    import fixedpoints

    digest = hashlib.sha1()
    here = Path(__file__).resolve().parent
    files = sorted(Path(fixedpoints.__file__).resolve().parent.glob("*.py"))
    files += [Path(checkpoints.__file__).resolve().parent / "models.py",
              here / "epoch.py", here / "topology.py"]
    for path in files:
        try:
            digest.update(path.name.encode() + path.read_bytes())
        except OSError:  # an installed package without sources: the names still count
            digest.update(path.name.encode())
    return digest.hexdigest()


def make_settings(settings: Optional[EpochSettings] = None, **options: Any) -> EpochSettings:
    """Build :class:`EpochSettings` from keyword options; unknown names raise a ValueError.

    The one way settings are built (the API, ``SeriesAnalysis.from_dir`` and the CLI use it).
    The nested options take their object, a dict of its fields (built with
    :func:`fixedpoints.options.resolve_options`, which validates them), or, for ``ghosts`` and
    ``topology``, True (the defaults) or False / None (off).

    Parameters
    ----------
    settings : EpochSettings or dict, optional
        Starting point (defaults when omitted); ``options`` replace single fields.

    Examples
    --------
    >>> make_settings(n_initial=64, finder={"max_iter": 500}, ghosts=False).ghosts is None
    True
    """
    base = settings if settings is not None else EpochSettings()
    if not isinstance(base, EpochSettings):
        if isinstance(base, Mapping):
            return make_settings(None, **{**dict(base), **options})
        raise TypeError(f"settings={settings!r} is not an EpochSettings or dict")
    if not options:
        return base
    known = {f.name for f in dataclasses.fields(EpochSettings)}
    bad = sorted(set(options) - known)
    if bad:
        raise ValueError(f"unknown option(s) {bad}; valid per-epoch options are {sorted(known)}")
    changes = dict(options)
    if "finder" in changes:
        changes["finder"] = resolve_options(FinderOptions, changes["finder"], name="finder")
    if "ghosts" in changes:
        changes["ghosts"] = _switched(GhostOptions, changes["ghosts"], {"max_starts": 24},
                                      "ghost")
    if "topology" in changes:
        changes["topology"] = _switched(TopologyOptions, changes["topology"], {}, "topology")
    return dataclasses.replace(base, **changes)


def _switched(cls: Any, value: Any, defaults: Dict[str, Any], name: str) -> Any:
    """Options that can be off: None/False -> None, True -> the defaults, else resolved."""
    if value is None or value is False:
        return None
    if value is True:
        return cls(**defaults)
    if isinstance(value, Mapping):
        return resolve_options(cls, {**defaults, **value}, name=name)
    return resolve_options(cls, value, name=name)


# ------------------------------------------------------------------------------ the result
@dataclass(frozen=True)
class EpochAnalysis:
    """The analysis of one checkpoint.

    Attributes
    ----------
    epoch : int
    fixed_points : fixedpoints.FixedPoints
        Fixed and slow points (``x (k, n)``, ``kind``, ``n_unstable``, ``eigvals`` ...).
    ghosts : fixedpoints.ghosts.Ghosts or None
        Ghosts found (None when ghost detection was off or unavailable).
    topology : analysis.topology.Topology or None
        Nodes (fixed points, ghosts, slow regions) and edges (where unstable directions and ghost
        outflows lead); ``.topology.graph`` is the networkx DiGraph.
    scale : float
        Spread of the sampled states (RMS distance to their centroid), or of the fixed points
        when larger; relative distances use it.
    loss : float
        Training loss at this epoch (NaN when unknown).
    source : str
        The checkpoint file, or a description of the model.
    settings_hash : str
    seconds : float
        Wall time of the analysis.
    info : dict
        ``n_states``, ``time``, the finder's counters, and any messages (e.g. why ghosts were
        skipped).
    source_stamp : str
        The checkpoint file's identity when it was read (``"size:mtime_ns"``,
        :func:`analysis.reuse.file_stamp`; "" for in-memory models): a re-run into the same
        output directory analyzes the epoch again when the file's stamp changed.
    """

    epoch: int
    fixed_points: FixedPoints
    ghosts: Optional[Ghosts]
    topology: Optional[Topology]
    scale: float
    loss: float = math.nan
    source: str = ""
    settings_hash: str = ""
    seconds: float = 0.0
    info: Dict[str, Any] = field(default_factory=dict)
    source_stamp: str = ""

    @property
    def signature(self) -> Optional["Signature"]:
        """The topology's :class:`~analysis.topology.Signature` (None without a topology)."""
        return None if self.topology is None else self.topology.signature()

    @property
    def n_states(self) -> int:
        return int(self.fixed_points.x.shape[1])

    def counts(self) -> Dict[str, int]:
        """Points by kind, ghosts included (``{"stable": 8, "saddle": 19, "ghost": 1, ...}``).

        The one count of an epoch's points: ``summary.json``, the report and the command line
        all show these (:func:`counts_text` writes them as words).
        """
        counts = self.fixed_points.counts()
        counts["ghost"] = 0 if self.ghosts is None else int(len(self.ghosts.x))
        counts["slow_region"] = len(self.fixed_points.slow_regions)
        return counts

    def summary(self) -> Dict[str, Any]:
        """JSON-ready summary: epoch, loss, counts, signature, mechanism, seconds."""
        from .mechanism import mechanism_of

        sig = self.signature
        return {"epoch": int(self.epoch),
                "loss": None if not math.isfinite(self.loss) else float(self.loss),
                "counts": self.counts(), "index_counts": self.fixed_points.index_counts(),
                "n_attractors": None if sig is None else sig.n_attractors,
                "signature": None if sig is None else str(sig),
                "mechanism": mechanism_of(self),
                "scale": float(self.scale), "seconds": float(self.seconds),
                "source": self.source, **_certification(self.fixed_points)}

    def _repr_html_(self) -> str:
        from .notebook import epoch_html  # Jupyter's rich display
        return epoch_html(self)

    def __repr__(self) -> str:
        return (f"EpochAnalysis(epoch={self.epoch}, {self.fixed_points!r}, "
                f"ghosts={self.counts()['ghost']}, loss={self.loss:.4g})")

    # -------------------------------------------------------------- persistence
    def save(self, path: Union[str, os.PathLike]) -> Path:
        """Write ``<path>.json`` + ``<path>.npz`` (each written to a temporary name, then renamed).

        Returns the stem (path without suffix).
        """
        stem = Path(path)
        if stem.suffix in (".json", ".npz"):
            stem = stem.with_suffix("")
        stem.parent.mkdir(parents=True, exist_ok=True)
        arrays: Dict[str, Any] = {}  # Any: np.savez_compressed's stub types **kwds as bool
        meta: Dict[str, Any] = {"type": "EpochAnalysis", "format": 1, "epoch": int(self.epoch),
                                "loss": None if not math.isfinite(self.loss) else float(self.loss),
                                "scale": float(self.scale), "source": self.source,
                                "source_stamp": self.source_stamp,
                                "settings_hash": self.settings_hash, "seconds": float(self.seconds),
                                "info": self.info, "summary": self.summary()}
        meta["fixed_points"] = _dump_dataclass(self.fixed_points, "fp.", arrays)
        if self.ghosts is not None:
            meta["ghosts"] = _dump_dataclass(self.ghosts, "ghost.", arrays)
            kind = type(self.ghosts)
            meta["ghosts"]["__class__"] = f"{kind.__module__}:{kind.__name__}"
        # human-readable per-point lists (the arrays in the .npz are what load() reads)
        meta["points"] = self.fixed_points.to_dict()["points"]
        meta["slow_regions"] = [r.to_dict() for r in self.fixed_points.slow_regions]
        meta["ghost_list"] = [] if self.ghosts is None else self.ghosts.to_dict()["ghosts"]
        if self.topology is not None:
            arrays.update(self.topology.to_arrays())
            meta["topology"] = {"info": self.topology.info,
                                "signature": self.topology.signature().to_dict(),
                                "edges": self.topology.edges()}
        from .outdir import writing  # an OSError names the file and the fix

        with writing(stem.with_suffix(".npz")):
            atomic_write(stem.with_suffix(".npz"), lambda h: np.savez_compressed(h, **arrays))
        with writing(stem.with_suffix(".json")):
            write_text(stem.with_suffix(".json"), json_text(meta))
        return stem

    @classmethod
    def load(cls, path: Union[str, os.PathLike]) -> "EpochAnalysis":
        """Read what :meth:`save` wrote (``path``, ``path.json`` or ``path.npz``)."""
        from fixedpoints.results import FixedPoints

        from .topology import Topology

        stem = Path(path)
        if stem.suffix in (".json", ".npz"):
            stem = stem.with_suffix("")
        for p in (stem.with_suffix(".json"), stem.with_suffix(".npz")):
            if not p.exists():
                raise FileNotFoundError(f"{p} is missing; an epoch analysis is a .json and .npz "
                                        f"pair written by EpochAnalysis.save")
        meta = json.loads(stem.with_suffix(".json").read_text())
        if meta.get("type") != "EpochAnalysis":
            raise ValueError(f"{stem.with_suffix('.json')} is not an EpochAnalysis file "
                             f"(type={meta.get('type')!r})")
        with np.load(stem.with_suffix(".npz"), allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        where = str(stem.with_suffix(".json"))
        fixed_points = _load_dataclass(FixedPoints, "fp.", arrays, meta["fixed_points"], where)
        ghosts = None
        if "ghosts" in meta:
            from .decoding import result_class  # a fixed registry: nothing named is imported
            ghost_cls = result_class(meta["ghosts"].get("__class__"), where)
            ghosts = _load_dataclass(ghost_cls, "ghost.", arrays, meta["ghosts"], where)
        topology = None
        if "topology" in meta:
            topology = Topology.from_arrays(arrays, info=meta["topology"].get("info"))
        loss = meta.get("loss")
        return cls(epoch=int(meta["epoch"]), fixed_points=fixed_points, ghosts=ghosts,
                   topology=topology, scale=float(meta["scale"]),
                   loss=math.nan if loss is None else float(loss), source=meta.get("source", ""),
                   settings_hash=meta.get("settings_hash", ""),
                   seconds=float(meta.get("seconds", 0.0)), info=meta.get("info", {}),
                   source_stamp=str(meta.get("source_stamp", "")))


def _certification(fixed_points) -> Dict[str, Any]:
    """What the epoch's fixed-point set proves (issue 12), for ``summary.json``."""
    return {"search": fixed_points.provenance(), "complete": bool(fixed_points.complete),
            "n_certified": fixed_points.n_certified,
            "n_stability_certified": int(np.sum(fixed_points.stability_certified))}


def _dump_dataclass(obj, prefix: str, arrays: Dict[str, np.ndarray]) -> Dict[str, Any]:
    """Split a frozen result dataclass into arrays (into ``arrays``) and JSON metadata."""
    import enum

    from fixedpoints.results import SlowRegion

    meta: Dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, np.ndarray):
            arrays[prefix + f.name] = value.astype(str) if value.dtype == object else value
        elif isinstance(value, tuple) and value and all(isinstance(v, SlowRegion) for v in value):
            meta[f.name] = {"slow_regions": []}
            for j, region in enumerate(value):
                for name in ("points", "speed", "center", "axes", "extent"):
                    arrays[f"{prefix}{f.name}.{j}.{name}"] = getattr(region, name)
                meta[f.name]["slow_regions"].append({"dimension": int(region.dimension)})
        elif isinstance(value, enum.Enum):
            meta[f.name] = {"enum": type(value).__name__, "name": value.name,
                            "module": type(value).__module__}
        else:
            meta[f.name] = to_json(value)
    return meta


def _load_dataclass(cls, prefix: str, arrays: Dict[str, np.ndarray], meta: Dict[str, Any],
                    source: Optional[str] = None):
    """Inverse of :func:`_dump_dataclass` (enums come from a fixed registry, never an import)."""
    from fixedpoints.results import SlowRegion

    from .decoding import enum_member

    kwargs: Dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if prefix + f.name in arrays:
            kwargs[f.name] = arrays[prefix + f.name]
        elif f.name in meta:
            value = meta[f.name]
            if isinstance(value, dict) and "enum" in value and "name" in value:
                value = enum_member(value, source)
            elif isinstance(value, dict) and "slow_regions" in value:
                value = tuple(
                    SlowRegion(dimension=entry["dimension"],
                               **{n: arrays[f"{prefix}{f.name}.{j}.{n}"]
                                  for n in ("points", "speed", "center", "axes", "extent")})
                    for j, entry in enumerate(value["slow_regions"]))
            elif f.name == "slow_regions" and value == []:
                value = ()
            kwargs[f.name] = json_float_field(f, value)
    return cls(**kwargs)


def counts_text(counts: Mapping[str, int]) -> str:
    """Counts by kind as words: ``"8 stable · 12 saddles · 1 ghost"``.

    Parameters
    ----------
    counts : mapping
        As :meth:`EpochAnalysis.counts` returns.
    """
    names = (("stable", "stable", "stable"), ("saddle", "saddle", "saddles"),
             ("unstable", "unstable", "unstable"), ("slow", "slow point", "slow points"),
             ("ghost", "ghost", "ghosts"), ("slow_region", "slow region", "slow regions"))
    parts = [f"{counts[k]} {one if counts[k] == 1 else many}" for k, one, many in names
             if counts.get(k, 0)]
    return " · ".join(parts) if parts else "no fixed or slow points found"


# ------------------------------------------------------------------------------ the work
def _sampled_states(dynamics, settings: EpochSettings, module=None, with_spread: bool = False):
    """Initial states for the fixed-point search, sampled from the system's own trajectories.

    With ``settings.drive``, trajectories are driven by those inputs; otherwise they run
    autonomously (at the bound input) from ``init_scale`` · standard-normal states, a quarter of
    them starting from the model's own ``initial_state`` (when ``module`` has one) plus noise.

    Returns
    -------
    ndarray of shape (n_initial, n_states)
        With ``with_spread``: (states, the RMS spread of all visited states).
    """
    from fixedpoints import sample_initial_states

    n = dynamics.n_states
    gen = np.random.default_rng(settings.seed)
    if settings.drive is not None:
        drive = np.asarray(settings.drive, dtype=float)
        if drive.shape[-1] != dynamics.n_inputs:
            raise ValueError(f"drive has {drive.shape[-1]} input channel(s) but the model takes "
                             f"{dynamics.n_inputs}; pass drive of shape (T, {dynamics.n_inputs}) "
                             f"or (b, T, {dynamics.n_inputs})")
        b = 1 if drive.ndim == 2 else drive.shape[0]
        x0 = settings.init_scale * gen.standard_normal((b, n))
        own = _own_initial_state(module, b)
        if own is not None:
            x0 = own
        return sample_initial_states(dynamics, settings.n_initial, inputs=drive, x0=x0,
                                     burn_in=min(settings.burn_in, drive.shape[-2] - 1),
                                     noise=settings.noise, seed=settings.seed,
                                     return_spread=with_spread)
    b = settings.n_trajectories
    x0 = settings.init_scale * gen.standard_normal((b, n))
    k = max(1, b // 4)
    own = _own_initial_state(module, k)
    if own is not None:
        x0[:k] = own + 0.01 * settings.init_scale * gen.standard_normal((k, n))
    return sample_initial_states(dynamics, settings.n_initial, x0=x0, n_steps=settings.n_steps,
                                 burn_in=settings.burn_in, noise=settings.noise,
                                 seed=settings.seed, return_spread=with_spread)


def initial_states_for(dynamics: Dynamics, settings: EpochSettings, module: Any = None,
                       extra: Optional[np.ndarray] = None,
                       sampled: Optional[np.ndarray] = None,
                       segments: bool = True) -> NDArray:
    """Initial states for the fixed-point search, sampled from the system's own trajectories.

    With ``settings.drive``, trajectories are driven by those inputs; otherwise they run
    autonomously (at the bound input) from ``init_scale`` · standard-normal states, a quarter of
    them starting from the model's own ``initial_state`` (when ``module`` has one). Noise is
    added as ``settings.noise`` says. Then ``segment_seeds`` states are added on the segments
    between the distinct end states of autonomous runs, ``subspace_seeds`` states over the
    sampled states' principal subspace extended beyond their range (see
    :class:`EpochSettings`), and the ``extra`` states given (e.g. the neighbouring checkpoints'
    fixed points: continuation). ``segments=False`` leaves the segment seeds out (they seed
    the finder's candidates, which the latent minima replace for low-rank networks).

    Returns
    -------
    ndarray of shape (n_initial + added, n_states)
    """
    from fixedpoints import subspace_seeds

    states = sampled if sampled is not None else _sampled_states(dynamics, settings,
                                                                 module=module)
    parts = [states]
    if segments and settings.segment_seeds > 0:
        parts.append(_segment_seeds(dynamics, states, settings))
    if settings.subspace_seeds > 0:
        parts.append(subspace_seeds(states, settings.subspace_seeds,
                                    extend=settings.subspace_extend, seed=settings.seed + 2))
    if extra is not None and len(extra):
        parts.append(np.asarray(extra, dtype=float).reshape(-1, dynamics.n_states))
    return np.concatenate(parts) if len(parts) > 1 else states


def _segment_seeds(dynamics, states: np.ndarray, settings: EpochSettings) -> np.ndarray:
    """States on the segments between distinct end points of autonomous runs from ``states``."""
    import torch

    from fixedpoints import deduplicate

    from .matching import state_spread

    n = dynamics.n_states
    states = states[np.all(np.isfinite(states), axis=1)]  # runs that diverged seed nothing
    if len(states) < 2:
        return np.zeros((0, n))
    rng = np.random.default_rng(settings.seed + 1)
    pick = rng.choice(len(states), size=min(64, len(states)), replace=False)
    with torch.no_grad():
        ends = dynamics.simulate(states[pick], settings.n_steps)[:, -1].cpu().numpy()
    ends = ends[np.all(np.isfinite(ends), axis=1)]
    spread = state_spread(states)
    if len(ends) < 2 or not spread > 0:
        return np.zeros((0, n))
    ends = ends[deduplicate(ends, np.zeros(len(ends)), 0.05 * spread)]
    if len(ends) < 2:
        return np.zeros((0, n))
    # pair each end state with its nearest neighbours only: saddles sit between neighbouring
    # attractors (a cube's edges, not its diagonals)
    d = np.linalg.norm(ends[:, None, :] - ends[None, :, :], axis=2)
    np.fill_diagonal(d, np.inf)
    k = min(3, len(ends) - 1)
    near = np.argsort(d, axis=1)[:, :k]
    pairs = sorted({(min(a, b), max(a, b)) for a in range(len(ends)) for b in near[a]})
    if len(pairs) > 32:
        pairs = [pairs[t] for t in np.sort(rng.choice(len(pairs), size=32, replace=False))]
    i = np.array([p[0] for p in pairs], int)
    j = np.array([p[1] for p in pairs], int)
    t = (np.arange(1, settings.segment_seeds + 1) / (settings.segment_seeds + 1))[None, :, None]
    seeds = ends[i][:, None, :] * (1 - t) + ends[j][:, None, :] * t
    return seeds.reshape(-1, n)


def _own_initial_state(module, batch: int) -> Optional[np.ndarray]:
    import torch

    if module is None or not callable(getattr(module, "initial_state", None)):
        return None
    try:
        with torch.no_grad():
            x = module.initial_state(batch)
        x = x.detach().double().cpu().numpy().reshape(batch, -1)
        return x if np.all(np.isfinite(x)) else None
    except Exception:  # noqa: BLE001 - a model without a usable initial state
        return None


def _detect_ghosts(dynamics, fixed_points, initial_states, settings: EpochSettings):
    if settings.ghosts is None:
        return None
    from fixedpoints.ghosts import detect_ghosts

    return detect_ghosts(dynamics, fixed_points=fixed_points,
                         initial_states=_away_from_fixed_points(initial_states, fixed_points),
                         options=settings.ghosts)


def _away_from_fixed_points(states: np.ndarray, fixed_points, rtol: float = 0.02) -> np.ndarray:
    """The states farther than ``rtol · scale`` from every fixed point found.

    Trajectories spend most of their time at attractors; starting a ghost search there is
    wasted. All states are returned when fewer than 16 would be left.
    """
    fixed = fixed_points.x[fixed_points.kind != "slow"]
    if not len(fixed) or not len(states):
        return states
    from scipy.spatial import cKDTree

    from fixedpoints import deduplicate

    scale = max(float(fixed_points.scale), 1e-12)
    distance, _ = cKDTree(fixed).query(states)
    keep = distance > rtol * scale
    states = states[keep] if keep.sum() >= 16 else states
    return states[np.sort(deduplicate(states, np.zeros(len(states)), 0.05 * scale))]


def _warm_starts(previous: Optional["EpochAnalysis"], dynamics,
                 settings: EpochSettings, latent: bool = False) -> Optional[np.ndarray]:
    """The previous checkpoint's fixed points, or None (no warm start; also with ``latent``:
    the finder's candidates are the latent minima, :func:`fixedpoints.uses_latent_minima`).

    Not its slow points: a candidate in the linear regime of a slow point need not converge
    to it (on the bench's series, warm starts from slow points kept slow points that cold
    searches did not find at 8 of 14 checkpoints), while one in that of a root does.
    """
    if previous is None or not settings.warm_start or latent:
        return None
    fp = previous.fixed_points
    if fp.n_states != dynamics.n_states or fp.time != dynamics.time:
        return None
    x = fp.x[fp.kind != "slow"].reshape(-1, dynamics.n_states)
    return x if len(x) else None


def points_differ(a: "EpochAnalysis", b: "EpochAnalysis", rtol: float = 1e-6) -> Optional[str]:
    """Why two analyses of one checkpoint found different points, or None when they agree.

    They agree when they have the same counts of each kind of fixed point, slow point and
    ghost, and every point of one lies within ``rtol · scale`` of a point of the same kind of
    the other (both ways). Used to check that warm and cold searches find the same points.

    Returns
    -------
    str or None
        The first difference, in words.
    """
    scale = max(float(a.scale), float(b.scale), 1e-300)
    pairs = [("fixed points", a.fixed_points.x, a.fixed_points.kind,
              b.fixed_points.x, b.fixed_points.kind)]
    n = a.fixed_points.n_states
    if (a.ghosts is None) != (b.ghosts is None):
        return "one has ghost detection, the other not"
    if a.ghosts is not None and b.ghosts is not None:
        pairs.append(("ghosts", np.asarray(a.ghosts.x, float).reshape(-1, n),
                      np.asarray(a.ghosts.kind).reshape(-1),
                      np.asarray(b.ghosts.x, float).reshape(-1, n),
                      np.asarray(b.ghosts.kind).reshape(-1)))
    for what, xa, ka, xb, kb in pairs:
        counts_a = {str(k): int(np.sum(ka == k)) for k in np.unique(ka)}
        counts_b = {str(k): int(np.sum(kb == k)) for k in np.unique(kb)}
        if counts_a != counts_b:
            return f"epoch {a.epoch}: {what} {counts_a} != {counts_b}"
        for kind in counts_a:
            pa, pb = xa[ka == kind], xb[kb == kind]
            d = np.linalg.norm(pa[:, None, :] - pb[None, :, :], axis=2)
            worst = max(d.min(1).max(), d.min(0).max()) / scale
            if not worst <= rtol:
                return (f"epoch {a.epoch}: a {kind} of the {what} is {worst:.2g} · scale from "
                        f"the nearest one of the other (tolerance {rtol:g})")
    return None


#: Initial states whose trajectories are searched for periodic orbits, per epoch.
CYCLE_STARTS = 16


def _find_cycles(dynamics, init, fp, info):
    """Periodic orbits reached from up to :data:`CYCLE_STARTS` of the initial states (short
    budgets: 500 transient + 400 recorded steps), or None when none was found. Run only when
    the topology has an unresolved trajectory or no stable fixed point exists."""
    from fixedpoints.cycles import CycleOptions, find_limit_cycles

    starts = np.asarray(init, dtype=float)[:CYCLE_STARTS]
    if not len(starts):
        return None
    try:
        with np.errstate(all="ignore"):
            found = find_limit_cycles(dynamics, starts,
                                      CycleOptions(n_transient=500, n_record=400, max_seeds=4))
    except (ValueError, np.linalg.LinAlgError, RuntimeError) as exc:
        info["cycles_error"] = str(exc)[:300]
        return None
    info["cycles"] = dict(found.info, found=len(found))
    return found if len(found) else None


def analyze_dynamics(dynamics: Dynamics, settings: EpochSettings, *, epoch: int = 0,
                     loss: float = math.nan, source: str = "", module: Any = None,
                     extra_initial: Optional[np.ndarray] = None,
                     warm_from: Optional["EpochAnalysis"] = None) -> EpochAnalysis:
    """Analyze one :class:`fixedpoints.Dynamics` (the core of :func:`analyze_checkpoint`).

    ``extra_initial`` (shape (m, n_states)) are further initial states, e.g. the neighbouring
    checkpoints' fixed points; the scale is computed without them. ``warm_from`` is the
    analysis of a neighbouring checkpoint whose fixed points warm-start the search (used only
    when ``settings.warm_start``; see :class:`EpochSettings`).
    """
    import warnings

    from fixedpoints import find_fixed_points

    from .matching import state_spread
    from .topology import build_topology

    started = _time.perf_counter()
    info: Dict[str, Any] = {"n_states": int(dynamics.n_states), "time": dynamics.time}
    sampled, visited_spread = _sampled_states(dynamics, settings, module=module,
                                              with_spread=True)
    from fixedpoints import uses_latent_minima

    # the finder's candidates are the latent minima for low-rank networks: the initial states
    # only set its scales and box, and the segment seeds (starts between attractors) are not
    # made for it
    latent = uses_latent_minima(dynamics, settings.finder)
    init = initial_states_for(dynamics, settings, module=module, extra=extra_initial,
                              sampled=sampled, segments=not latent)
    finite = np.all(np.isfinite(init), axis=1)
    if not finite.all():  # trajectories that left float64's range (states of 1e300 and more)
        if not finite.any():
            raise ValueError(f"{source or 'the model'}: every sampled trajectory runs off to "
                             f"inf or NaN (the dynamics diverge at these weights); analyze "
                             f"earlier checkpoints (from Python, init_scale= bounds the starts)")
        info["diverged_starts"] = int((~finite).sum())
        init = init[finite]
    if settings.scale is not None:
        scale = float(settings.scale)
    else:  # the visited states' spread (the seeds reach beyond it on purpose)
        scale = visited_spread if math.isfinite(visited_spread) else state_spread(init)
    if not (math.isfinite(scale) and scale > 0):
        scale = 1.0
        info["scale"] = "the sampled states had no spread; scale set to 1"
    warm = _warm_starts(warm_from, dynamics, settings, latent)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fp = find_fixed_points(dynamics, init, options=settings.finder,
                               warm_starts=None if warm is None else warm)
    messages = sorted({str(w.message)[:500] for w in caught
                       if issubclass(w.category, RuntimeWarning)})
    if messages:
        info["finder_warnings"] = messages
    info["finder"] = {k: v for k, v in fp.info.items() if not isinstance(v, np.ndarray)}
    if warm is not None and warm_from is not None:
        info["warm_start"] = {"from_epoch": int(warm_from.epoch), "points": int(len(warm)),
                              "found": int(fp.info.get("warm_found", 0)),
                              "attributed": int(fp.info.get("warm_attributed", 0))}
    info["finder_status"] = fp.status.name
    if settings.scale is None:
        # states that all collapse onto one attractor would shrink every relative distance:
        # the fixed points found spread the scale as far as they reach
        scale = max(scale, state_spread(fp.x[fp.kind != "slow"]))
    ghosts = _detect_ghosts(dynamics, fp, init, settings)
    topology = None
    if settings.topology is not None:
        topo = settings.topology

        def topology_with(cycles: Any = None) -> Topology:
            return build_topology(dynamics, fp, ghosts, scale=scale, eps=topo.eps,
                                  max_steps=topo.max_steps, reach=topo.reach, cycles=cycles)

        topology = topology_with()
        # periodic orbits are sought only where something may not settle: a trajectory of the
        # topology found no attractor, or there is no stable fixed point at all
        if topology.ends_unresolved() or not np.any(fp.kind == "stable"):
            cycles = _find_cycles(dynamics, init, fp, info)
            if cycles is not None:
                topology = topology_with(cycles)
    return EpochAnalysis(epoch=int(epoch), fixed_points=fp, ghosts=ghosts, topology=topology,
                         scale=scale, loss=float(loss), source=str(source),
                         settings_hash=settings.hash(),
                         seconds=_time.perf_counter() - started, info=info)


def analyze_checkpoint(model: Any, *, epoch: Optional[int] = None, loss: float = math.nan,
                       settings: Optional[EpochSettings] = None, device: str = "cpu",
                       load_options: Optional[Dict[str, Any]] = None,
                       limits: Any = None, extra_initial: Optional[np.ndarray] = None,
                       warm_from: Optional[EpochAnalysis] = None,
                       **options: Any) -> EpochAnalysis:
    """Analyze one model: fixed points, ghosts, topology.

    Parameters
    ----------
    model : torch.nn.Module, fixedpoints.Dynamics, str or path
        A recurrent model (a ``checkpoints.models`` class, torch RNN/GRU/LSTM, or any module
        with ``step``/``velocity``), a Dynamics, or a checkpoint file (read with
        :func:`checkpoints.loading.load_checkpoint`).
    epoch : int, optional
        Defaults to the checkpoint's own epoch for files, else 0.
    loss : float, optional
        Training loss at this epoch, stored with the result.
    settings : EpochSettings, optional
        ``options`` replace single fields.
    device : str, default "cpu"
    load_options : dict, optional
        Keyword arguments for ``load_checkpoint`` (``architecture``, ``config``,
        ``model_factory``, ``prefix``, ``trust_pickle``) when ``model`` is a path.
    limits : analysis.resources.ResourceLimits, optional
        A model whose estimated memory exceeds what is free is refused (``TooLarge``, naming
        ``max_states=``) before anything is allocated; default ``ResourceLimits()``; False
        skips the check (the caller made it).
    extra_initial : ndarray of shape (m, n_states), optional
        Further initial states (e.g. fixed points of neighbouring checkpoints).
    warm_from : EpochAnalysis, optional
        A neighbouring checkpoint's analysis whose fixed points warm-start the search (with
        ``warm_start=True``, the default; see :class:`EpochSettings`).
    **options
        Fields of :class:`EpochSettings` (e.g. ``n_initial=512, input=(0, 0, 0)``).

    Returns
    -------
    EpochAnalysis

    Examples
    --------
    >>> from fixedpoints import systems
    >>> result = analyze_checkpoint(systems.tanh_map(2.0, 0.4), n_initial=64)
    >>> result.fixed_points.counts()["stable"]
    2
    """
    settings = make_settings(settings, **options)
    module = None
    source = ""
    if isinstance(model, (str, os.PathLike)):
        from checkpoints.loading import load_checkpoint

        checkpoint = load_checkpoint(model, **(load_options or {}))
        module, source = checkpoint.model, str(checkpoint.path)
        if epoch is None:
            epoch = checkpoint.epoch
    else:
        import torch

        if isinstance(model, torch.nn.Module):
            module = model
            source = type(model).__name__
        else:
            source = getattr(model, "name", type(model).__name__)
    dynamics = as_dynamics(module if module is not None else model, input=settings.input,
                           time=settings.time, device=device)
    if limits is not False:  # False: the caller has checked
        from .resources import check_cost
        check_cost(dynamics, settings, limits=limits, source=source, device=device)
    return analyze_dynamics(dynamics, settings, epoch=0 if epoch is None else int(epoch),
                            loss=loss, source=source, module=module,
                            extra_initial=extra_initial, warm_from=warm_from)
