"""Plots: phase portraits and the training timeline (the only matplotlib importer in ghostscope).

Every function takes ``ax=None`` (a new figure is made when omitted) and returns the artists it
drew, so that tests (and users) can check what is on the axes. The Agg backend is selected unless
a backend was already chosen, so plots work on machines without a display.

Inputs are arrays already in plot coordinates (see :class:`analysis.projection.Projection`);
:class:`Portrait` bundles one epoch's arrays.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import matplotlib

if "MPLBACKEND" not in os.environ:
    matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.colors import LogNorm
from matplotlib.axes import Axes
from matplotlib.figure import Figure, FigureBase
from matplotlib.lines import Line2D
from numpy.typing import ArrayLike

from fixedpoints.serialization import atomic_write

__all__ = [
    "Portrait", "KIND_STYLES", "GHOST_STYLE", "plot_portrait", "plot_trajectories",
    "plot_points", "plot_ghosts", "plot_slow_regions", "plot_speed_heatmap", "plot_flow",
    "plot_velocity_line", "plot_timeline", "save_figure", "close_figure",
    "plot_bifurcation_diagram",
]

#: Marker styles of the point kinds (fixed points by stability, then slow points).
KIND_STYLES: Dict[str, Dict[str, Any]] = {
    "stable": dict(marker="o", s=70, facecolors="#1d4f91", edgecolors="white", linewidths=1.2,
                   label="stable", zorder=6),
    "saddle": dict(marker="o", s=62, facecolors="white", edgecolors="#d1495b", linewidths=2.0,
                   label="saddle", zorder=6),
    "unstable": dict(marker="s", s=58, facecolors="white", edgecolors="#8c1c13",
                     linewidths=2.0, label="unstable", zorder=6),
    "slow": dict(marker="D", s=42, facecolors="#9aa5b1", edgecolors="#3d4852", linewidths=1.0,
                 label="slow point", zorder=5),
}
#: Ghost marker and slow-direction style.
GHOST_STYLE: Dict[str, Any] = dict(marker="*", s=230, facecolors="#7b2cbf", edgecolors="white",
                                   linewidths=0.9, label="ghost", zorder=7)
_GHOST_COLOR = "#7b2cbf"
_REGION_COLOR = "#2a9d8f"
_TRAJECTORY_COLOR = "#5c6770"
_TRAJECTORY_COLOR_1D = "#f77f00"


@dataclass(frozen=True)
class Portrait:
    """One epoch's phase portrait, in plot coordinates (d = 1 or 2 columns).

    Attributes
    ----------
    epoch : int
    loss : float
        NaN when unknown.
    labels : tuple of str
        Axis labels, one per plot dimension.
    limits : ndarray of shape (d, 2)
        Axis limits (shared across epochs).
    points : ndarray of shape (k, d)
        Fixed and slow points.
    kinds : ndarray of shape (k,), str
        ``stable``, ``saddle``, ``unstable`` or ``slow``.
    ghosts : ndarray of shape (g, d)
    ghost_directions : ndarray of shape (g, d)
        Each ghost's slow direction in plot coordinates (any length; drawn normalized).
    slow_regions : tuple of ndarray of shape (m, d)
        Points of each slow region (line attractors, slow manifolds).
    trajectories : ndarray of shape (b, T, d), optional
    grid : tuple of ndarray, optional
        Grid coordinates along each plot dimension (1-D arrays) where the speed was evaluated.
    grid_speed : ndarray, optional
        Speed q on the grid, shape (len(grid[1]), len(grid[0])) for d = 2, (len(grid[0]),) for
        d = 1.
    grid_velocity : ndarray, optional
        Velocity on the grid, shape grid_speed.shape + (d,).
    title : str
        Extra text for the title (e.g. counts).
    time : {"discrete", "continuous"}
        Names the velocity axis of 1-D portraits (change per step, or time derivative).
    """

    epoch: int
    loss: float
    labels: Tuple[str, ...]
    limits: np.ndarray
    points: np.ndarray
    kinds: np.ndarray
    ghosts: np.ndarray = field(default_factory=lambda: np.empty((0, 2)))
    ghost_directions: np.ndarray = field(default_factory=lambda: np.empty((0, 2)))
    slow_regions: Tuple[np.ndarray, ...] = ()
    trajectories: Optional[np.ndarray] = None
    grid: Optional[Tuple[np.ndarray, ...]] = None
    grid_speed: Optional[np.ndarray] = None
    grid_velocity: Optional[np.ndarray] = None
    title: str = ""
    time: str = "discrete"

    @property
    def n_dims(self) -> int:
        return int(np.asarray(self.limits).shape[0])


def _axes(ax, figsize=(6.4, 5.2)):
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


# Fixed layouts (figure fractions): much faster than a layout engine, and every portrait of a
# series gets the same axes, so the pictures line up when the report flips through them.
# figure layouts: figsize (width, height) and axes rectangles (left, bottom, width, height)
_PORTRAIT_2D: Dict[str, Any] = dict(figsize=(6.4, 5.4), axes=(0.12, 0.15, 0.70, 0.75),
                    axes_wide=(0.12, 0.15, 0.84, 0.75), colorbar=(0.835, 0.15, 0.025, 0.75))
_PORTRAIT_1D: Dict[str, Any] = dict(figsize=(6.4, 5.8), top=(0.13, 0.61, 0.83, 0.29),
                                    bottom=(0.13, 0.14, 0.83, 0.43))
_TIMELINE: Dict[str, Any] = dict(figsize=(8.0, 6.6), top=(0.17, 0.63, 0.79, 0.32),
                                 middle=(0.17, 0.39, 0.79, 0.21), bottom=(0.17, 0.08, 0.79, 0.28))
#: The same with the restructuring rate under the loss.
_TIMELINE_RATE: Dict[str, Any] = dict(figsize=(8.0, 8.2), top=(0.17, 0.72, 0.79, 0.24),
                                      rate=(0.17, 0.53, 0.79, 0.16),
                                      middle=(0.17, 0.31, 0.79, 0.19),
                                      bottom=(0.17, 0.06, 0.79, 0.22))
_EPISODE_COLOR = "#f4a261"


def plot_trajectories(trajectories: ArrayLike, ax: Optional[Axes] = None, *,
                      color: str = _TRAJECTORY_COLOR,
                      alpha: float = 0.45, linewidth: float = 0.9, time_axis: bool = False,
                      arrows: bool = True, fade_in: bool = True) -> Dict[str, Any]:
    """Draw trajectories ``(b, T, d)``; d = 1 is drawn against the step (``time_axis``).

    Each trajectory fades in from its start (a small dot; ``fade_in``) and carries one arrowhead
    halfway along its path, so the direction of the flow is visible. NaN states end a
    trajectory.

    Returns ``{"lines": LineCollection, "starts": PathCollection, "arrows": Quiver or None}``
    (one arrow per trajectory, at the middle of its path, pointing along the motion).
    """
    ax = _axes(ax)
    z = np.asarray(trajectories, dtype=float)
    if z.ndim != 3:
        raise ValueError(f"trajectories have shape {z.shape}; expected (b, T, d)")
    if z.shape[2] == 1 or time_axis:
        steps = np.broadcast_to(np.arange(z.shape[1])[None, :, None], z[..., :1].shape)
        paths = np.concatenate([z[..., :1], steps], axis=2)
    else:
        paths = z[..., :2]
    b, t = paths.shape[:2]
    segments = np.stack([paths[:, :-1], paths[:, 1:]], axis=2).reshape(-1, 2, 2)
    ok = np.all(np.isfinite(segments), axis=(1, 2))
    # opacity grows along each trajectory (transients light, the settled part stronger)
    fade = np.tile(np.linspace(0.25 if fade_in else 1.0, 1.0, max(t - 1, 1)), b)[: len(segments)]
    rgba = np.tile(np.asarray(matplotlib.colors.to_rgba(color)), (len(segments), 1))
    rgba[:, 3] = alpha * fade
    lines = LineCollection(list(segments[ok]), colors=rgba[ok], linewidths=linewidth, zorder=2,
                           label="trajectories", capstyle="round")
    ax.add_collection(lines)
    starts = ax.scatter(paths[:, 0, 0], paths[:, 0, 1], s=7, color=color, alpha=alpha * 0.6,
                        zorder=2, linewidths=0)
    heads = None
    if arrows and not (z.shape[2] == 1 or time_axis):
        at, toward = [], []
        for path in paths:
            path = path[np.all(np.isfinite(path), axis=1)]
            if len(path) < 3:
                continue
            step = np.linalg.norm(np.diff(path, axis=0), axis=1)
            total = step.sum()
            if not np.isfinite(total) or total <= 0:
                continue
            k = min(int(np.searchsorted(np.cumsum(step), 0.5 * total)), len(path) - 2)
            if step[k] > 0:
                at.append(path[k])
                toward.append((path[k + 1] - path[k]) / step[k])
        if at:
            where, heading = np.asarray(at), np.asarray(toward)
            # one Quiver for all arrowheads (fixed on-screen size, pointing along the motion)
            heads = ax.quiver(where[:, 0], where[:, 1], heading[:, 0], heading[:, 1], angles="xy",
                              scale_units="inches", scale=9.0, pivot="mid", width=0.0035,
                              headwidth=4.5, headlength=5, headaxislength=4.5, color=color,
                              alpha=min(1.0, alpha * 1.3), zorder=2)
    return {"lines": lines, "starts": starts, "arrows": heads}


def plot_points(points: ArrayLike, kinds: Union[Sequence[str], np.ndarray],
                ax: Optional[Axes] = None, *,
                y: Optional[ArrayLike] = None) -> Dict[str, Any]:
    """Scatter fixed/slow points ``(k, d)`` coloured and shaped by kind.

    For d = 1, the points sit at height ``y`` (default 0: on the zero-velocity line).
    Returns ``{kind: PathCollection}`` for the kinds present.
    """
    ax = _axes(ax)
    z = np.asarray(points, dtype=float).reshape(len(kinds), -1) if len(kinds) else np.empty(
        (0, 2))
    kinds = np.asarray(kinds).astype(str)
    artists = {}
    for kind, style in KIND_STYLES.items():
        mask = kinds == kind
        if not mask.any():
            continue
        xs = z[mask, 0]
        ys = z[mask, 1] if z.shape[1] > 1 else np.full(mask.sum(), 0.0 if y is None else y)
        artists[kind] = ax.scatter(xs, ys, **style)
    unknown = set(kinds) - set(KIND_STYLES)
    if unknown:
        raise ValueError(f"unknown point kinds {sorted(unknown)}; expected one of "
                         f"{', '.join(KIND_STYLES)}")
    return artists


def plot_ghosts(ghosts: ArrayLike, directions: Optional[ArrayLike] = None,
                ax: Optional[Axes] = None, *, length: Optional[float] = None,
                y: Optional[ArrayLike] = None) -> Dict[str, Any]:
    """Ghosts ``(g, d)`` as stars with their slow direction as a double-headed arrow.

    ``length`` is the arrow's length in data units (default: 8% of the x-axis span).
    Returns ``{"markers": PathCollection, "directions": [Annotation, ...]}``.
    """
    ax = _axes(ax)
    z = np.asarray(ghosts, dtype=float)
    if z.size == 0:
        return {"markers": None, "directions": []}
    z = z.reshape(len(z), -1)
    ys = z[:, 1] if z.shape[1] > 1 else np.full(len(z), 0.0 if y is None else y)
    markers = ax.scatter(z[:, 0], ys, **GHOST_STYLE)
    arrows = []
    if directions is not None and z.shape[1] > 1:
        v = np.asarray(directions, dtype=float).reshape(len(z), -1)[:, :2]
        xlim, ylim = ax.get_xlim(), ax.get_ylim()
        sx, sy = (xlim[1] - xlim[0]) or 1.0, (ylim[1] - ylim[0]) or 1.0
        half = 0.5 * (length / sx if length is not None else 0.08)  # in axis fractions
        for (x0, y0), (dx, dy) in zip(z[:, :2], v):
            # the same on-screen length whatever the direction and the aspect ratio
            nx, ny = dx / sx, dy / sy
            norm = math.hypot(nx, ny)
            if not np.isfinite(norm) or norm == 0:
                continue
            ex, ey = nx / norm * half * sx, ny / norm * half * sy
            arrows.append(ax.annotate(
                "", xy=(x0 + ex, y0 + ey), xytext=(x0 - ex, y0 - ey), zorder=7,
                arrowprops=dict(arrowstyle="<->", color=_GHOST_COLOR, lw=2.0,
                                shrinkA=0, shrinkB=0)))
    return {"markers": markers, "directions": arrows}


def plot_slow_regions(regions: Sequence[np.ndarray], ax: Optional[Axes] = None, *,
                      y: Optional[ArrayLike] = None) -> List[Any]:
    """Slow regions (each ``(m, d)`` points) as a thick translucent band through their points.

    Returns one artist per region.
    """
    ax = _axes(ax)
    artists = []
    for i, region in enumerate(regions):
        z = np.asarray(region, dtype=float)
        if z.size == 0:
            continue
        z = z.reshape(len(z), -1)
        if z.shape[1] == 1:
            ys = np.full(len(z), 0.0 if y is None else y)
            z = np.column_stack([z[:, 0], ys])
        # order the points along their main axis, so a line attractor draws as a line
        centred = z - z.mean(axis=0)
        axis = np.linalg.svd(centred, full_matrices=False)[2][0] if len(z) > 1 else np.ones(2)
        order = np.argsort(centred @ axis)
        (line,) = ax.plot(z[order, 0], z[order, 1], color=_REGION_COLOR, lw=7, alpha=0.45,
                          solid_capstyle="round", zorder=4,
                          label="slow region" if i == 0 else None)
        artists.append(line)
    return artists


def plot_speed_heatmap(grid: Sequence[np.ndarray], speed: ArrayLike, ax: Optional[Axes] = None,
                       *, cmap: str = "bone_r",
                       vmin: Optional[float] = None, vmax: Optional[float] = None,
                       colorbar: bool = True, height: Optional[Tuple[float, float]] = None,
                       decades: float = 6.0, cax: Optional[Axes] = None) -> Dict[str, Any]:
    """The speed q on a grid, log-scaled (light = slow, dark = fast).

    The colour range is ``[vmin, vmax]``; by default ``vmax`` is the largest speed on the grid
    and ``vmin = vmax · 10^-decades``.

    Parameters
    ----------
    grid : (xs,) or (xs, ys)
        Grid coordinates, 1-D arrays.
    speed : ndarray of shape (len(ys), len(xs)) or (len(xs),)
        For a 1-D grid the speed is drawn as vertical bands spanning ``height`` (default: the
        current y-limits).
    Returns ``{"mesh": QuadMesh, "colorbar": Colorbar or None}``.
    """
    ax = _axes(ax)
    q = np.asarray(speed, dtype=float)
    positive = q[np.isfinite(q) & (q > 0)]
    floor = positive.min() if positive.size else 1e-12
    q = np.where(np.isfinite(q) & (q > 0), q, floor)
    vmax = vmax if vmax is not None else float(q.max())
    vmin = vmin if vmin is not None else max(float(q.min()), vmax * 10.0 ** -decades)
    vmin = min(vmin, vmax / 10)
    norm = LogNorm(vmin=vmin, vmax=vmax)
    xs = np.asarray(grid[0], dtype=float)
    if len(grid) == 1 or q.ndim == 1:
        lo, hi = height if height is not None else ax.get_ylim()
        mesh = ax.pcolormesh(xs, np.array([lo, hi]), np.vstack([q, q]), norm=norm, cmap=cmap,
                             shading="nearest", zorder=0, rasterized=True)
    else:
        ys = np.asarray(grid[1], dtype=float)
        mesh = ax.pcolormesh(xs, ys, q, norm=norm, cmap=cmap, shading="gouraud", zorder=0,
                             rasterized=True)
    bar = None
    if colorbar:
        bar = (ax.figure.colorbar(mesh, cax=cax) if cax is not None else
               ax.figure.colorbar(mesh, ax=ax, pad=0.01, fraction=0.045))
        bar.set_label("speed q = ½‖v‖² (log)")
    return {"mesh": mesh, "colorbar": bar}


def plot_flow(grid: Sequence[np.ndarray], velocity: ArrayLike, ax: Optional[Axes] = None, *,
              color: str = "#8fa3b5",
              density: float = 0.6, max_points: int = 40) -> Any:
    """Streamlines of a 2-D velocity field ``(len(ys), len(xs), 2)``; returns the StreamplotSet.

    The field is subsampled to at most ``max_points`` per axis (streamlines need no more)."""
    ax = _axes(ax)
    v = np.asarray(velocity, dtype=float)
    xs, ys = (np.asarray(g, dtype=float) for g in grid[:2])
    step_x = max(1, int(np.ceil(len(xs) / max_points)))
    step_y = max(1, int(np.ceil(len(ys) / max_points)))
    xs, ys, v = xs[::step_x], ys[::step_y], v[::step_y, ::step_x]
    u, w = np.nan_to_num(v[..., 0]), np.nan_to_num(v[..., 1])
    return ax.streamplot(xs, ys, u, w, color=color, density=density, linewidth=0.6,
                         arrowsize=0.7, zorder=1, broken_streamlines=True)


def plot_velocity_line(xs: ArrayLike, velocity: ArrayLike, ax: Optional[Axes] = None, *,
                       color: str = "#22313f") -> Dict[str, Any]:
    """A 1-D flow: velocity against position with the zero line (fixed points are its zeros).

    Returns ``{"line": Line2D, "zero": Line2D}``.
    """
    ax = _axes(ax)
    xs = np.asarray(xs, dtype=float)
    v = np.asarray(velocity, dtype=float).reshape(len(xs))
    zero = ax.axhline(0.0, color="#9aa5b1", lw=1.0, zorder=1)
    (line,) = ax.plot(xs, v, color=color, lw=1.8, zorder=3, label="velocity")
    ax.fill_between(xs, v, 0, where=v > 0, color="#d1495b", alpha=0.10, zorder=0, lw=0)
    ax.fill_between(xs, v, 0, where=v < 0, color="#1d4f91", alpha=0.10, zorder=0, lw=0)
    return {"line": line, "zero": zero}


def _settling_steps(kappa: np.ndarray, span: float) -> int:
    """Steps until every 1-D trajectory ``(b, T)`` stays within 1% of the span of its end."""
    t = kappa.shape[1] - 1
    settled = 0
    for row in kappa:
        row = row[np.isfinite(row)]
        if len(row) < 2:
            continue
        away = np.flatnonzero(np.abs(row - row[-1]) > 0.01 * span)
        settled = max(settled, int(away[-1]) + 1 if len(away) else 0)
    return int(min(t, max(10, round(1.25 * settled)))) if t > 0 else 1


def _title(portrait: Portrait) -> str:
    loss = "" if not np.isfinite(portrait.loss) else f" · loss {portrait.loss:.4g}"
    extra = f"\n{portrait.title}" if portrait.title else ""
    return f"epoch {portrait.epoch}{loss}{extra}"


def _legend_handles(portrait: Portrait) -> List[Any]:
    handles = []
    kinds = set(np.asarray(portrait.kinds).astype(str))
    for kind, style in KIND_STYLES.items():
        if kind in kinds:
            handles.append(Line2D([], [], ls="", marker=style["marker"], markersize=8,
                                  markerfacecolor=style["facecolors"],
                                  markeredgecolor=style["edgecolors"],
                                  markeredgewidth=style["linewidths"], label=style["label"]))
    if len(portrait.ghosts):
        handles.append(Line2D([], [], ls="", marker="*", markersize=13,
                              markerfacecolor=_GHOST_COLOR, markeredgecolor="white",
                              label="ghost (↔ slow direction)"))
    if portrait.slow_regions:
        handles.append(Line2D([], [], color=_REGION_COLOR, lw=6, alpha=0.45,
                              label="slow region"))
    if portrait.trajectories is not None and len(portrait.trajectories):
        color = _TRAJECTORY_COLOR_1D if portrait.n_dims == 1 else (
            "#f4a261" if portrait.grid_speed is not None else _TRAJECTORY_COLOR)
        handles.append(Line2D([], [], color=color, lw=1.2, alpha=0.8, label="trajectories"))
    return handles


def plot_portrait(portrait: Portrait, ax: Any = None, *, legend: bool = True,
                  speed_range: Optional[Tuple[float, float]] = None) -> Dict[str, Any]:
    """Draw one epoch's phase portrait.

    Two plot dimensions: speed heatmap with streamlines (when a grid is given), trajectories,
    slow regions, points by kind, ghosts with their slow direction. One dimension: two panels
    sharing the x-axis, the velocity against position (top) and the trajectories against time
    over the speed (bottom); when ``ax`` is given for d = 1, it must be a pair of axes.

    Parameters
    ----------
    portrait : Portrait
    ax : Axes or (Axes, Axes), optional
    legend : bool
    speed_range : (vmin, vmax), optional
        Colour range of the speed (shared across epochs by the report).

    Returns
    -------
    dict
        The artists by role: ``points`` ({kind: PathCollection}), ``ghosts``, ``regions``,
        ``trajectories``, ``heatmap``, ``flow``, ``velocity``, ``legend``, ``axes``, ``figure``.
    """
    limits = np.asarray(portrait.limits, dtype=float)
    vmin, vmax = speed_range if speed_range is not None else (None, None)
    artists: Dict[str, Any] = {"heatmap": None, "flow": None, "velocity": None,
                               "trajectories": None, "legend": None}
    if portrait.n_dims == 1:
        if ax is None:
            fig: FigureBase = plt.figure(figsize=_PORTRAIT_1D["figsize"])
            top = fig.add_axes(_PORTRAIT_1D["top"])
            bottom = fig.add_axes(_PORTRAIT_1D["bottom"], sharex=top)
            top.tick_params(labelbottom=False)
        else:
            top, bottom = ax
            fig = top.figure
        top.set_xlim(*limits[0])
        if portrait.grid is not None and portrait.grid_velocity is not None:
            artists["velocity"] = plot_velocity_line(portrait.grid[0], portrait.grid_velocity,
                                                     top)
            v = np.asarray(portrait.grid_velocity, dtype=float).ravel()
            finite = v[np.isfinite(v)]
            if finite.size:
                pad = 0.08 * (finite.max() - finite.min() or 1.0)
                top.set_ylim(finite.min() - pad, finite.max() + pad)
        else:
            top.axhline(0.0, color="#9aa5b1", lw=1.0)
        top.set_ylabel(f"d{portrait.labels[0]}/dt" if portrait.time == "continuous"
                       else f"Δ{portrait.labels[0]} per step")
        artists["regions"] = plot_slow_regions(portrait.slow_regions, top)
        artists["points"] = plot_points(portrait.points, portrait.kinds, top)
        artists["ghosts"] = plot_ghosts(portrait.ghosts, None, top)
        n_steps = 1
        if portrait.trajectories is not None and len(portrait.trajectories):
            n_steps = _settling_steps(np.asarray(portrait.trajectories, dtype=float)[..., 0],
                                      float(limits[0, 1] - limits[0, 0]))
        bottom.set_ylim(0, n_steps)
        if portrait.grid is not None and portrait.grid_speed is not None:
            artists["heatmap"] = plot_speed_heatmap(portrait.grid[:1], portrait.grid_speed,
                                                    bottom, vmin=vmin, vmax=vmax,
                                                    height=(0, n_steps), colorbar=False)
        if portrait.trajectories is not None and len(portrait.trajectories):
            artists["trajectories"] = plot_trajectories(portrait.trajectories[..., :1], bottom,
                                                        color=_TRAJECTORY_COLOR_1D, alpha=0.95,
                                                        linewidth=1.4, fade_in=False)
        for x in np.asarray(portrait.points, dtype=float).reshape(-1)[:50]:
            bottom.axvline(x, color="#1d4f91", lw=0.6, ls=":", alpha=0.7, zorder=1)
        bottom.set_xlabel(portrait.labels[0])
        bottom.set_ylabel("step")
        bottom.set_xlim(*limits[0])
        title_ax = top
        axes: Tuple[Any, ...] = (top, bottom)
    else:
        grid, grid_speed = portrait.grid, portrait.grid_speed
        heat = grid is not None and grid_speed is not None
        cax = None
        if ax is None:
            fig = plt.figure(figsize=_PORTRAIT_2D["figsize"])
            ax = fig.add_axes(_PORTRAIT_2D["axes"] if heat else _PORTRAIT_2D["axes_wide"])
            cax = fig.add_axes(_PORTRAIT_2D["colorbar"]) if heat else None
        fig = ax.figure
        ax.set_xlim(*limits[0])
        ax.set_ylim(*limits[1])
        if grid is not None and grid_speed is not None:
            artists["heatmap"] = plot_speed_heatmap(grid, grid_speed, ax,
                                                    vmin=vmin, vmax=vmax, cax=cax)
            if portrait.grid_velocity is not None:
                artists["flow"] = plot_flow(grid, portrait.grid_velocity, ax)
        on_dark = artists["heatmap"] is not None
        if portrait.trajectories is not None and len(portrait.trajectories):
            artists["trajectories"] = plot_trajectories(
                portrait.trajectories, ax, color="#f4a261" if on_dark else _TRAJECTORY_COLOR,
                alpha=0.8, linewidth=1.0)
        artists["regions"] = plot_slow_regions(portrait.slow_regions, ax)
        artists["points"] = plot_points(portrait.points, portrait.kinds, ax)
        artists["ghosts"] = plot_ghosts(portrait.ghosts, portrait.ghost_directions, ax)
        ax.set_xlim(*limits[0])
        ax.set_ylim(*limits[1])
        ax.set_xlabel(portrait.labels[0])
        ax.set_ylabel(portrait.labels[1] if len(portrait.labels) > 1 else "")
        title_ax, axes = ax, (ax,)
    title_ax.set_title(_title(portrait), fontsize=11, loc="left")
    if legend:
        handles = _legend_handles(portrait)
        if handles:
            # outside the axes, so it never hides a point
            artists["legend"] = fig.legend(
                handles=handles, loc="lower center", bbox_to_anchor=(0.5, 0.0),
                ncols=min(len(handles), 4), fontsize=8, frameon=False, handletextpad=0.4,
                columnspacing=1.2)
    artists["axes"] = axes
    artists["figure"] = fig
    return artists


_EVENT_COLORS = {"saddle_node": "#7b2cbf", "pitchfork": "#9d4edd", "birth": "#2a9d8f",
                 "death": "#8c1c13", "stability_change": "#e76f51", "ghost_appeared": "#c77dff",
                 "ghost_vanished": "#5a189a", "attractor_moved": "#6c757d",
                 "connection_change": "#457b9d", "attractor_count": "#1d4f91"}


def plot_timeline(epochs: ArrayLike, loss: Optional[ArrayLike] = None,
                  counts: Optional[Mapping[str, Sequence[float]]] = None,
                  events: Sequence[Tuple[float, str]] = (), drop_epoch: Optional[float] = None,
                  axes: Optional[Sequence[Axes]] = None, *,
                  loss_epochs: Optional[ArrayLike] = None, failed: Sequence[int] = (),
                  rate: Optional[Tuple[Sequence[float], Sequence[float]]] = None,
                  episodes: Sequence[Tuple[float, float]] = (),
                  mechanisms: Sequence[str] = ()) -> Dict[str, Any]:
    """Training timeline: the loss (top), the restructuring rate under it (when given),
    restructuring events by kind (middle), and the number of points of each kind over epochs
    (bottom), with the loss drop marked on all and restructuring episodes shaded.

    Parameters
    ----------
    epochs : sequence of int
        Analyzed epochs (x of the counts).
    loss : sequence of float, optional
        Loss at ``loss_epochs`` (default ``epochs``); drawn on a log axis when it spans more
        than a factor 20.
    counts : mapping kind -> sequence of int, optional
        Number of points of each kind at each analyzed epoch (``"ghost"`` included if given).
    events : sequence of (epoch, kind)
        Restructuring events: one marker per event in the row of its kind.
    drop_epoch : float, optional
        Epoch of the abrupt loss drop (a dashed line).
    axes : (Axes, Axes, Axes), optional
    failed : sequence of int
        Epochs whose analysis failed (crosses on the counts axis).
    rate : (edges (k + 1,), rates (k,)), optional
        The restructuring rate per epoch of each interval between consecutive checkpoints
        (:mod:`analysis.restructuring`), drawn as steps on its own axis under the loss.
    episodes : sequence of (start epoch, end epoch)
        Restructuring episodes, shaded on the loss and rate axes.
    axes : tuple of Axes, optional
        (top, middle, bottom), or (top, rate, middle, bottom) when ``rate`` is given.
    mechanisms : sequence of str, optional
        The mechanism label of each analyzed epoch (:mod:`analysis.mechanism`): each run of one
        label is a shaded band on the counts axis, named at its start.

    Returns
    -------
    dict with ``loss`` (Line2D or None), ``rate`` (the steps or None), ``episodes`` (shaded
    spans), ``events`` ({kind: PathCollection}), ``counts`` ({kind: Line2D}), ``drop`` (Line2D
    or None), ``event_marks`` (vertical lines of events on the loss axis), ``mechanisms``
    (list of (label, band)), ``axes``, ``figure``.
    """
    if axes is None:
        layout = _TIMELINE_RATE if rate is not None else _TIMELINE
        fig: FigureBase = plt.figure(figsize=layout["figsize"])
        top = fig.add_axes(layout["top"])
        made = [top]
        if rate is not None:
            made.append(fig.add_axes(layout["rate"], sharex=top))
        made.append(fig.add_axes(layout["middle"], sharex=top))
        made.append(fig.add_axes(layout["bottom"], sharex=top))
        for axis in made[:-1]:
            axis.tick_params(labelbottom=False)
        axes = tuple(made)
    rate_axis = None
    if len(axes) == 4:
        top, rate_axis, middle, bottom = axes
    else:
        top, middle, bottom = axes
    fig = top.figure
    epochs = np.asarray(epochs, dtype=float)
    out: Dict[str, Any] = {"loss": None, "counts": {}, "events": {}, "drop": None,
                           "event_marks": [], "rate": None, "episodes": []}
    if loss is not None:
        x = np.asarray(loss_epochs if loss_epochs is not None else epochs, dtype=float)
        y = np.asarray(loss, dtype=float)
        ok = np.isfinite(y)
        if ok.any():
            (out["loss"],) = top.plot(x[ok], y[ok], color="#22313f", lw=1.5, label="loss")
            if np.all(y[ok] > 0) and y[ok].max() / max(y[ok].min(), 1e-300) > 20:
                top.set_yscale("log")
    if out["loss"] is None:
        top.text(0.5, 0.5, "no training loss found beside the checkpoints",
                 transform=top.transAxes, ha="center", va="center", color="#6c757d")
    top.set_ylabel("loss")
    if rate_axis is not None and rate is not None:
        out["rate"] = _draw_rate(rate_axis, rate)
    for start, end in episodes:
        for panel in (top, rate_axis):
            if panel is not None:
                out["episodes"].append(panel.axvspan(start, end, color=_EPISODE_COLOR, alpha=0.18,
                                                     lw=0, zorder=0))
    for epoch in sorted({float(e) for e, _ in events}):
        out["event_marks"].append(top.axvline(epoch, color="#e76f51", lw=0.8, alpha=0.35,
                                              zorder=0))
    kinds = sorted({k for _, k in events}, key=lambda k: (list(_EVENT_COLORS).index(k)
                                                          if k in _EVENT_COLORS else 99, k))
    for row, kind in enumerate(kinds):
        xs = np.asarray([e for e, k in events if k == kind], dtype=float)
        values, n = np.unique(xs, return_counts=True)
        out["events"][kind] = middle.scatter(values, np.full(len(values), row),
                                             s=18 + 10 * np.minimum(n, 6), marker="o",
                                             color=_EVENT_COLORS.get(kind, "#444"), zorder=3,
                                             label=kind)
    middle.set_yticks(range(len(kinds)), [k.replace("_", " ") for k in kinds], fontsize=8)
    middle.set_ylim(-0.7, max(len(kinds), 1) - 0.3)
    middle.invert_yaxis()
    middle.grid(axis="y", color="#e4e7eb", lw=0.8)
    if not kinds:
        middle.text(0.5, 0.5, "no restructuring event", transform=middle.transAxes,
                    ha="center", va="center", color="#6c757d")
        middle.set_yticks([])
    middle.set_ylabel("events")
    palette = {"stable": "#1d4f91", "saddle": "#d1495b", "unstable": "#8c1c13",
               "slow": "#7d8a96", "ghost": _GHOST_COLOR, "slow_region": _REGION_COLOR}
    markers = {"stable": "o", "saddle": "o", "unstable": "s", "slow": "D", "ghost": "*",
               "slow_region": "_"}
    for kind, given in (counts or {}).items():
        values = np.asarray(given, dtype=float)
        if not np.any(values > 0):
            continue
        (line,) = bottom.plot(epochs, values, color=palette.get(kind, "#444"), lw=1.4,
                              marker=markers.get(kind, "."), markersize=4 if len(epochs) < 60
                              else 2, label=kind.replace("_", " "))
        out["counts"][kind] = line
    if len(failed):
        bottom.plot(np.asarray(failed, dtype=float), np.zeros(len(failed)), ls="", marker="x",
                    color="black", label="analysis failed")
    if out["counts"] or len(failed):
        bottom.legend(loc="upper left", fontsize=8, ncols=min(4, len(out["counts"]) + 1),
                      framealpha=0.85)
    out["mechanisms"] = []
    labels = list(mechanisms)
    if labels and len(labels) == len(epochs):
        shades = {"limit_cycle": "#f4a261", "slow_manifold": _REGION_COLOR,
                  "fixed_point_attractors": "#1d4f91", "ghost": _GHOST_COLOR, "none": "#adb5bd"}
        start = 0
        for k in range(1, len(labels) + 1):
            if k == len(labels) or labels[k] != labels[start]:
                lo = epochs[start]
                hi = epochs[k] if k < len(labels) else epochs[-1]
                band = bottom.axvspan(lo, hi if hi > lo else lo + 0.5, color=shades.get(
                    labels[start], "#adb5bd"), alpha=0.12, lw=0, zorder=0)
                # named at the bottom of its band: the counts' legend sits at the top left
                bottom.text(lo, 0.02, " " + labels[start].replace("_", " "), fontsize=7,
                            va="bottom", ha="left", color="#3d4852",
                            transform=bottom.get_xaxis_transform())
                out["mechanisms"].append((labels[start], band))
                start = k
    bottom.set_ylabel("points")
    bottom.set_xlabel("epoch")
    bottom.yaxis.get_major_locator().set_params(integer=True)  # type: ignore[call-arg]  # a MaxNLocator
    if drop_epoch is not None and np.isfinite(drop_epoch):
        for axis in tuple(a for a in (top, rate_axis, middle, bottom) if a is not None):
            line = axis.axvline(drop_epoch, color="#2a9d8f", lw=1.8, ls="--", zorder=1,
                                label=f"loss drop (epoch {drop_epoch:g})" if axis is top
                                else None)
            if axis is top:
                out["drop"] = line
        top.legend(loc="upper right", fontsize=8, framealpha=0.85)
    top.set_title("training timeline", fontsize=11, loc="left")
    out["axes"] = tuple(axes)
    out["figure"] = fig
    return out


def _draw_rate(axis: Axes, rate: Tuple[Sequence[float], Sequence[float]]) -> Any:
    """Steps of the restructuring rate per epoch over the intervals' edges."""
    edges = np.asarray(rate[0], dtype=float)
    values = np.asarray(rate[1], dtype=float)
    if len(values) == 0 or len(edges) != len(values) + 1:
        axis.text(0.5, 0.5, "fewer than two checkpoints: no restructuring rate",
                  transform=axis.transAxes, ha="center", va="center", color="#6c757d")
        axis.set_ylabel("restructuring\nper epoch", fontsize=8)
        return None
    steps = axis.stairs(values, edges, fill=True, color="#e76f51", alpha=0.55,
                        label="restructuring rate")
    positive = values[values > 0]
    if len(positive) and positive.max() / max(positive.min(), 1e-300) > 100:
        axis.set_yscale("log")
    axis.set_ylabel("restructuring\nper epoch", fontsize=8)
    return steps


def plot_bifurcation_diagram(branches: Sequence[Tuple[np.ndarray, np.ndarray, np.ndarray]],
                             bifurcations: Sequence[Tuple[float, float, str]] = (), ax=None, *,
                             xlabel: str = "input", ylabel: str = "fixed point (projection)",
                             title: Optional[str] = None) -> Dict[str, Any]:
    """Fixed points against the input coordinate along a continuation path.

    Parameters
    ----------
    branches : sequence of (c (m,), y (m,), n_unstable (m,))
        Each branch's input coordinate, the fixed points' projection and index; stable stretches
        are drawn solid (the stable colour), unstable ones dashed (the saddle colour).
    bifurcations : sequence of (c, y, kind)
        ``kind`` "fold" (drawn as a black circle) or "hopf" (a purple square).
    ax : matplotlib Axes, optional

    Returns
    -------
    dict with ``stable`` and ``unstable`` (lists of Line2D), ``fold`` / ``hopf`` (scatter or
    None) and ``ax``.
    """
    ax = _axes(ax)
    out: Dict[str, Any] = {"stable": [], "unstable": [], "fold": None, "hopf": None, "ax": ax}
    stable_c = KIND_STYLES["stable"]["facecolors"]
    unstable_c = KIND_STYLES["saddle"]["edgecolors"]
    for c, y, index in branches:
        c, y = np.asarray(c, float), np.asarray(y, float)
        stable = np.asarray(index) == 0
        start = 0
        for k in range(1, len(c) + 1):  # runs of constant stability, joined at their ends
            if k == len(c) or stable[k] != stable[start]:
                seg = slice(start, min(k + 1, len(c)))
                if stable[start]:
                    out["stable"] += ax.plot(c[seg], y[seg], "-", color=stable_c, lw=2.0)
                else:
                    out["unstable"] += ax.plot(c[seg], y[seg], "--", color=unstable_c, lw=1.6)
                start = k
    for kind, style in (("fold", dict(marker="o", color="black")),
                        ("hopf", dict(marker="s", color=_GHOST_COLOR))):
        pts = np.array([(c, y) for c, y, k in bifurcations if k == kind]).reshape(-1, 2)
        if len(pts):
            out[kind] = ax.scatter(pts[:, 0], pts[:, 1], s=60, zorder=7, label=kind, **style)
    handles = [Line2D([], [], color=stable_c, lw=2.0, label="stable"),
               Line2D([], [], color=unstable_c, lw=1.6, ls="--", label="unstable")]
    handles += [h for h in (out["fold"], out["hopf"]) if h is not None]
    ax.legend(handles=handles, loc="best", fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    return out


def save_figure(fig: Figure, path: Union[str, os.PathLike], *, dpi: int = 100,
                metadata: Optional[Dict[str, str]] = None) -> Path:
    """Save a figure as PNG (written to a temporary name, then renamed) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return atomic_write(path, lambda handle: fig.savefig(handle, dpi=dpi, format="png",
                                                             metadata=metadata or {}))
    finally:
        plt.close(fig)


def close_figure(fig: Figure) -> None:
    """Close a figure made by these functions."""
    plt.close(fig)
