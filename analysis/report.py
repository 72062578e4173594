"""The report of a series analysis: portraits, timeline, GIF and ``report.html``.

:func:`write_report` turns a :class:`analysis.api.SeriesAnalysis` into

- ``portraits/epoch_XXXX.png``: one phase portrait per analyzed epoch, all in one shared
  projection (:mod:`analysis.portraits`, :mod:`analysis.projection`);
- ``timeline.png``: the loss with restructuring events and the drop marked, counts by kind,
  and the mechanism label of each epoch (:mod:`analysis.mechanism`) as shaded bands;
- ``portraits.gif``: the portraits as an animation;
- ``report.html``: one self-contained page (:mod:`analysis.html`).

It works in two streamed passes over the epochs, so memory does not grow with their number:
pass 1 loads each epoch's model, simulates a few trajectories and feeds a
:class:`~analysis.projection.ProjectionFitter` (keeping only running sums); pass 2 renders each
portrait (in parallel through :func:`analysis.execution.run_tasks`). A portrait already on disk
drawn from the same analysis, projection and drawing settings is reused (the key is stored in the
PNG's metadata); ``force=True`` redraws it. Every file is written to a temporary name and
renamed (:mod:`fixedpoints.serialization`).
"""
from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import IO, Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from numpy.typing import NDArray

from fixedpoints.serialization import atomic_write, json_text, write_text

from .api import SeriesAnalysis
from .epoch import counts_text
from .execution import run_tasks
from .html import format_number, write_html
from .portraits import (REPORT_VERSION, EpochContext, PortraitOptions, RenderJob, code_digest,
                        collect_states, png_key, render_key, render_portrait, result_key)
from .projection import ProjectionFitter
from .sources import sources_by_epoch
from .versions import library_versions

__all__ = ["write_report", "write_timeline", "write_gif"]

logger = logging.getLogger(__name__)


def _loss_series(analysis: SeriesAnalysis) -> Tuple[Optional[NDArray], Optional[NDArray]]:
    """The loss curve to draw: the training log's, else the loss stored with each epoch."""
    if analysis.loss is not None:
        x = np.asarray(analysis.loss.epochs, dtype=float)
        y = np.asarray(analysis.loss.loss, dtype=float)
        if x.shape == y.shape and len(x):
            return x, y
    epochs = np.asarray([r.epoch for r in analysis.results], dtype=float)
    values = np.asarray([r.loss for r in analysis.results], dtype=float)
    if np.isfinite(values).any():
        return epochs, values
    return None, None


def write_timeline(analysis: SeriesAnalysis, path: Union[str, os.PathLike]) -> Path:
    """Draw ``timeline.png``: loss with events and the drop marked, counts by kind."""
    from .plotting import plot_timeline, save_figure

    epochs = [r.epoch for r in analysis.results]
    per_epoch = [r.counts() for r in analysis.results]
    kinds = ("stable", "saddle", "unstable", "slow", "ghost", "slow_region")
    counts = {k: [c.get(k, 0) for c in per_epoch] for k in kinds}
    loss_x, loss_y = _loss_series(analysis)
    events = [(float(e.epoch), e.kind) for e in analysis.events]
    failed = [f.epoch for f in analysis.failed if f.epoch is not None]
    rate = None
    episodes: List[Tuple[float, float]] = []
    if len(epochs) > 1:
        curve = analysis.restructuring()
        if curve.intervals:
            edges = [curve.intervals[0].epoch_before] + [i.epoch_after for i in curve.intervals]
            rate = (edges, curve.rates())
            episodes = [(e.epoch_start, e.epoch_end) for e in curve.episodes]
    from .mechanism import mechanism_of

    artists = plot_timeline(epochs, loss_y, counts, events, analysis.drop_epoch,
                            loss_epochs=loss_x, failed=failed, rate=rate, episodes=episodes,
                            mechanisms=[mechanism_of(r) for r in analysis.results])
    return save_figure(artists["figure"], path)


def write_gif(pngs: Sequence[Path], path: Union[str, os.PathLike], *, max_frames: int = 60,
              width: int = 480, duration_ms: int = 350) -> Optional[Path]:
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
            frames.append(image.resize((width, height), Image.Resampling.LANCZOS)
                          .quantize(colors=255, method=Image.Quantize.MEDIANCUT))

    def write(handle: IO[bytes]) -> None:
        frames[0].save(handle, format="GIF", save_all=True, append_images=frames[1:],
                       duration=duration_ms, loop=0, optimize=False)

    return atomic_write(path, write)


# ------------------------------------------------------------------------ the whole report
def write_report(analysis: SeriesAnalysis, out: Union[str, os.PathLike], *, models: Any = None,
                 jobs: int = 1, scheduler: Any = None, progress: bool = False,
                 force: bool = False, device: str = "cpu",
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
    options = PortraitOptions.make(options)
    out = Path(out)
    (out / "portraits").mkdir(parents=True, exist_ok=True)
    results = list(analysis.results)
    settings = analysis.settings
    epochs = [int(r.epoch) for r in results]
    sources = sources_by_epoch(models, epochs)
    contexts = [EpochContext(r, sources.get(int(r.epoch)), settings.input, settings.drive,
                             settings.time, device, options) for r in results]

    # pass 1: the shared projection (streamed; in this process, it is cheap)
    fitter = ProjectionFitter(kind=options.projection, seed=options.seed)
    failures: Dict[int, str] = {}
    for index, item in run_tasks(collect_states, contexts, jobs=1, progress=progress,
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
        code = code_digest()
        jobs_list = []
        for ctx in contexts:
            png = out / "portraits" / f"epoch_{int(ctx.result.epoch):04d}.png"
            key = render_key(REPORT_VERSION, code, result_key(ctx.result), proj_key, speed_range,
                             options.to_dict(), ctx.input, ctx.time, ctx.source is not None,
                             float(ctx.result.loss))
            if force and png.exists():
                png.unlink()
            jobs_list.append(RenderJob(ctx, projection, speed_range, str(png), key))
        for index, item in run_tasks(render_portrait, jobs_list, jobs=jobs, scheduler=scheduler,
                                     progress=progress, desc="portraits"):
            if isinstance(item, BaseException):
                failures[index] = f"{type(item).__name__}: {item}"
                logger.warning("epoch %s: the portrait could not be drawn (%s)", epochs[index],
                               item)
        for ctx, job in zip(contexts, jobs_list):
            if Path(job.png).exists() and png_key(Path(job.png)) == job.key:
                frames.append((int(ctx.result.epoch), Path(job.png),
                               counts_text(ctx.result.counts()) + " · "
                               + ctx.result.fixed_points.certification_text()))
        write_text(out / "projection.json", json_text(projection.to_dict()))

    timeline = write_timeline(analysis, out / "timeline.png")
    write_gif([p for _, p, _ in frames], out / "portraits.gif", max_frames=options.gif_frames,
              width=options.gif_width)

    from .events import describe_event

    drop = analysis.drop_epoch
    events = [{**e.to_dict(), "sentence": describe_event(e, drop)} for e in analysis.events]
    failed = [f.to_dict() for f in analysis.failed]
    facts = [("epochs analyzed", str(len(results))),
             ("failed", str(len(failed))),
             ("events", str(len(events))),
             ("loss drop at epoch", format_number(drop) if drop is not None else "none found"),
             *_episode_facts(analysis),
             ("at the last epoch", counts_text(results[-1].counts()) if results else "–"),
             ("fixed points at the last epoch",
              results[-1].fixed_points.certification_text() if results else "–")]
    along = analysis.options.get("input_path")  # analysis.input_path.attach_input_path
    if along:
        facts.append((f"folds / Hopf along {along['path']}",
                      f"{along['n_folds']} / {along['n_hopf']}"))
    details = {"settings": settings.to_dict(),
               "portraits": options.to_dict(),
               "projection": None if projection is None else {
                   "kind": projection.kind, "labels": list(projection.labels),
                   "explained_variance_ratio": projection.to_dict()["explained_variance_ratio"]},
               "portrait_problems": {str(epochs[i]): m for i, m in sorted(failures.items())},
               **({"input_path": along} if along else {}),
               "versions": library_versions()}
    span = f"epochs {epochs[0]}–{epochs[-1]}" if epochs else "no epochs"
    return write_html(out / "report.html", title=title or "ghostscope report",
                      subtitle=f"{source or ''} · {span}".strip(" ·"), facts=facts,
                      frames=frames, timeline=timeline, events=events, failed=failed,
                      details=details)


def _episode_facts(analysis: SeriesAnalysis) -> List[Tuple[str, str]]:
    """Report facts: the first restructuring episode and its signed lead to the drop."""
    first = analysis.restructuring().first_episode
    if first is None:
        return [("restructuring episodes", "none")]
    out = [("first restructuring episode", f"epochs {first.epoch_start}–{first.epoch_end}")]
    if first.lead is not None:
        out.append(("its lead to the drop", f"{first.lead:+g} epochs"))
    return out
