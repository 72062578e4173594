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
portrait (in parallel through :func:`analysis.execution.run_tasks`).

A re-run into the same directory makes again only what changed. Every file carries the key of
what it was made from: ``projection.json`` the keys of every epoch's pass 1
(:func:`analysis.portraits.epoch_key`: the epoch's analysis, the trajectory options and the
model file's stamp), so with all of them unchanged pass 1 is skipped and no model is loaded;
each portrait PNG, ``timeline.png`` (PNG metadata), ``portraits.gif`` (its comment) and
``report.html`` (a comment on its second line) the key of their inputs, so they are drawn
(matplotlib imported) only when missing or stale. ``force=True`` makes everything again. Every
file is written to a temporary name and renamed (:mod:`fixedpoints.serialization`).
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import IO, Any, Dict, List, Optional, Sequence, Set, Tuple, Union

import numpy as np
from numpy.typing import NDArray

from fixedpoints.serialization import atomic_write, json_text, write_text

from .api import SeriesAnalysis
from .epoch import counts_text
from .execution import run_tasks
from .html import format_number, html_key, write_html
from .portraits import (REPORT_VERSION, EpochContext, PortraitOptions, RenderJob, code_digest,
                        collect_states, epoch_key, png_key, render_key, render_portrait)
from .projection import Projection, ProjectionFitter
from .reuse import result_key
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


def write_timeline(analysis: SeriesAnalysis, path: Union[str, os.PathLike], *,
                   force: bool = True) -> Path:
    """Draw ``timeline.png``: loss with events and the drop marked, counts by kind.

    With ``force=False`` a ``timeline.png`` drawn from the same inputs (the key in its metadata)
    is kept as it is.
    """
    inputs = _timeline_inputs(analysis)
    key = render_key("timeline", REPORT_VERSION, code_digest(), inputs)
    path = Path(path)
    if not force and png_key(path) == key:
        return path
    from .plotting import plot_timeline, save_figure

    epochs, loss_y, counts, events, drop = (inputs.pop(k) for k in (
        "epochs", "loss", "counts", "events", "drop"))
    artists = plot_timeline(epochs, loss_y, counts, events, drop, **inputs)
    return save_figure(artists["figure"], path,
                       metadata={"Software": "ghostscope", "ghostscope-key": key})


def _timeline_inputs(analysis: SeriesAnalysis) -> Dict[str, Any]:
    """What the timeline is drawn from (the arguments of :func:`plotting.plot_timeline`)."""
    from .mechanism import mechanism_of

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
    return {"epochs": epochs, "loss": loss_y, "counts": counts, "events": events,
            "drop": analysis.drop_epoch, "loss_epochs": loss_x, "failed": failed, "rate": rate,
            "episodes": episodes, "mechanisms": [mechanism_of(r) for r in analysis.results]}


def write_gif(pngs: Sequence[Path], path: Union[str, os.PathLike], *, max_frames: int = 60,
              width: int = 480, duration_ms: int = 350,
              key: Optional[str] = None) -> Optional[Path]:
    """Animate the portraits (evenly subsampled to ``max_frames``) into a looping GIF.

    With a ``key`` (what the frames were drawn from), the GIF stores it as its comment and a
    GIF already at ``path`` with the same key is kept as it is.
    """
    from PIL import Image

    pngs = [Path(p) for p in pngs]
    if not pngs:
        return None
    if key is not None:
        key = render_key("gif", key, [p.name for p in pngs], max_frames, width, duration_ms)
        if gif_key(Path(path)) == key:
            return Path(path)
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

    extra = {} if key is None else {"comment": key.encode("ascii")}

    def write(handle: IO[bytes]) -> None:
        frames[0].save(handle, format="GIF", save_all=True, append_images=frames[1:],
                       duration=duration_ms, loop=0, optimize=False, **extra)

    return atomic_write(path, write)


def gif_key(path: Path) -> Optional[str]:
    """The key stored as the comment of a GIF written by :func:`write_gif` (None if absent)."""
    if not path.is_file():
        return None
    try:
        from PIL import Image
        with Image.open(path) as image:
            comment = image.info.get("comment")
    except Exception:  # noqa: BLE001 - unreadable or truncated: write it again
        return None
    return comment.decode("ascii", "replace") if isinstance(comment, bytes) else None


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
    code = code_digest()
    keys = [epoch_key(ctx, code) for ctx in contexts]

    # pass 1: the shared projection (streamed; in this process, it is cheap), unless the one in
    # projection.json was fitted from the same epochs, trajectories and models
    inputs_key = None if not results or any(k is None for k in keys) else render_key(
        "projection", options.projection, options.seed, keys)
    failures: Dict[int, str] = {}
    projection = None if force else _stored_projection(out / "projection.json", inputs_key)
    if projection is None and results:
        projection, failures = _fit_projection(contexts, options, progress)
        if failures:  # a failure may not happen again: fit again next time
            inputs_key = None
        for k in failures:  # drawn with the points only
            contexts[k] = replace(contexts[k], source=None)
            keys[k] = None
    frames: List[Tuple[int, Path, str]] = []
    frame_keys: List[str] = []  # each frame's key, checked against its PNG's below
    speed_range = None  # each portrait scales its own heatmap (6 decades below its fastest)

    # pass 2: portraits (only those missing or drawn from other inputs)
    if projection is not None:
        proj_key = projection.key()
        jobs_list = []
        for k, ctx in enumerate(contexts):
            png = out / "portraits" / f"epoch_{int(ctx.result.epoch):04d}.png"
            key = render_key(REPORT_VERSION, code, keys[k] or _memory_epoch_key(ctx), proj_key,
                             speed_range, options.to_dict(), float(ctx.result.loss))
            if force and png.exists():
                png.unlink()
            jobs_list.append(RenderJob(ctx, projection, speed_range, str(png), key))
        drawn = [k for k, job in enumerate(jobs_list) if png_key(Path(job.png)) != job.key]
        not_drawn: Set[int] = set()
        for index, item in run_tasks(render_portrait, [jobs_list[k] for k in drawn], jobs=jobs,
                                     scheduler=scheduler, progress=progress, desc="portraits"):
            if isinstance(item, BaseException):
                k = drawn[index]
                failures[k] = f"{type(item).__name__}: {item}"
                not_drawn.add(k)
                logger.warning("epoch %s: the portrait could not be drawn (%s)", epochs[k], item)
        redrawn = set(drawn)
        for k, (ctx, job) in enumerate(zip(contexts, jobs_list)):
            if k in not_drawn or (k in redrawn and png_key(Path(job.png)) != job.key):
                continue
            frames.append((int(ctx.result.epoch), Path(job.png),
                           counts_text(ctx.result.counts()) + " · "
                           + ctx.result.fixed_points.certification_text()))
            frame_keys.append(job.key)
        _write_projection(out / "projection.json", projection, inputs_key)
        logger.info("portraits: %d drawn, %d unchanged", len(drawn), len(jobs_list) - len(drawn))

    timeline = write_timeline(analysis, out / "timeline.png", force=force)
    if force:
        (out / "portraits.gif").unlink(missing_ok=True)
    write_gif([p for _, p, _ in frames], out / "portraits.gif", max_frames=options.gif_frames,
              width=options.gif_width, key=render_key(frame_keys))

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
    page: Dict[str, Any] = dict(title=title or "ghostscope report",
                                subtitle=f"{source or ''} · {span}".strip(" ·"), facts=facts,
                                frames=frames, timeline=timeline, events=events, failed=failed,
                                details=details)
    key = render_key("report.html", REPORT_VERSION, code, {**page, "frames": [
        (e, p.name, c, k) for (e, p, c), k in zip(frames, frame_keys)],
        "timeline": png_key(timeline)})
    html = out / "report.html"
    if not force and html_key(html) == key:
        return html
    return write_html(html, key=key, **page)


def _memory_epoch_key(ctx: EpochContext) -> str:
    """A portrait's epoch part for an in-memory model (as before stamps: no model identity)."""
    return render_key(result_key(ctx.result), ctx.input, ctx.time, ctx.source is not None)


def _fit_projection(contexts: Sequence[EpochContext], options: PortraitOptions,
                    progress: bool) -> Tuple[Optional[Projection], Dict[int, str]]:
    """Pass 1: simulate every epoch and fit the shared projection (None if nothing finite)."""
    fitter = ProjectionFitter(kind=options.projection, seed=options.seed)
    failures: Dict[int, str] = {}
    contexts = list(contexts)
    for index, item in run_tasks(collect_states, contexts, jobs=1, progress=progress,
                                 desc="projection"):
        if isinstance(item, BaseException):
            failures[index] = f"{type(item).__name__}: {item}"
            r = contexts[index].result
            logger.warning("epoch %s: no trajectories for the portrait (%s)", r.epoch, item)
            item = {"states": np.empty((0, r.fixed_points.n_states)),
                    "points": np.asarray(r.fixed_points.x, dtype=float), "basis": None}
        fitter.add(item["states"], item["basis"], points=item["points"])
    try:
        return fitter.fit(), failures
    except ValueError as error:
        logger.warning("no portraits: %s", error)
        return None, failures


def _stored_projection(path: Path, inputs_key: Optional[str]) -> Optional[Projection]:
    """The projection in ``path`` when it was fitted from ``inputs_key`` (else None)."""
    if inputs_key is None or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or data.get("inputs_key") != inputs_key:
            return None
        return Projection.from_dict(data)
    except (OSError, ValueError, KeyError, TypeError) as error:
        logger.debug("%s: fitting the projection again (%s)", path, error)
        return None


def _write_projection(path: Path, projection: Projection, inputs_key: Optional[str]) -> None:
    """Write ``projection.json`` (with the key of its inputs) unless it already holds it."""
    text = json_text({**projection.to_dict(), "inputs_key": inputs_key})
    try:
        if path.read_text() == text:
            return
    except (OSError, UnicodeDecodeError):
        pass
    write_text(path, text)


def _episode_facts(analysis: SeriesAnalysis) -> List[Tuple[str, str]]:
    """Report facts: the first restructuring episode and its signed lead to the drop."""
    first = analysis.restructuring().first_episode
    if first is None:
        return [("restructuring episodes", "none")]
    out = [("first restructuring episode", f"epochs {first.epoch_start}–{first.epoch_end}")]
    if first.lead is not None:
        out.append(("its lead to the drop", f"{first.lead:+g} epochs"))
    return out
