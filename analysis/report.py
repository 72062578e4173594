"""Pictures and the HTML report of a series analysis.

:func:`write_report` turns a :class:`analysis.api.SeriesAnalysis` into

- ``portraits/epoch_XXXX.png``: one phase portrait per analyzed epoch, all in one shared
  projection (:mod:`analysis.projection`), with trajectories, fixed points by kind, ghosts and
  their slow direction, slow regions, and the speed as a heatmap where the projection is exact
  (one- or two-state systems, latent coordinates of rank-1/rank-2 models);
- ``timeline.png``: the loss with restructuring events and the drop marked, counts by kind;
- ``portraits.gif``: the portraits as an animation;
- ``report.html``: one self-contained page (images embedded as base64, inline CSS and JS, no
  external resource) with an epoch slider over the portraits, the timeline and the events table.

It works in two streamed passes over the epochs, so memory does not grow with their number:
pass 1 loads each epoch's model, simulates a few trajectories and feeds a
:class:`~analysis.projection.ProjectionFitter` (keeping only running sums); pass 2 renders each
portrait (in parallel through :func:`analysis.execution.run_tasks`). A portrait already on disk
drawn from the same analysis, projection and drawing settings is reused (the key is stored in the
PNG's metadata); ``force=True`` redraws it. Every file is written to a temporary name and
renamed.
"""
from __future__ import annotations

import base64
import html
import json
import logging
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .execution import run_tasks
from .projection import Projection, ProjectionFitter, latent_basis

__all__ = ["ModelSource", "PortraitOptions", "write_report", "portrait_trajectories",
           "build_portrait", "render_portrait", "epoch_counts", "ghost_arrays",
           "write_timeline", "write_gif", "write_html", "REPORT_VERSION"]

logger = logging.getLogger(__name__)

#: Bump when the drawing changes, so that cached portraits are redrawn.
REPORT_VERSION = 1


def _code_digest() -> str:
    """A digest of the drawing code: portraits cached by an older version are redrawn."""
    import hashlib
    digest = hashlib.sha256()
    here = Path(__file__).resolve().parent
    for name in ("plotting.py", "report.py", "projection.py"):
        try:
            digest.update((here / name).read_bytes())
        except OSError:
            digest.update(name.encode())
    return digest.hexdigest()[:12]


# ------------------------------------------------------------------------ model sources
@dataclass(frozen=True)
class ModelSource:
    """How a worker gets one epoch's model: a checkpoint file and reader options, or an object.

    Attributes
    ----------
    path : str, optional
        Checkpoint file, read with :func:`checkpoints.loading.load_checkpoint`.
    options : dict
        Keyword arguments for ``load_checkpoint`` (architecture, prefix, model_factory, ...).
    obj : object, optional
        An in-memory ``nn.Module`` or :class:`fixedpoints.Dynamics` (used as is).
    """

    path: Optional[str] = None
    options: Dict[str, Any] = field(default_factory=dict)
    obj: Any = None

    def load(self):
        """The model (or Dynamics)."""
        if self.obj is not None:
            return self.obj
        if self.path is None:
            return None
        from checkpoints.loading import load_checkpoint
        return load_checkpoint(self.path, **self.options).model


def sources_from_series(series) -> Dict[int, ModelSource]:
    """``{epoch: ModelSource}`` for the files of a :class:`checkpoints.CheckpointSeries`."""
    options = dict(architecture=series.architecture, prefix=series.prefix,
                   trust_pickle=series.trust_pickle,
                   config=series.config if series.config is not None else False,
                   dtype=series.dtype)
    factory = series.model_factory
    if factory is not None:
        options["model_factory"] = factory
    return {entry.epoch: ModelSource(entry.path, options, None) for entry in series.entries
            if entry.epoch is not None}


def _sources(models, epochs: Sequence[int]) -> Dict[int, ModelSource]:
    if models is None:
        return {}
    if hasattr(models, "entries") and hasattr(models, "architecture"):
        return sources_from_series(models)
    if isinstance(models, Mapping):
        return {int(e): m if isinstance(m, ModelSource) else ModelSource(obj=m)
                for e, m in models.items()}
    if callable(models) and not hasattr(models, "forward"):
        return {int(e): ModelSource(obj=models(e)) for e in epochs}
    raise TypeError("models must be a CheckpointSeries, a mapping epoch -> model, or a callable "
                    "epoch -> model")


# ------------------------------------------------------------------------ options
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

    def to_dict(self) -> Dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class _Context:
    """What both passes need for one epoch (pickled to workers)."""

    result: Any
    source: Optional[ModelSource]
    input: Optional[Tuple[float, ...]]
    drive: Optional[Any]
    time: Optional[str]
    device: str
    options: PortraitOptions


# ------------------------------------------------------------------------ per-epoch geometry
def ghost_arrays(ghosts, n_states: int) -> Tuple[np.ndarray, np.ndarray]:
    """Locations ``(g, n)`` and slow directions ``(g, n)`` of a ghosts result (empty if None)."""
    empty = np.empty((0, n_states))
    if ghosts is None:
        return empty, empty
    x = None
    for name in ("x", "location", "locations", "position", "positions"):
        if getattr(ghosts, name, None) is not None:
            x = np.asarray(getattr(ghosts, name), dtype=float).reshape(-1, n_states)
            break
    if x is None or len(x) == 0:
        return empty, empty
    direction = None
    for name in ("direction", "slow_direction", "slow_directions", "null_vector", "directions"):
        if getattr(ghosts, name, None) is not None:
            direction = np.asarray(getattr(ghosts, name), dtype=float).reshape(-1, n_states)
            break
    if direction is None or len(direction) != len(x):
        direction = np.full_like(x, np.nan)
    return x, direction


def epoch_counts(result) -> Dict[str, int]:
    """Points of each kind at one epoch (fixed points by kind, ghosts, slow regions)."""
    topology = getattr(result, "topology", None)
    if topology is not None and hasattr(topology, "signature"):
        try:
            return {k: int(v) for k, v in topology.signature().counts.items()}
        except Exception:  # noqa: BLE001 - fall back to the finder's own counts
            pass
    fp = result.fixed_points
    counts = {k: int(v) for k, v in fp.counts().items()}
    counts["ghost"] = len(ghost_arrays(getattr(result, "ghosts", None), fp.n_states)[0])
    counts["slow_region"] = len(getattr(fp, "slow_regions", ()))
    return counts


def _counts_text(counts: Mapping[str, int]) -> str:
    """``"8 stable · 12 saddles · 1 ghost"``."""
    names = (("stable", "stable", "stable"), ("saddle", "saddle", "saddles"),
             ("unstable", "unstable", "unstable"), ("slow", "slow point", "slow points"),
             ("ghost", "ghost", "ghosts"), ("slow_region", "slow region", "slow regions"))
    parts = [f"{counts[k]} {one if counts[k] == 1 else many}" for k, one, many in names
             if counts.get(k, 0)]
    return " · ".join(parts) if parts else "no fixed or slow points found"


def _dynamics(model, input, time, device):
    """A fixedpoints.Dynamics for a model or Dynamics, with the constant input bound."""
    if model is None:
        return None
    from fixedpoints import Dynamics, from_module
    if isinstance(model, Dynamics):
        dyn = model
        if input is not None:
            dyn = dyn.with_input(np.asarray(input, dtype=float))
        return dyn
    return from_module(model, input=None if input is None else np.asarray(input, dtype=float),
                       time=time, device=device)


def portrait_trajectories(dynamics, result, *, n_trajectories: int = 24, n_steps: int = 120,
                          drive=None, n_driven: int = 4, seed: int = 0, x0=None,
                          max_anchored: int = 96) -> np.ndarray:
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
    scale = float(getattr(result, "scale", 0.0) or getattr(fp, "scale", 0.0) or 1.0)
    gx, _ = ghost_arrays(getattr(result, "ghosts", None), n)
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
    return v.detach().cpu().double().numpy() if hasattr(v, "detach") else np.asarray(v, float)


def _epoch_geometry(ctx: _Context):
    """(dynamics, trajectories (b, T, n) or None, latent basis or None) of one epoch."""
    model = ctx.source.load() if ctx.source is not None else None
    if model is None:
        return None, None, None
    basis = latent_basis(model)
    dynamics = _dynamics(model, ctx.input, ctx.time, ctx.device)
    x0 = None
    if hasattr(model, "initial_state") and ctx.drive is not None:
        try:
            x0 = model.initial_state(1).detach().cpu().double().numpy()
        except Exception:  # noqa: BLE001
            x0 = None
    opts = ctx.options
    traj = portrait_trajectories(dynamics, ctx.result, n_trajectories=opts.n_trajectories,
                                 n_steps=opts.n_steps, drive=ctx.drive, n_driven=opts.n_driven,
                                 seed=opts.seed, x0=x0)
    return dynamics, traj, basis


def _collect(ctx: _Context) -> Dict[str, Any]:
    """Pass 1 for one epoch: states for the projection and speeds for the colour scale."""
    dynamics, traj, basis = _epoch_geometry(ctx)
    n = ctx.result.fixed_points.n_states
    points = [np.asarray(ctx.result.fixed_points.x, dtype=float).reshape(-1, n)]
    gx, _ = ghost_arrays(getattr(ctx.result, "ghosts", None), n)
    points.append(gx)
    for region in getattr(ctx.result.fixed_points, "slow_regions", ()):
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


def build_portrait(result, projection: Projection, *, trajectories=None, basis=None,
                   dynamics=None, grid: int = 80) -> "Any":
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
    tf = (lambda a: projection.transform(a, basis))
    gx, gdir = ghost_arrays(getattr(result, "ghosts", None), n)
    regions = tuple(tf(np.asarray(r.points, dtype=float).reshape(-1, n))
                    for r in getattr(fp, "slow_regions", ()))
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
        if projection.kind == "latent":
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
    counts = epoch_counts(result)
    loss = getattr(result, "loss", math.nan)
    return Portrait(
        epoch=int(result.epoch), loss=float(loss) if loss is not None else math.nan,
        labels=projection.labels, limits=projection.limits,
        points=tf(np.asarray(fp.x, dtype=float).reshape(-1, n)), kinds=np.asarray(fp.kind),
        ghosts=tf(gx) if len(gx) else np.empty((0, d)),
        ghost_directions=projection.transform_direction(gdir, basis) if len(gx) else np.empty(
            (0, d)),
        slow_regions=regions, trajectories=traj, grid=grid_axes, grid_speed=grid_speed,
        grid_velocity=grid_velocity, title=_counts_text(counts),
        time=str(getattr(fp, "time", "discrete")))


@dataclass(frozen=True)
class _RenderJob:
    ctx: _Context
    projection: Projection
    speed_range: Optional[Tuple[float, float]]
    png: str
    key: str


def render_portrait(job: _RenderJob) -> Dict[str, Any]:
    """Pass 2 for one epoch: draw and save its portrait (skipped if the PNG has the same key)."""
    from .plotting import plot_portrait, save_figure

    path = Path(job.png)
    if _png_key(path) == job.key:
        return {"epoch": job.ctx.result.epoch, "png": str(path), "reused": True}
    dynamics, traj, basis = _epoch_geometry(job.ctx)
    if dynamics is not None:
        extra = _grid_trajectories(dynamics, job.projection, basis, job.ctx.options.n_steps,
                                   per_axis=5 if job.projection.exact else 4)
        traj = extra if traj is None else np.concatenate([traj, extra], axis=0)
    portrait = build_portrait(job.ctx.result, job.projection, trajectories=traj, basis=basis,
                              dynamics=dynamics, grid=job.ctx.options.grid)
    artists = plot_portrait(portrait, speed_range=job.speed_range)
    save_figure(artists["figure"], path, dpi=job.ctx.options.dpi,
                metadata={"Software": "ghostscope", "ghostscope-key": job.key})
    return {"epoch": job.ctx.result.epoch, "png": str(path), "reused": False}


def _grid_trajectories(dynamics, projection: Projection, basis, n_steps: int,
                       per_axis: int = 5) -> np.ndarray:
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


def _png_key(path: Path) -> Optional[str]:
    if not path.is_file():
        return None
    try:
        from PIL import Image
        with Image.open(path) as image:
            return image.text.get("ghostscope-key")
    except Exception:  # noqa: BLE001 - unreadable or truncated: redraw it
        return None


def _key(*parts: Any) -> str:
    import hashlib
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _result_key(result) -> str:
    """What identifies one epoch's analysis (its settings hash, or its points)."""
    digest = getattr(result, "settings_hash", "") or ""
    fp = result.fixed_points
    x = np.ascontiguousarray(np.asarray(fp.x, dtype=float))
    import hashlib
    return digest + ":" + hashlib.sha256(x.tobytes()).hexdigest()[:16]


# ------------------------------------------------------------------------ timeline, gif, html
def _loss_series(analysis) -> Tuple[Optional[np.ndarray], Optional[np.ndarray]]:
    loss = getattr(analysis, "loss", None)
    if loss is not None:
        for ex, vy in (("epochs", "values"), ("epochs", "loss"), ("epoch", "loss")):
            if hasattr(loss, ex) and hasattr(loss, vy):
                x = np.asarray(getattr(loss, ex), dtype=float)
                y = np.asarray(getattr(loss, vy), dtype=float)
                if x.shape == y.shape and len(x):
                    return x, y
    epochs = np.asarray([r.epoch for r in analysis.results], dtype=float)
    values = np.asarray([getattr(r, "loss", math.nan) for r in analysis.results], dtype=float)
    if np.isfinite(values).any():
        return epochs, values
    return None, None


def write_timeline(analysis, path) -> Path:
    """Draw ``timeline.png``: loss with events and the drop marked, counts by kind."""
    from .plotting import plot_timeline, save_figure

    epochs = [r.epoch for r in analysis.results]
    per_epoch = [epoch_counts(r) for r in analysis.results]
    kinds = ("stable", "saddle", "unstable", "slow", "ghost", "slow_region")
    counts = {k: [c.get(k, 0) for c in per_epoch] for k in kinds}
    loss_x, loss_y = _loss_series(analysis)
    events = [(float(getattr(e, "epoch", e.epoch_after)), e.kind) for e in analysis.events]
    failed = [f.epoch for f in getattr(analysis, "failed", ()) if f.epoch is not None]
    rate = episodes = None
    if callable(getattr(analysis, "restructuring", None)) and len(epochs) > 1:
        curve = analysis.restructuring()
        if curve.intervals:
            edges = [curve.intervals[0].epoch_before] + [i.epoch_after for i in curve.intervals]
            rate = (edges, curve.rates())
            episodes = [(e.epoch_start, e.epoch_end) for e in curve.episodes]
    artists = plot_timeline(epochs, loss_y, counts, events, getattr(analysis, "drop_epoch", None),
                            loss_epochs=loss_x, failed=failed, rate=rate,
                            episodes=episodes or ())
    return save_figure(artists["figure"], path)


def write_gif(pngs: Sequence[Path], path, *, max_frames: int = 60, width: int = 480,
              duration_ms: int = 350) -> Optional[Path]:
    """Animate the portraits (evenly subsampled to ``max_frames``) into a looping GIF."""
    from PIL import Image

    pngs = [Path(p) for p in pngs]
    if not pngs:
        return None
    if len(pngs) > max_frames:
        keep = np.unique(np.linspace(0, len(pngs) - 1, max_frames).round().astype(int))
        pngs = [pngs[i] for i in keep]
    frames = []
    for p in pngs:
        with Image.open(p) as image:
            image = image.convert("RGB")
            height = max(1, round(image.height * width / image.width))
            frames.append(image.resize((width, height), Image.LANCZOS)
                          .quantize(colors=255, method=Image.Quantize.MEDIANCUT))
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:],
                       duration=duration_ms, loop=0, optimize=False)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _data_url(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _fmt(value, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "–"
        return f"{value:.{digits}g}"
    return str(value)


_CSS = """
:root { --ink:#1f2933; --muted:#52606d; --line:#d9e2ec; --accent:#7b2cbf; --bg:#f8fafc; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
       background: var(--bg); margin: 0; }
header, main { max-width: 1100px; margin: 0 auto; padding: 0 20px; }
header { padding-top: 22px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 26px 0 10px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
.sub { color: var(--muted); margin: 0; word-break: break-all; }
.facts { display: flex; flex-wrap: wrap; gap: 10px; margin: 14px 0 0; padding: 0; list-style: none; }
.facts li { background: white; border: 1px solid var(--line); border-radius: 8px; padding: 6px 12px; }
.facts b { display: block; font-size: 18px; }
.viewer { background: white; border: 1px solid var(--line); border-radius: 10px; padding: 14px; }
.controls { display: flex; align-items: center; gap: 10px; flex-wrap: wrap; }
.controls input[type=range] { flex: 1; min-width: 200px; accent-color: var(--accent); }
.controls button { font: inherit; border: 1px solid var(--line); background: white; border-radius: 6px;
                   padding: 3px 10px; cursor: pointer; }
#epoch-label { font-variant-numeric: tabular-nums; min-width: 150px; font-weight: 600; }
#frames { text-align: center; margin-top: 10px; }
#frames img { max-width: 100%; height: auto; }
#frame-caption { color: var(--muted); text-align: center; margin: 4px 0 0; }
img.timeline { max-width: 100%; height: auto; background: white; border: 1px solid var(--line);
               border-radius: 10px; }
table { border-collapse: collapse; width: 100%; background: white; font-size: 14px; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 8px; text-align: left; vertical-align: top; }
th { background: #eef2f7; position: sticky; top: 0; }
tr.event { cursor: pointer; }
tr.event:hover, tr.event.current { background: #f3e8ff; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 13px; }
pre { background: white; border: 1px solid var(--line); border-radius: 8px; padding: 10px; overflow: auto; }
.empty { color: var(--muted); font-style: italic; }
footer { max-width: 1100px; margin: 30px auto; padding: 0 20px; color: var(--muted); font-size: 13px; }
"""

_JS = """
(function () {
  'use strict';
  var frames = Array.prototype.slice.call(document.querySelectorAll('#frames img'));
  var slider = document.getElementById('epoch-slider');
  var label = document.getElementById('epoch-label');
  var caption = document.getElementById('frame-caption');
  var rows = Array.prototype.slice.call(document.querySelectorAll('tr.event'));
  var timer = null;
  function show(i) {
    if (!frames.length) { return; }
    i = Math.max(0, Math.min(frames.length - 1, i));
    frames.forEach(function (f, j) { f.hidden = (j !== i); });
    var f = frames[i];
    slider.value = String(i);
    label.textContent = 'epoch ' + f.dataset.epoch + ' (' + (i + 1) + ' / ' + frames.length + ')';
    caption.textContent = f.dataset.caption || '';
    rows.forEach(function (r) { r.classList.toggle('current', r.dataset.epoch === f.dataset.epoch); });
  }
  function step(d) { show(Number(slider.value) + d); }
  if (slider) {
    slider.addEventListener('input', function () { show(Number(slider.value)); });
    document.getElementById('prev').addEventListener('click', function () { step(-1); });
    document.getElementById('next').addEventListener('click', function () { step(1); });
    var play = document.getElementById('play');
    play.addEventListener('click', function () {
      if (timer) { clearInterval(timer); timer = null; play.textContent = '▶ play'; return; }
      play.textContent = '❚❚ pause';
      timer = setInterval(function () {
        if (Number(slider.value) >= frames.length - 1) { show(0); } else { step(1); }
      }, 450);
    });
    document.addEventListener('keydown', function (e) {
      if (e.target === slider) { return; }
      if (e.key === 'ArrowRight') { step(1); } else if (e.key === 'ArrowLeft') { step(-1); }
    });
  }
  rows.forEach(function (r) {
    r.addEventListener('click', function () {
      var k = frames.findIndex(function (f) { return f.dataset.epoch === r.dataset.epoch; });
      if (k >= 0) { show(k); document.getElementById('portraits').scrollIntoView(); }
    });
  });
  show(0);
}());
"""


def write_html(path, *, title: str, subtitle: str, facts: Sequence[Tuple[str, str]],
               frames: Sequence[Tuple[int, Path, str]], timeline: Optional[Path],
               events: Sequence[Mapping[str, Any]], failed: Sequence[Mapping[str, Any]],
               details: Mapping[str, Any]) -> Path:
    """Write the self-contained ``report.html`` (images streamed in one at a time).

    Parameters
    ----------
    frames : sequence of (epoch, png path, caption)
    events : sequence of dicts with epoch, epoch_before, epoch_after, kind, points, lead_time,
        detail, and ``sentence`` (the event in words, shown instead of the JSON detail)
    failed : sequence of dicts with epoch, source, reason
    details : JSON-ready settings and versions, shown at the bottom
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    esc = html.escape
    try:
        with open(tmp, "w", encoding="utf-8") as out:
            out.write("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                      f"<title>{esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n")
            out.write(f"<header><h1>{esc(title)}</h1><p class=\"sub\">{esc(subtitle)}</p>\n"
                      "<ul class=\"facts\">")
            for name, value in facts:
                out.write(f"<li><b>{esc(value)}</b>{esc(name)}</li>")
            out.write("</ul></header>\n<main>\n")
            out.write("<section id=\"portraits\"><h2>Phase portraits</h2>\n")
            if frames:
                out.write("<div class=\"viewer\"><div class=\"controls\">"
                          "<button id=\"prev\" type=\"button\" aria-label=\"previous epoch\">◀</button>"
                          f"<input id=\"epoch-slider\" type=\"range\" min=\"0\" "
                          f"max=\"{len(frames) - 1}\" value=\"0\" step=\"1\" "
                          "aria-label=\"epoch\">"
                          "<button id=\"next\" type=\"button\" aria-label=\"next epoch\">▶</button>"
                          "<button id=\"play\" type=\"button\">▶ play</button>"
                          "<span id=\"epoch-label\"></span></div>\n<div id=\"frames\">")
                for i, (epoch, png, caption) in enumerate(frames):
                    hidden = "" if i == 0 else " hidden"
                    out.write(f"<img data-epoch=\"{int(epoch)}\" data-caption=\"{esc(caption)}\" "
                              f"alt=\"phase portrait at epoch {int(epoch)}\"{hidden} src=\"")
                    out.write(_data_url(png))
                    out.write("\">\n")
                out.write("</div><p id=\"frame-caption\"></p></div>\n")
            else:
                out.write("<p class=\"empty\">No epoch could be analyzed, so there is no "
                          "portrait.</p>\n")
            out.write("</section>\n<section id=\"timeline\"><h2>Timeline</h2>\n")
            if timeline is not None:
                out.write(f"<img class=\"timeline\" alt=\"loss and point counts over epochs\" "
                          f"src=\"{_data_url(timeline)}\">\n")
            out.write("</section>\n<section id=\"events\"><h2>Restructuring events</h2>\n")
            if events:
                out.write("<table><thead><tr><th>between</th><th>what happened</th>"
                          "<th>kind</th><th>lead time</th></tr></thead><tbody>\n")
                for e in events:
                    sentence = e.get("sentence") or json.dumps(e.get("detail", {}), default=str)
                    out.write(
                        f"<tr class=\"event\" data-epoch=\"{int(e['epoch_after'])}\">"
                        f"<td>{int(e['epoch_before'])} → {int(e['epoch_after'])}</td>"
                        f"<td>{esc(sentence)}</td>"
                        f"<td>{esc(str(e['kind']))}</td>"
                        f"<td class=\"num\">{esc(_fmt(e.get('lead_time')))}</td></tr>\n")
                out.write("</tbody></table>\n<p class=\"sub\">Every detail (points, distances, "
                          "eigenvalues) is in events.csv and events.json.</p>\n")
            else:
                out.write("<p class=\"empty\">No restructuring event between consecutive "
                          "analyzed epochs.</p>\n")
            out.write("</section>\n")
            if failed:
                out.write("<section id=\"failed\"><h2>Epochs that failed</h2><table><thead><tr>"
                          "<th>epoch</th><th>file</th><th>reason</th></tr></thead><tbody>\n")
                for f in failed:
                    out.write(f"<tr><td class=\"num\">{esc(_fmt(f.get('epoch')))}</td>"
                              f"<td><code>{esc(str(f.get('source', '')))}</code></td>"
                              f"<td>{esc(str(f.get('reason', '')))}</td></tr>\n")
                out.write("</tbody></table></section>\n")
            out.write("<section id=\"settings\"><h2>Settings and versions</h2><pre>")
            out.write(esc(json.dumps(details, indent=2, default=str)))
            out.write("</pre></section>\n</main>\n<footer>Written by ghostscope. Everything is "
                      "embedded in this one file.</footer>\n")
            out.write(f"<script>{_JS}</script>\n</body>\n</html>\n")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _versions() -> Dict[str, str]:
    import platform
    out = {"python": platform.python_version()}
    for name in ("ghostscope", "torch", "numpy", "scipy", "matplotlib", "networkx"):
        try:
            if name == "ghostscope":
                from importlib.metadata import version
                out[name] = version("ghostscope")
            else:
                out[name] = __import__(name).__version__
        except Exception:  # noqa: BLE001
            continue
    return out


def _settings_dict(settings) -> Dict[str, Any]:
    if settings is None:
        return {}
    if hasattr(settings, "to_dict"):
        try:
            return settings.to_dict()
        except Exception:  # noqa: BLE001
            pass
    if hasattr(settings, "__dataclass_fields__"):
        return {k: getattr(settings, k) for k in settings.__dataclass_fields__}
    return dict(settings)


# ------------------------------------------------------------------------ the whole report
def write_report(analysis, out, *, models=None, jobs: int = 1, scheduler=None,
                 progress: bool = False, force: bool = False, device: str = "cpu",
                 options: Optional[PortraitOptions] = None, title: Optional[str] = None,
                 source: Optional[str] = None) -> Path:
    """Write portraits, the timeline, the GIF and ``report.html`` of a series analysis.

    Parameters
    ----------
    analysis : analysis.api.SeriesAnalysis
        The analysis (``results``, ``events``, ``failed``, ``loss``, ``drop_epoch``,
        ``settings``).
    out : path
        Output directory (created if missing).
    models : CheckpointSeries, mapping epoch -> model/Dynamics, or callable, optional
        Where each epoch's model comes from, for trajectories and the speed heatmap. Without
        it the portraits show the points only.
    jobs, scheduler, progress
        As :func:`analysis.execution.run_tasks` (portraits are drawn in parallel).
    force : bool
        Redraw portraits even when an identical one is on disk.
    device : str
        Torch device for trajectories and the speed grid.
    options : PortraitOptions, optional
    title, source : str, optional
        Page title and the analyzed directory (shown under the title).

    Returns
    -------
    Path
        The ``report.html`` written.
    """
    options = options or PortraitOptions()
    out = Path(out)
    (out / "portraits").mkdir(parents=True, exist_ok=True)
    results = list(analysis.results)
    settings = getattr(analysis, "settings", None)
    epochs = [int(r.epoch) for r in results]
    sources = _sources(models, epochs)
    u = getattr(settings, "input", None)
    drive = getattr(settings, "drive", None)
    time = getattr(settings, "time", None)
    contexts = [_Context(r, sources.get(int(r.epoch)), u, drive, time, device, options)
                for r in results]

    # pass 1: the shared projection (streamed; in this process, it is cheap)
    fitter = ProjectionFitter(kind=options.projection, seed=options.seed)
    failures: Dict[int, str] = {}
    for index, item in run_tasks(_collect, contexts, jobs=1, progress=progress,
                                 desc="projection"):
        if isinstance(item, BaseException):
            failures[index] = f"{type(item).__name__}: {item}"
            logger.warning("epoch %s: no trajectories for the portrait (%s)", epochs[index], item)
            r = results[index]
            item = {"states": np.empty((0, r.fixed_points.n_states)),
                    "points": np.asarray(r.fixed_points.x, dtype=float), "basis": None}
            contexts[index] = replace(contexts[index], source=None)
        fitter.add(item["states"], item["basis"], points=item["points"])
    frames: List[Tuple[int, Path, str]] = []
    projection = None
    if results:
        try:
            projection = fitter.fit()
        except ValueError as error:
            logger.warning("no portraits: %s", error)
    speed_range = None  # each portrait scales its own heatmap (6 decades below its fastest)

    # pass 2: portraits
    if projection is not None:
        proj_key = projection.key()
        code = _code_digest()
        jobs_list = []
        for ctx in contexts:
            png = out / "portraits" / f"epoch_{int(ctx.result.epoch):04d}.png"
            key = _key(REPORT_VERSION, code, _result_key(ctx.result), proj_key, speed_range,
                       options.to_dict(), ctx.input, ctx.time, ctx.source is not None,
                       float(getattr(ctx.result, "loss", math.nan)))
            if force and png.exists():
                png.unlink()
            jobs_list.append(_RenderJob(ctx, projection, speed_range, str(png), key))
        for index, item in run_tasks(render_portrait, jobs_list, jobs=jobs, scheduler=scheduler,
                                     progress=progress, desc="portraits"):
            if isinstance(item, BaseException):
                failures[index] = f"{type(item).__name__}: {item}"
                logger.warning("epoch %s: the portrait could not be drawn (%s)", epochs[index],
                               item)
        for ctx, job in zip(contexts, jobs_list):
            if Path(job.png).exists() and _png_key(Path(job.png)) == job.key:
                frames.append((int(ctx.result.epoch), Path(job.png),
                               _counts_text(epoch_counts(ctx.result))))
        projection_path = out / "projection.json"
        _write_text(projection_path, json.dumps(projection.to_dict(), indent=1))

    timeline = write_timeline(analysis, out / "timeline.png")
    write_gif([p for _, p, _ in frames], out / "portraits.gif", max_frames=options.gif_frames,
              width=options.gif_width)

    from .events import describe_event

    drop = getattr(analysis, "drop_epoch", None)
    events = []
    for e in analysis.events:
        entry = e.to_dict() if hasattr(e, "to_dict") else dict(vars(e))
        entry.setdefault("epoch", float(entry.get("epoch_after", 0)))
        if hasattr(e, "detail") and hasattr(e, "points"):
            entry["sentence"] = describe_event(e, drop)
        events.append(entry)
    failed = [{"epoch": f.epoch, "source": f.source, "reason": f.reason}
              for f in getattr(analysis, "failed", ())]
    counts_last = epoch_counts(results[-1]) if results else {}
    facts = [("epochs analyzed", str(len(results))),
             ("failed", str(len(failed))),
             ("events", str(len(events))),
             ("loss drop at epoch", _fmt(drop) if drop is not None else "none found"),
             *_episode_facts(analysis),
             ("at the last epoch", _counts_text(counts_last) if results else "–")]
    details = {"settings": _settings_dict(settings),
               "portraits": options.to_dict(),
               "projection": None if projection is None else {
                   "kind": projection.kind, "labels": list(projection.labels),
                   "explained_variance_ratio": projection.to_dict()["explained_variance_ratio"]},
               "portrait_problems": {str(epochs[i]): m for i, m in sorted(failures.items())},
               "versions": _versions()}
    span = f"epochs {epochs[0]}–{epochs[-1]}" if epochs else "no epochs"
    return write_html(out / "report.html", title=title or "ghostscope report",
                      subtitle=f"{source or ''} · {span}".strip(" ·"), facts=facts,
                      frames=frames, timeline=timeline, events=events, failed=failed,
                      details=details)


def _episode_facts(analysis) -> List[Tuple[str, str]]:
    """Report facts: the first restructuring episode and its signed lead to the drop."""
    if not callable(getattr(analysis, "restructuring", None)):
        return []
    first = analysis.restructuring().first_episode
    if first is None:
        return [("restructuring episodes", "none")]
    out = [("first restructuring episode", f"epochs {first.epoch_start}–{first.epoch_end}")]
    if first.lead is not None:
        out.append(("its lead to the drop", f"{first.lead:+g} epochs"))
    return out


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
