"""Phase portraits of analyzed epochs, in one shared projection.

Two streamed passes over the epochs (:func:`analysis.write_report` runs them): pass 1,
:func:`collect_states`, loads an epoch's model, simulates a few trajectories and returns the
states that feed a :class:`~analysis.projection.ProjectionFitter`; pass 2, :func:`render_portrait`,
draws the epoch's portrait in the fitted projection (trajectories, fixed points by kind, ghosts
and their slow direction, slow regions, and the speed as a heatmap where the projection is
exact). A PNG stores the key of what it was drawn from (:func:`render_key`), so an identical
portrait is reused. :func:`single_portrait` draws one epoch on its own.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fixedpoints.options import resolve_options

from .epoch import EpochAnalysis, counts_text
from .projection import Projection, ProjectionFitter, latent_basis
from .reuse import result_key, source_file, source_stamp
from .sources import ModelSource, as_dynamics

if TYPE_CHECKING:
    from fixedpoints import Dynamics, Ghosts

    from .plotting import Portrait

__all__ = ["PortraitOptions", "EpochContext", "RenderJob", "ghost_arrays",
           "portrait_trajectories", "collect_states", "build_portrait", "render_portrait",
           "grid_trajectories", "single_portrait", "png_key", "render_key", "result_key",
           "epoch_key", "code_digest", "REPORT_VERSION"]

logger = logging.getLogger(__name__)

#: Bump when the drawing changes, so that cached portraits are redrawn.
REPORT_VERSION = 1


def code_digest() -> str:
    """A digest of the drawing code: portraits cached by an older version are redrawn."""
    digest = hashlib.sha256()
    here = Path(__file__).resolve().parent
    for name in ("plotting.py", "portraits.py", "projection.py"):
        try:
            digest.update((here / name).read_bytes())
        except OSError:
            digest.update(name.encode())
    return digest.hexdigest()[:12]


@dataclass(frozen=True)
class PortraitOptions:
    """How portraits are drawn.

    Attributes
    ----------
    projection : {"auto", "pca", "latent", "identity"}
    n_trajectories : int
        Autonomous trajectories per portrait from states the system visits (besides those
        started near each point found).
    n_steps : int
        Steps per trajectory.
    n_driven : int
        Driven trajectories (when a drive sequence is given).
    grid : int
        Grid points per axis for the speed heatmap.
    seed : int
    dpi : int
    gif_frames : int
        Most frames in ``portraits.gif`` (epochs are subsampled evenly beyond it).
    gif_width : int
        Width of the GIF in pixels.
    """

    projection: str = "auto"
    n_trajectories: int = 12
    n_steps: int = 120
    n_driven: int = 4
    grid: int = 80
    seed: int = 0
    dpi: int = 100
    gif_frames: int = 60
    gif_width: int = 480

    def __post_init__(self) -> None:
        if self.projection not in ("auto", "pca", "latent", "identity"):
            raise ValueError(f"PortraitOptions.projection={self.projection!r} is invalid; pass "
                             f"'auto', 'pca', 'latent' or 'identity'")
        for name in ("n_trajectories", "n_steps", "grid", "dpi", "gif_frames", "gif_width"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"PortraitOptions.{name}={value!r} is invalid; pass a positive "
                                 f"integer")
        for name in ("n_driven", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"PortraitOptions.{name}={value!r} is invalid; pass an integer "
                                 f">= 0")

    @classmethod
    def make(cls, value: Any = None, **overrides: Any) -> "PortraitOptions":
        """From None, a PortraitOptions, or a dict of its fields (unknown names raise)."""
        return resolve_options(cls, value, overrides, name="portrait")

    def to_dict(self) -> Dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class EpochContext:
    """What both passes of the report need for one epoch (pickled to workers)."""

    result: EpochAnalysis
    source: Optional[ModelSource]
    input: Optional[Tuple[float, ...]]
    drive: Optional[Any]
    time: Optional[str]
    device: str
    options: PortraitOptions


# ------------------------------------------------------------------------ per-epoch geometry
def ghost_arrays(ghosts: Optional[Ghosts], n_states: int) -> Tuple[NDArray, NDArray]:
    """Locations ``(g, n)`` and slow directions ``(g, n)`` of the ghosts (empty for None)."""
    if ghosts is None or len(ghosts) == 0:
        empty = np.empty((0, n_states))
        return empty, empty
    return (np.asarray(ghosts.x, dtype=float).reshape(-1, n_states),
            np.asarray(ghosts.slow_direction, dtype=float).reshape(-1, n_states))


def portrait_trajectories(dynamics: Dynamics, result: EpochAnalysis, *, n_trajectories: int = 24,
                          n_steps: int = 120, drive: Optional[ArrayLike] = None,
                          n_driven: int = 4, seed: int = 0, x0: Optional[ArrayLike] = None,
                          max_anchored: int = 96) -> NDArray:
    """Trajectories that show the flow around the points of one epoch.

    Autonomous trajectories (at the bound constant input) start near every saddle, repeller and
    ghost (two each, small random offsets, so they leave along the unstable or slow direction),
    near the attractors and slow points, and from states the system visits; driven trajectories
    (``drive`` of shape (T, m) or (b, T, m)) start from ``x0`` (default zeros).

    Returns
    -------
    ndarray of shape (b, n_steps + 1, n_states)
        Driven trajectories are cut or padded (with NaN) to ``n_steps + 1`` states.
    """
    import torch
    rng = np.random.default_rng(seed)
    n = dynamics.n_states
    fp = result.fixed_points
    scale = float(result.scale or fp.scale or 1.0)
    gx, _ = ghost_arrays(result.ghosts, n)
    kinds = np.asarray(fp.kind).astype(str)
    anchors = []
    for mask, copies in ((np.isin(kinds, ("saddle", "unstable")), 2), (None, 2),
                         (kinds == "stable", 1), (kinds == "slow", 1)):
        pts = gx if mask is None else np.asarray(fp.x, dtype=float)[mask]
        for p in pts:
            anchors.extend([p] * copies)
    anchors = anchors[:max(0, max_anchored)]
    starts = []
    if anchors:
        offsets = rng.standard_normal((len(anchors), n))
        offsets *= (0.08 * scale) / np.maximum(np.linalg.norm(offsets, axis=1, keepdims=True),
                                               1e-300)
        starts.append(np.asarray(anchors) + offsets)
    n_sampled = n_trajectories
    try:
        from fixedpoints import sample_initial_states
        starts.append(sample_initial_states(dynamics, n_sampled, n_steps=n_steps, seed=seed,
                                            n_trajectories=min(64, n_sampled * 4),
                                            init_scale=scale / max(1.0, math.sqrt(n)) * 2))
    except Exception as error:  # noqa: BLE001 - a portrait without context trajectories is fine
        logger.debug("could not sample context trajectories: %s", error)
    out = []
    if starts:
        x = np.vstack(starts)
        out.append(dynamics.simulate(torch.as_tensor(x, dtype=dynamics.dtype), n_steps)
                   .detach().cpu().double().numpy())
    if drive is not None and n_driven > 0 and dynamics.n_inputs > 0:
        seq = np.asarray(drive, dtype=float)
        seq = seq[None] if seq.ndim == 2 else seq
        seq = seq[:n_driven]
        start = np.zeros((len(seq), n)) if x0 is None else np.array(np.broadcast_to(
            np.asarray(x0, dtype=float).reshape(-1, n)[:1], (len(seq), n)))
        driven = dynamics.simulate(torch.as_tensor(start, dtype=dynamics.dtype), seq.shape[1],
                                   inputs=seq).detach().cpu().double().numpy()
        if driven.shape[1] >= n_steps + 1:
            driven = driven[:, :n_steps + 1]
        else:
            pad = np.full((len(driven), n_steps + 1 - driven.shape[1], n), np.nan)
            driven = np.concatenate([driven, pad], axis=1)
        out.append(driven)
    if not out:
        return np.empty((0, n_steps + 1, n))
    traj = np.concatenate(out, axis=0)
    return traj


def _latent_velocity(dynamics, basis: np.ndarray, kappa: np.ndarray) -> np.ndarray:
    """Velocity in latent coordinates at ``kappa (m, K)``: exact for low-rank models."""
    x = kappa @ np.linalg.pinv(basis).T
    return _state_velocity(dynamics, x) @ basis.T


def _state_velocity(dynamics, x: np.ndarray) -> np.ndarray:
    """Velocity at states ``x (m, n)`` as a float64 array (no autograd graph is built)."""
    import torch
    with torch.no_grad():
        v = dynamics.velocity(torch.as_tensor(x, dtype=dynamics.dtype, device=dynamics.device))
    return v.detach().cpu().double().numpy()


def _epoch_geometry(ctx: EpochContext):
    """(dynamics, trajectories (b, T, n) or None, latent basis or None) of one epoch."""
    model = ctx.source.load() if ctx.source is not None else None
    if model is None:
        return None, None, None
    basis = latent_basis(model)
    dynamics = as_dynamics(model, input=ctx.input, time=ctx.time, device=ctx.device)
    x0 = None
    if callable(getattr(model, "initial_state", None)) and ctx.drive is not None:
        try:
            x0 = model.initial_state(1).detach().cpu().double().numpy()
        except Exception:  # noqa: BLE001 - no usable initial state: draw without one
            x0 = None
    opts = ctx.options
    traj = portrait_trajectories(dynamics, ctx.result, n_trajectories=opts.n_trajectories,
                                 n_steps=opts.n_steps, drive=ctx.drive, n_driven=opts.n_driven,
                                 seed=opts.seed, x0=x0)
    return dynamics, traj, basis


def collect_states(ctx: EpochContext) -> Dict[str, Any]:
    """Pass 1 for one epoch: states for the projection and speeds for the colour scale."""
    dynamics, traj, basis = _epoch_geometry(ctx)
    n = ctx.result.fixed_points.n_states
    points = [np.asarray(ctx.result.fixed_points.x, dtype=float).reshape(-1, n)]
    gx, _ = ghost_arrays(ctx.result.ghosts, n)
    points.append(gx)
    for region in ctx.result.fixed_points.slow_regions:
        points.append(np.asarray(region.points, dtype=float).reshape(-1, n))
    # the first steps of trajectories from random starts are transients: leave them out of
    # the projection and the limits, so the portrait frames where the dynamics lives
    burn = 0 if traj is None else traj.shape[1] // 5
    states = np.empty((0, n)) if traj is None else traj[:, burn:].reshape(-1, n)
    states = states[np.all(np.isfinite(states), axis=1)]
    if len(states) > 3000:
        states = states[np.random.default_rng(ctx.options.seed).choice(len(states), 3000,
                                                                        replace=False)]
    return {"states": states, "points": np.vstack(points), "basis": basis}


def build_portrait(result: EpochAnalysis, projection: Projection, *,
                   trajectories: Optional[NDArray] = None, basis: Optional[NDArray] = None,
                   dynamics: Optional[Dynamics] = None, grid: int = 80) -> Portrait:
    """One epoch's :class:`analysis.plotting.Portrait` in the shared projection.

    The speed heatmap (and velocity field) is computed when the projection is exact
    (identity or latent) and ``dynamics`` is given.
    """
    from .plotting import Portrait

    fp = result.fixed_points
    n = fp.n_states
    d = projection.n_components
    if projection.kind == "latent" and basis is None:
        raise ValueError(f"epoch {result.epoch}: a latent projection needs the model's latent "
                         f"basis; pass basis=latent_basis(model)")

    def tf(a):
        return projection.transform(a, basis)

    gx, gdir = ghost_arrays(result.ghosts, n)
    regions = tuple(tf(np.asarray(r.points, dtype=float).reshape(-1, n))
                    for r in fp.slow_regions)
    traj = None
    if trajectories is not None and len(trajectories):
        traj = tf(np.asarray(trajectories, dtype=float))
    grid_axes = grid_speed = grid_velocity = None
    if dynamics is not None and projection.exact:
        axes = tuple(np.linspace(lo, hi, grid if d == 2 else 6 * grid)
                     for lo, hi in projection.limits)
        if d == 2:
            mesh = np.stack(np.meshgrid(axes[0], axes[1]), axis=-1).reshape(-1, 2)
        else:
            mesh = axes[0][:, None]
        if projection.kind == "latent" and basis is not None:  # (latent needs one: above)
            v = _latent_velocity(dynamics, basis, mesh)
        else:
            full = np.zeros((len(mesh), n))
            full[:, :d] = mesh
            v = _state_velocity(dynamics, full)[:, :d]
        q = 0.5 * np.sum(v ** 2, axis=1)
        grid_axes = axes
        if d == 2:
            grid_speed = q.reshape(len(axes[1]), len(axes[0]))
            grid_velocity = v.reshape(len(axes[1]), len(axes[0]), 2)
        else:
            grid_speed = q
            grid_velocity = v[:, 0]
    return Portrait(
        epoch=int(result.epoch), loss=float(result.loss),
        labels=projection.labels, limits=projection.limits,
        points=tf(np.asarray(fp.x, dtype=float).reshape(-1, n)), kinds=np.asarray(fp.kind),
        ghosts=tf(gx) if len(gx) else np.empty((0, d)),
        ghost_directions=projection.transform_direction(gdir, basis) if len(gx) else np.empty(
            (0, d)),
        slow_regions=regions, trajectories=traj, grid=grid_axes, grid_speed=grid_speed,
        grid_velocity=grid_velocity, title=counts_text(result.counts()),
        time=str(fp.time))


@dataclass(frozen=True)
class RenderJob:
    """One portrait to draw: its epoch, the shared projection, the PNG and its cache key."""

    ctx: EpochContext
    projection: Projection
    speed_range: Optional[Tuple[float, float]]
    png: str
    key: str


def render_portrait(job: RenderJob) -> Dict[str, Any]:
    """Pass 2 for one epoch: draw and save its portrait (skipped if the PNG has the same key)."""
    from .plotting import plot_portrait, save_figure

    path = Path(job.png)
    if png_key(path) == job.key:
        return {"epoch": job.ctx.result.epoch, "png": str(path), "reused": True}
    portrait = _portrait(job.ctx, job.projection)
    artists = plot_portrait(portrait, speed_range=job.speed_range)
    save_figure(artists["figure"], path, dpi=job.ctx.options.dpi,
                metadata={"Software": "ghostscope", "ghostscope-key": job.key})
    return {"epoch": job.ctx.result.epoch, "png": str(path), "reused": False}


def grid_trajectories(dynamics: Dynamics, projection: Projection, basis: Optional[NDArray],
                       n_steps: int, per_axis: int = 5) -> NDArray:
    """Trajectories from a grid of starts spread over the plot.

    For exact projections (latent, identity) the starts are states with those coordinates;
    for PCA they are the points of the plane through the mean of all states, so the picture
    also shows where states away from the visited ones go."""
    import torch
    axes = [np.linspace(lo + 0.1 * (hi - lo), hi - 0.1 * (hi - lo),
                        per_axis if projection.n_components == 2 else 2 * per_axis)
            for lo, hi in projection.limits]
    z = np.stack(np.meshgrid(*axes), axis=-1).reshape(-1, projection.n_components)
    if projection.kind == "latent":
        x = projection.lift(z, basis)
    elif projection.kind == "identity":
        x = np.zeros((len(z), projection.n_states))
        x[:, :projection.n_components] = z
    else:
        x = projection.lift(z)
    return dynamics.simulate(torch.as_tensor(x, dtype=dynamics.dtype), n_steps
                             ).detach().cpu().double().numpy()


def png_key(path: Path) -> Optional[str]:
    """The cache key stored in a portrait PNG's metadata (None if absent or unreadable)."""
    if not path.is_file():
        return None
    try:
        from PIL import Image
        with Image.open(path) as image:
            return image.text.get("ghostscope-key")
    except Exception:  # noqa: BLE001 - unreadable or truncated: redraw it
        return None


def _jsonable(value: Any) -> Any:
    """Arrays and numpy scalars for :func:`render_key` (whole, where ``str`` would elide)."""
    if isinstance(value, np.ndarray):
        return {"shape": list(value.shape), "sha256": hashlib.sha256(
            np.ascontiguousarray(value).tobytes()).hexdigest()[:20], "dtype": str(value.dtype)}
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def render_key(*parts: Any) -> str:
    """A short digest of what a file of the report is made from (JSON of ``parts``; arrays by
    their shape, dtype and bytes)."""
    text = json.dumps(parts, sort_keys=True, default=_jsonable)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def epoch_key(ctx: EpochContext, code: str) -> Optional[str]:
    """The key of what pass 1 computes for one epoch (its trajectories and states).

    Built from the drawing code's digest, the epoch's analysis (:func:`result_key`), the
    trajectory options, the input, drive, time form and device, and the model's file with its
    stamp (:func:`analysis.reuse.file_stamp`). None when the model is an in-memory object,
    whose identity the key cannot know (its epoch is then always simulated again).
    """
    model: Any = None
    if ctx.source is not None:
        path = source_file(ctx.source)
        if path is None:
            return None
        model = (path, source_stamp(ctx.source))
    opts = ctx.options
    drive = None if ctx.drive is None else np.asarray(ctx.drive, dtype=float)
    return render_key("epoch", REPORT_VERSION, code, result_key(ctx.result), opts.n_trajectories,
                      opts.n_steps, opts.n_driven, opts.seed, ctx.input, drive, ctx.time,
                      ctx.device, model)


def _portrait(ctx: EpochContext, projection: Projection) -> Portrait:
    """One epoch's portrait, with trajectories from a grid of starts when the model is known."""
    dynamics, traj, basis = _epoch_geometry(ctx)
    if dynamics is not None:
        extra = grid_trajectories(dynamics, projection, basis, ctx.options.n_steps,
                                  per_axis=5 if projection.exact else 4)
        traj = extra if traj is None else np.concatenate([traj, extra], axis=0)
    return build_portrait(ctx.result, projection, trajectories=traj, basis=basis,
                          dynamics=dynamics, grid=ctx.options.grid)


def single_portrait(result: EpochAnalysis, source: Optional[ModelSource], png: Path, *,
                    input: Optional[Tuple[float, ...]] = None, drive: Optional[Any] = None,
                    time: Optional[str] = None, device: str = "cpu",
                    options: Optional[PortraitOptions] = None) -> Path:
    """Draw one epoch's portrait (a projection fitted on this epoch alone) to ``png``.

    Parameters
    ----------
    result : EpochAnalysis
    source : ModelSource, optional
        Where the epoch's model comes from (trajectories and the speed heatmap need it).
    png : path
    input, drive, time
        As in the analysis' settings.
    device : str
    options : PortraitOptions, optional
    """
    from .plotting import plot_portrait, save_figure

    ctx = EpochContext(result, source, input, drive, time, device, options or PortraitOptions())
    collected = collect_states(ctx)
    fitter = ProjectionFitter(kind=ctx.options.projection, seed=ctx.options.seed)
    fitter.add(collected["states"], collected["basis"], points=collected["points"])
    portrait = _portrait(ctx, fitter.fit())
    return save_figure(plot_portrait(portrait)["figure"], png, dpi=ctx.options.dpi)
