"""The Python API: analyze a checkpoint series (what ``ghostscope analyze`` runs).

Pipeline: every checkpoint is analyzed on its own (fixed points, ghosts, topology; in worker
processes or on Dask through :func:`analysis.execution.run_tasks`, one model in memory per
worker), results are written to ``out`` as they arrive, then consecutive epochs are compared
(:mod:`analysis.events`), points are followed across epochs (:mod:`analysis.matching`), the
training log is read and its abrupt drop found (:mod:`analysis.learning`), and every event gets
its signed lead time. With ``localize=True`` each event is placed between its two checkpoints by
bisection along the interpolated weights (:mod:`analysis.localize`).

Example
-------
>>> from fixedpoints import systems
>>> from analysis import analyze_series
>>> series = [(e, systems.tanh_map(2.0, b)) for e, b in enumerate([0.40, 0.46, 0.52, 0.54])]
>>> result = analyze_series(series)
>>> [(e.kind, e.epoch_before, e.epoch_after) for e in result.events]
[('saddle_node', 2, 3)]
"""
from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from fixedpoints.finder import FinderOptions
from fixedpoints.serialization import json_text, to_json, write_text

from .epoch import EpochAnalysis, EpochSettings, analyze_checkpoint, make_settings
from .events import EventOptions, RestructuringEvent, detect_events, split_transients
from .learning import Drop, DropOptions, LossCurve, detect_drop, find_training_log, \
    read_training_log
from .matching import Track, build_tracks, match_points
from .outdir import epoch_name_problem, locks_out, retire_stale_summary
from .reuse import continuation_record, continuation_start, source_stamp
from .run_options import RunOptions, run_options_for
from .sources import ModelSource, SeriesItem, as_dynamics, resolve_series
from .versions import library_versions

__all__ = ["SeriesAnalysis", "FailedEpoch", "analyze_series", "analyze_checkpoint",
           "epoch_file_stem"]

logger = logging.getLogger(__name__)

#: Columns of events.csv.
EVENT_COLUMNS = ("epoch_before", "epoch_after", "kind", "epoch", "alpha", "lead_time", "points",
                 "detail")


def epoch_file_stem(epoch: int) -> str:
    """File stem of one epoch's result: ``epoch_0012`` (at least four digits)."""
    return f"epoch_{int(epoch):04d}"


@dataclass(frozen=True)
class FailedEpoch:
    """A checkpoint that could not be analyzed.

    Attributes
    ----------
    epoch : int or None
        Its epoch, when known.
    source : str
        The file (or model description).
    reason : str
        What went wrong (the exception's type and message, which says what to do).
    """

    epoch: Optional[int]
    source: str
    reason: str

    def to_dict(self) -> Dict[str, Any]:
        return {"epoch": self.epoch, "source": self.source, "reason": self.reason}


@dataclass(frozen=True)
class SeriesAnalysis:
    """Per-epoch analyses of a checkpoint series and the restructuring between them.

    Attributes
    ----------
    results : tuple of EpochAnalysis
        One per analyzed checkpoint, in epoch order.
    events : tuple of RestructuringEvent
        Restructuring events between consecutive analyzed checkpoints, each with
        ``epoch_before``, ``epoch_after``, ``kind``, ``points``, ``location`` and ``detail``;
        ``lead_time`` is ``drop_epoch − event epoch`` when a drop was found (positive: the event
        came first); ``alpha`` is set when the event was localized.
    tracks : tuple of Track
        Each fixed point (family ``"fixed"``) and ghost (``"ghost"``) followed across epochs.
    failed : tuple of FailedEpoch
        Checkpoints that could not be analyzed, with the reason.
    loss : LossCurve or None
        The training loss read beside the checkpoints (or given).
    drop : Drop or None
        The abrupt drop of the loss, when one was found.
    settings : EpochSettings
    options : dict
        Event and drop options and run facts (source, jobs, seconds, reused epochs).
    transients : tuple of RestructuringEvent
        Ghosts seen at one checkpoint only (kind ``"transient"``; not events, see
        :func:`analysis.events.split_transients`).
    """

    results: Tuple[EpochAnalysis, ...]
    events: Tuple[RestructuringEvent, ...]
    tracks: Tuple[Track, ...]
    failed: Tuple[FailedEpoch, ...]
    loss: Optional[LossCurve]
    drop: Optional[Drop]
    settings: EpochSettings
    options: Dict[str, Any] = field(default_factory=dict)
    transients: Tuple[RestructuringEvent, ...] = ()

    @property
    def epochs(self) -> List[int]:
        """Analyzed epochs, in order."""
        return [r.epoch for r in self.results]

    @property
    def drop_epoch(self) -> Optional[float]:
        """Epoch of the abrupt loss drop, or None."""
        return None if self.drop is None else self.drop.epoch

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, i: int) -> EpochAnalysis:
        return self.results[i]

    def _repr_html_(self) -> str:
        from .notebook import series_html  # Jupyter's rich display
        return series_html(self)

    def __repr__(self) -> str:
        kinds: Dict[str, int] = {}
        for e in self.events:
            kinds[e.kind] = kinds.get(e.kind, 0) + 1
        ev = ", ".join(f"{k}={v}" for k, v in kinds.items()) or "none"
        return (f"SeriesAnalysis({len(self.results)} epochs, events: {ev}; drop_epoch="
                f"{self.drop_epoch}, failed={len(self.failed)})")

    def result_at(self, epoch: int) -> EpochAnalysis:
        """The analysis at a given epoch (KeyError if it was not analyzed)."""
        for r in self.results:
            if r.epoch == epoch:
                return r
        raise KeyError(f"epoch {epoch} was not analyzed; analyzed epochs are {self.epochs}")

    def events_of(self, *kinds: str) -> List[RestructuringEvent]:
        """The events of the given kinds."""
        return [e for e in self.events if e.kind in kinds]

    def first_event(self, *kinds: str) -> Optional[RestructuringEvent]:
        """The earliest event (of the given kinds, or of any kind)."""
        pool = self.events_of(*kinds) if kinds else list(self.events)
        return min(pool, key=lambda e: (e.epoch, e.epoch_before)) if pool else None

    def restructuring(self):
        """The restructuring curve and its episodes
        (:func:`analysis.restructuring.restructuring_curve`)."""
        from .restructuring import restructuring_curve

        return restructuring_curve(self.results, self.events, self.drop_epoch,
                                   self.options.get("events"))

    def summary(self) -> Dict[str, Any]:
        """JSON-ready overview (what ``summary.json`` holds)."""
        kinds: Dict[str, int] = {}
        for e in self.events:
            kinds[e.kind] = kinds.get(e.kind, 0) + 1
        first = self.first_event()
        return to_json({
            "n_epochs": len(self.results), "epochs": self.epochs,
            "drop_epoch": self.drop_epoch,
            "drop": None if self.drop is None else self.drop.to_dict(),
            "loss_source": None if self.loss is None else self.loss.source,
            "loss_column": None if self.loss is None else self.loss.column,
            "n_events": len(self.events), "event_counts": kinds,
            "n_transients": len(self.transients),
            "transients": [t.to_dict() for t in self.transients],
            "first_event": None if first is None else first.to_dict(),
            "restructuring": self.restructuring().to_dict(),
            "per_epoch": [r.summary() for r in self.results],
            "failed": [f.to_dict() for f in self.failed],
            "settings": self.settings.to_dict(), "settings_hash": self.settings.hash(),
            "options": self.options,
            "n_tracks": len(self.tracks),
            "checkpoints": [{"epoch": r.epoch, "file": r.source} for r in self.results],
            "versions": library_versions(),
        })

    # ---------------------------------------------------------------- persistence
    def to_dir(self, out: Union[str, os.PathLike]) -> Path:
        """Write ``summary.json``, ``events.csv``, ``events.json``, ``tracks.json`` and
        ``epochs/epoch_XXXX.{json,npz}`` to ``out`` (each file written, then renamed).

        Returns
        -------
        Path
            The directory.
        """
        out = Path(out)
        (out / "epochs").mkdir(parents=True, exist_ok=True)
        for r in self.results:
            stem = out / "epochs" / epoch_file_stem(r.epoch)
            if not _same_saved(stem, r):
                r.save(stem)
        write_text(out / "events.csv", events_csv(self.events))
        write_text(out / "events.json", json_text([e.to_dict() for e in self.events]))
        write_text(out / "tracks.json", json_text([t.to_dict() for t in self.tracks]))
        return self.write_summary(out)

    def write_summary(self, out: Union[str, os.PathLike]) -> Path:
        """Write (only) ``out/summary.json``: after a change to the summary alone (e.g. the
        input-path facts of :func:`analysis.input_path.attach_input_path`). Returns ``out``."""
        out = Path(out)
        write_text(out / "summary.json", json_text(self.summary()))
        return out

    @classmethod
    def from_dir(cls, out: Union[str, os.PathLike], *, mixed: str = "error") -> "SeriesAnalysis":
        """Read a directory written by :meth:`to_dir` (tracks are rebuilt from the epochs).

        Parameters
        ----------
        out : path
        mixed : {"error", "warn"}
            What to do when epoch files were analyzed with other settings than ``summary.json``
            says (an interrupted re-run with other settings): raise a ``ValueError`` (default)
            or log a warning and return the mix.
        """
        if mixed not in ("error", "warn"):
            raise ValueError(f"mixed={mixed!r} is invalid; pass 'error' or 'warn'")
        out = Path(out)
        summary_path = out / "summary.json"
        if not summary_path.is_file():
            if (out / "epochs").is_dir():  # epochs without a summary: a run did not finish
                raise FileNotFoundError(f"{summary_path} is missing: the last run into {out} "
                                        f"stopped before the end; re-run the analysis with the "
                                        f"same out (it reuses the epochs done) to write it")
            raise FileNotFoundError(f"{summary_path} is missing; {out} was not written by "
                                    f"SeriesAnalysis.to_dir (run analyze_series(..., "
                                    f"run={{'out': ...}}))")
        summary = json.loads(summary_path.read_text())
        results = tuple(EpochAnalysis.load(out / "epochs" / epoch_file_stem(e))
                        for e in summary["epochs"])
        expected = summary.get("settings_hash")
        others = [r.epoch for r in results if r.settings_hash != expected]
        if others:
            text = (f"{summary_path}: epochs {others[:10]} were analyzed with other settings "
                    f"than the summary's (hash {expected}); re-run the analysis into {out} with "
                    f"the settings you want (it recomputes those epochs), or pass mixed='warn'")
            if mixed == "error":
                raise ValueError(text)
            logger.warning("%s", text)
        events = tuple(RestructuringEvent.from_dict(d)
                       for d in json.loads((out / "events.json").read_text()))
        drop = None if summary.get("drop") is None else Drop(**summary["drop"])
        loss = _loss_from_results(results, summary.get("loss_source"),
                                  summary.get("loss_column"))
        settings = make_settings(None, **_settings_kwargs(summary["settings"]))
        options = summary.get("options", {})
        gate = EventOptions.make(options.get("events")).gate
        transients = tuple(RestructuringEvent.from_dict(d)
                           for d in summary.get("transients", []))
        return cls(results=results, events=events, tracks=tuple(series_tracks(results, gate)),
                   failed=tuple(FailedEpoch(**f) for f in summary.get("failed", [])),
                   loss=loss, drop=drop, settings=settings, options=options,
                   transients=transients)


def _settings_kwargs(d: Dict[str, Any]) -> Dict[str, Any]:
    d = dict(d)
    for key in ("input",):
        if d.get(key) is not None:
            d[key] = tuple(d[key])
    return d


def _loss_from_results(results, source, column) -> Optional[LossCurve]:
    e = np.array([r.epoch for r in results], float)
    v = np.array([r.loss for r in results], float)
    if not np.any(np.isfinite(v)):
        return None
    return LossCurve(e, v, source or "", column or "loss")


def _same_saved(stem: Path, result: EpochAnalysis) -> bool:
    """Whether ``stem`` already holds this epoch's result with the same settings and loss."""
    meta = _read_meta(stem)
    if meta is None:
        return False
    loss = meta.get("loss")
    same_loss = (loss is None and not math.isfinite(result.loss)) or (
        loss is not None and math.isfinite(result.loss) and float(loss) == float(result.loss))
    return (meta.get("settings_hash") == result.settings_hash and
            int(meta.get("epoch", -1)) == result.epoch and same_loss and
            meta.get("source_stamp", "") == result.source_stamp and
            stem.with_suffix(".npz").is_file())


def _read_meta(stem: Path) -> Optional[Dict[str, Any]]:
    path = stem.with_suffix(".json")
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def events_csv(events: Sequence[RestructuringEvent],
               conditions: Optional[Sequence[str]] = None) -> str:
    """The events as CSV text (columns :data:`EVENT_COLUMNS`; ``detail`` as JSON), with a
    leading ``condition`` column when ``conditions`` (one name per event) is given."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow((("condition",) if conditions is not None else ()) + EVENT_COLUMNS)
    for k, e in enumerate(events):
        lead = [conditions[k]] if conditions is not None else []
        writer.writerow(lead + [e.epoch_before, e.epoch_after, e.kind, f"{e.epoch:g}",
                                "" if e.alpha is None else f"{e.alpha:.6g}",
                                "" if e.lead_time is None else f"{e.lead_time:g}",
                                " ".join(e.points),
                                json_text(e.detail, indent=None, sort_keys=True)])
    return buffer.getvalue()


def series_tracks(results: Sequence[EpochAnalysis], gate: float = 0.5) -> List[Track]:
    """Fixed points and ghosts followed across consecutive analyzed epochs.

    Parameters
    ----------
    results : sequence of EpochAnalysis
    gate : float
        Matching gate relative to the larger spread of each pair of epochs (as in
        :mod:`analysis.events`).
    """
    epochs = [r.epoch for r in results]
    fixed_sets, ghost_sets = [], []
    for r in results:
        fp = r.fixed_points
        keep = fp.kind != "slow"
        fixed_sets.append((fp.x[keep], fp.kind[keep], fp.n_unstable[keep]))
        if r.ghosts is not None:
            g = np.asarray(r.ghosts.x, float).reshape(-1, fp.x.shape[1])
            gi = np.asarray(r.ghosts.n_unstable, int).reshape(-1)
        else:
            g, gi = fp.x[~keep], fp.n_unstable[~keep]
        ghost_sets.append((g, np.array(["ghost"] * len(g)), gi))
    tracks: List[Track] = []
    for family, sets in (("fixed", fixed_sets), ("ghost", ghost_sets)):
        matchings = []
        for k in range(len(results) - 1):
            spread = max(results[k].scale, results[k + 1].scale)
            matchings.append(match_points(sets[k][0], sets[k + 1][0], gate * spread))
        made = build_tracks(epochs, sets, matchings, family=family)
        offset = len(tracks)
        tracks.extend(replace(t, track_id=t.track_id + offset) for t in made)
    return tracks


def analyze_epoch_task(source: ModelSource, epoch: int, loss: float, settings: EpochSettings,
                       device: str, label: str, limits=None,
                       warm_from: Optional[EpochAnalysis] = None) -> EpochAnalysis:
    """Analyze one checkpoint (a top-level, picklable function for worker processes / Dask).

    Parameters
    ----------
    source : ModelSource
        Where the model comes from.
    epoch : int
    loss : float
    settings : EpochSettings
    device : str
    label : str
        Stored with the result as its ``source``.
    limits : analysis.resources.ResourceLimits, optional
        Memory limits checked before the analysis allocates anything.
    warm_from : EpochAnalysis, optional
        The previous checkpoint's analysis, to warm-start the search from.
    """
    from .resources import check_cost

    model = source.load()
    check_cost(model, settings, limits=limits, source=label, device=device)  # before allocating
    result = analyze_checkpoint(model, epoch=epoch, loss=loss, settings=settings, device=device,
                                limits=False, warm_from=warm_from)
    return replace(result, source=label)


#: Most checkpoints one worker analyzes in a row (one task): each chunk starts cold, the rest
#: of it warm from the checkpoint before; small enough that progress, the per-epoch files and
#: the memory of results in flight stay fine-grained.
CHUNK_SIZE = 16


def _chunks(n: int, jobs: int, scheduler: Any, settings: EpochSettings) -> List[List[int]]:
    """Contiguous runs of task positions ``0..n-1``, one task each.

    Without warm starts every checkpoint is its own task. With them, consecutive checkpoints
    go to one worker in epoch order, at most :data:`CHUNK_SIZE` and at most ``n / workers`` of
    them per chunk (so that every worker gets work).
    """
    if not settings.warm_start or n == 0:
        return [[k] for k in range(n)]
    from .execution import resolve_jobs

    workers = 8 if scheduler is not None else resolve_jobs(jobs)
    size = max(1, min(CHUNK_SIZE, math.ceil(n / workers)))
    return [list(range(start, min(n, start + size))) for start in range(0, n, size)]


def analyze_chunk_task(tasks: Sequence[tuple]) -> List[Any]:
    """Analyze consecutive checkpoints in order, each warm-started from the last one that
    succeeded (top-level, picklable: one task of a worker process or of Dask).

    Parameters
    ----------
    tasks : sequence of tuple
        The argument tuples of :func:`analyze_epoch_task`, in epoch order.

    Returns
    -------
    list
        One :class:`EpochAnalysis` or exception (with its traceback text) per task.
    """
    from .execution import _call

    out: List[Any] = []
    previous: Optional[EpochAnalysis] = None
    for task in tasks:
        value = _call(analyze_epoch_task, (*task, previous))
        if not isinstance(value, BaseException):
            previous = value
        out.append(value)
    return out


def _localize_task(source_before: ModelSource, source_after: ModelSource, event, before, after,
                   interpolate, settings: EpochSettings, device: str):
    """Localize one event (top-level, picklable)."""
    from .localize import interpolate_modules, localize_event

    def dynamics_of(model):
        return as_dynamics(model, input=settings.input, time=settings.time, device=device)

    if interpolate is not None:
        def system_at(alpha):
            return dynamics_of(interpolate(event.epoch_before, event.epoch_after, alpha))
    else:
        model_a, model_b = source_before.load(), source_after.load()
        import torch

        if not (isinstance(model_a, torch.nn.Module) and isinstance(model_b, torch.nn.Module)):
            raise TypeError("localize=True needs nn.Module checkpoints or interpolate=; for "
                            "synthetic Dynamics pass interpolate(epoch_before, epoch_after, "
                            "alpha) -> Dynamics")

        def system_at(alpha):
            return dynamics_of(interpolate_modules(model_a, model_b, alpha))
    default = FinderOptions()
    changed = {f.name: getattr(settings.finder, f.name) for f in fields(FinderOptions)
               if getattr(settings.finder, f.name) != getattr(default, f.name)}
    return localize_event(event, system_at, before=before, after=after, finder_options=changed)


def _run(func, args_list, jobs, scheduler, progress, desc, weights=None):
    """run_tasks when analysis.execution is available, else a serial loop."""
    try:
        from .execution import run_tasks
    except ImportError:  # pragma: no cover - execution.py ships with the package
        run_tasks = None
    if run_tasks is None:
        def serial():
            for k, args in enumerate(args_list):
                try:
                    yield k, func(*args)
                except Exception as error:  # noqa: BLE001 - failures are results here
                    yield k, error
        return serial()
    return run_tasks(func, args_list, jobs=jobs, scheduler=scheduler, progress=progress,
                     desc=desc, weights=weights)


def _picklable(items: Sequence[SeriesItem], interpolate) -> bool:
    """Whether the in-memory models (and interpolate) can travel to other processes."""
    import pickle

    try:
        for item in items:
            if item.source.obj is not None:
                pickle.dumps(item.source.obj)
        if interpolate is not None:
            pickle.dumps(interpolate)
    except Exception:  # noqa: BLE001 - any pickling failure means: stay in this process
        return False
    return True


def _read_log(log, log_column, directory, offset=None, also=()) -> Optional[LossCurve]:
    if isinstance(log, LossCurve):
        return log
    if isinstance(log, dict):
        return LossCurve(np.asarray(log["epochs"]), np.asarray(log["loss"]), "given", "loss")
    if isinstance(log, (tuple, list)) and len(log) == 2:
        return LossCurve(np.asarray(log[0]), np.asarray(log[1]), "given", "loss")
    if log is not None:
        return read_training_log(log, log_column, offset)
    if directory is not None:
        found = find_training_log(directory, also=also)
        if found is not None:
            if log_column is not None:  # a column asked for must be there
                return read_training_log(found, log_column, offset)
            try:  # a log found beside the checkpoints is optional: a bad one is a warning
                return read_training_log(found, log_column, offset)
            except (OSError, ValueError) as error:
                logger.warning("%s: not used, the analysis goes on without a loss curve (%s)",
                               found, " ".join(str(error).split()))
    return None


@locks_out
def analyze_series(path_or_series: Any, model: Any = None, *,
                   settings: Optional[EpochSettings] = None,
                   run: Union[RunOptions, Dict[str, Any], None] = None,
                   events: Union[EventOptions, Dict[str, Any], None] = None,
                   drop: Union[DropOptions, Dict[str, Any], None] = None,
                   log: Any = None, interpolate: Optional[Callable] = None,
                   **options: Any) -> SeriesAnalysis:
    """Analyze every checkpoint of a series and track restructuring across epochs.

    Parameters
    ----------
    path_or_series : str, path, checkpoints.CheckpointSeries, or sequence of (epoch, model)
        A directory of checkpoints (or one file), a series, or pairs of an epoch and an
        ``nn.Module``, a :class:`fixedpoints.Dynamics` or a checkpoint path (synthetic series).
    model : str, callable or nn.Module, optional
        How to rebuild models from the files: an architecture name (``"leaky_rnn"``), a factory
        (``"pkg.module:build"``, ``"file.py:build"`` or a callable), or a template module whose
        copies receive each state dict.
    settings : EpochSettings, optional
        How each epoch is analyzed (finder, ghosts, topology, seeds, input ...); fields may also
        be given as keywords (``**options``).
    run : RunOptions or dict, optional
        How the run executes and what it writes: workers, scheduler, device, progress,
        ``strict``, ``out``, ``force``, ``localize``, ``max_states``, how the log is read and
        how checkpoints are loaded (:class:`analysis.run_options.RunOptions`).
    events : EventOptions or dict, optional
        Event-rule thresholds (:class:`analysis.events.EventOptions`).
    drop : DropOptions or dict, optional
        Abrupt-drop detection parameters (:class:`analysis.learning.DropOptions`).
    log : path, LossCurve or (epochs, loss), optional
        The training loss: ``train_log.csv`` or an ``.npz`` with ``loss_history`` (see
        :func:`analysis.learning.read_training_log`). Looked up beside the checkpoints when
        omitted.
    interpolate : callable, optional
        ``interpolate(epoch_before, epoch_after, alpha) -> model or Dynamics`` for localizing
        events of a synthetic series (``run.localize``).
    **options
        Fields of :class:`EpochSettings` (``n_initial=512``, ``input=(0, 0, 0)``,
        ``drive=inputs``, ``finder=FinderOptions(...)`` or ``{...}``, ``ghosts=False`` ...),
        built with :func:`analysis.epoch.make_settings`.

    Returns
    -------
    SeriesAnalysis

    Raises
    ------
    checkpoints.CheckpointError
        No checkpoints found, or (with ``run.strict``) a bad file.
    ValueError
        Unknown options or bad values (the message lists the valid ones).
    TypeError
        A run option passed as a keyword (``jobs=2``): it belongs in ``run=``.
    """
    import time

    started = time.perf_counter()
    if "inputs" in options:
        raise ValueError("inputs= (several named input conditions) is analyzed by "
                         "analysis.analyze_conditions(source, inputs, ...), one analyze_series "
                         "per condition; pass input=(...) here for one constant input")
    run_options = run_options_for("analyze_series", run, options)
    jobs, scheduler, device = run_options.jobs, run_options.scheduler, run_options.device
    strict, progress = run_options.strict, run_options.progress
    settings = make_settings(settings, **options)
    event_options = EventOptions.make(events)
    drop_options = DropOptions.make(drop)
    items, directory, series = resolve_series(path_or_series, model, strict=strict,
                                              load_options=run_options.load_options)
    if not items:
        raise ValueError("the series is empty; pass at least one checkpoint")
    found_run = getattr(series, "run", None)
    loss_curve = _read_log(log, run_options.log_column, directory, run_options.log_offset,
                           (found_run.root,) if found_run is not None else ())

    def loss_at(epoch):
        return math.nan if loss_curve is None or epoch is None else loss_curve.at(epoch)

    out_dir = run_options.out
    settings_hash = settings.hash()
    from .conditions import CONDITIONS_FILE
    if out_dir is not None and (out_dir / CONDITIONS_FILE).is_file():
        raise ValueError(f"{out_dir}: holds an analysis at several input conditions "
                         f"({CONDITIONS_FILE}), whose merged events.csv this one would "
                         f"overwrite; pass another out for one input, or analyze_conditions")
    if out_dir is not None:  # no old summary beside epochs of other settings, even if stopped
        retire_stale_summary(out_dir, settings_hash)
    results: Dict[int, EpochAnalysis] = {}
    failed: List[FailedEpoch] = []
    reused = 0
    todo: List[SeriesItem] = []
    stamps: Dict[int, str] = {}  # each file's identity, taken before it is read
    for item in items:
        problem = epoch_name_problem(item.epoch)
        if problem is not None:  # this file fails; the run goes on
            if strict:
                raise ValueError(f"{item.label}: {problem}")
            failed.append(FailedEpoch(None, item.label, f"{item.label}: {problem}"))
            logger.warning("%s: %s", item.label, problem)
            continue
        stem = None if out_dir is None else out_dir / "epochs" / epoch_file_stem(item.epoch)
        meta = None if (stem is None or run_options.force) else _read_meta(stem)
        stamps[item.epoch] = source_stamp(item.source)
        if (stem is not None and meta is not None and meta.get("settings_hash") == settings_hash
                and meta.get("source") == item.label
                and meta.get("source_stamp", "") == stamps[item.epoch]):
            try:
                r = EpochAnalysis.load(stem)
                results[item.epoch] = replace(r, loss=loss_at(item.epoch)) \
                    if math.isfinite(loss_at(item.epoch)) else r
                reused += 1
                continue
            except Exception as error:  # noqa: BLE001 - an older or damaged file: recompute
                logger.warning("re-analyzing epoch %s: could not reuse %s (%s)", item.epoch,
                               stem, error)
        todo.append(item)
    if (scheduler is not None or jobs != 1) and not _picklable(items, interpolate):
        logger.warning("some models in the series cannot be sent to worker processes (e.g. "
                       "Dynamics built from lambdas); analyzing in this process (jobs=1)")
        jobs, scheduler = 1, None
    from .execution import resolve_jobs
    from .resources import ResourceLimits, available_memory
    # the memory free now, before this run's workers take theirs (a cluster's is its own)
    limits = ResourceLimits(max_states=run_options.max_states, warn_slow=False,
                            share=1.0 if scheduler is not None else 1.0 / resolve_jobs(jobs),
                            free=None if scheduler is not None else available_memory(device))
    args = [(item.source, item.epoch, loss_at(item.epoch), settings, device, item.label,
             limits) for item in todo]
    chunks = _chunks(len(todo), jobs, scheduler, settings)
    n_chunks, warm_count = len(chunks), 0
    while chunks:
        # a chunk that failed as a whole (its worker died twice) is run again one checkpoint
        # per task, so that only the checkpoint that kills its worker is blamed
        retry: List[List[int]] = []
        for c, chunk_values in _run(analyze_chunk_task, [([args[k] for k in chunk],)
                                                         for chunk in chunks],
                                    jobs, scheduler, progress, desc="analyzing checkpoints",
                                    weights=[len(chunk) for chunk in chunks]):
            if isinstance(chunk_values, BaseException):
                if len(chunks[c]) > 1:
                    retry.extend([k] for k in chunks[c])
                    continue
                chunk_values = [chunk_values]
            for k, value in zip(chunks[c], chunk_values):
                item = todo[k]
                if isinstance(value, BaseException):
                    if strict:
                        raise value
                    reason = f"{type(value).__name__}: {value}"
                    failed.append(FailedEpoch(item.epoch, item.label, reason))
                    logger.debug("epoch %s (%s) failed: %s", item.epoch, item.label, reason)
                    continue
                results[item.epoch] = value = replace(value,
                                                       source_stamp=stamps[item.epoch])
                warm_count += "warm_start" in value.info
                if out_dir is not None:
                    value.save(out_dir / "epochs" / epoch_file_stem(item.epoch))
        chunks = sorted(retry)
    if failed:  # problems said once: a reason shared by many files is one line
        from checkpoints import group_problems
        for group in group_problems((f.source, f.reason) for f in failed):
            logger.warning("failed: %s", group)
    ordered = tuple(results[e] for e in sorted(results))
    continuation = None
    if settings.continuation and len(ordered) > 1:
        start = None if run_options.force else continuation_start(out_dir, ordered,
                                                                  settings_hash)
        ordered, continuation = _continue(ordered, items, settings, device, jobs, scheduler,
                                          progress, out_dir, start)
    found_events: List[RestructuringEvent] = []
    for a, b in zip(ordered[:-1], ordered[1:]):
        found_events.extend(detect_events(a, b, event_options))
    found_events, transients = split_transients(found_events, [r.epoch for r in ordered])

    if run_options.localize and found_events:
        found_events = _localize_all(found_events, ordered, items, interpolate, settings, device,
                                     jobs, scheduler, progress)
    drop_found = detect_drop(loss_curve, options=drop_options) if loss_curve is not None else None
    if drop_found is not None:
        found_events = [replace(e, lead_time=float(drop_found.epoch) - e.epoch)
                        for e in found_events]
    tracks = series_tracks(ordered, event_options.gate)
    summary_options = {"events": event_options.to_dict(), "drop": drop_options.to_dict(),
                   "source": directory if directory is not None else
                   (str(path_or_series) if isinstance(path_or_series, (str, os.PathLike))
                    else "sequence"),
                   "jobs": jobs, "device": device, "localize": run_options.localize,
                   "reused_epochs": reused, "continuation": continuation,
                   "warm_start": {"chunks": n_chunks, "warm_epochs": warm_count},
                   "seconds": time.perf_counter() - started}
    failed.sort(key=lambda f: (f.epoch is None, f.epoch if f.epoch is not None else 0))
    result = SeriesAnalysis(results=ordered, events=tuple(found_events), tracks=tuple(tracks),
                            failed=tuple(failed), loss=loss_curve, drop=drop_found,
                            settings=settings, options=summary_options,
                            transients=tuple(transients))
    if out_dir is not None:
        result.to_dir(out_dir)
    return result


def _continuation_task(source: ModelSource, result, seeds, settings: EpochSettings,
                       device: str):
    """One checkpoint's continuation (top-level, picklable; see analysis.continuation)."""
    from .continuation import continuation_task

    return continuation_task(source.load, result, seeds, settings, device)


def _continue(ordered, items, settings, device, jobs, scheduler, progress, out_dir, start=None):
    """Continuation passes (:func:`analysis.continuation.continue_series`, from the positions
    ``start``, default all); saves what changed."""
    from .continuation import continue_series

    sources = {item.epoch: item.source for item in items}

    def make_args(k, seeds):
        return (sources[ordered[k].epoch], ordered[k], seeds, settings, device)

    def run_task(args):
        return _run(_continuation_task, args, jobs, scheduler, progress,
                    desc="continuation from neighbouring checkpoints")

    results, report = continue_series(ordered, run_task, make_args, start=start)
    if out_dir is not None:
        for r in results:
            if r.epoch in report["reanalyzed_epochs"]:
                r.save(out_dir / "epochs" / epoch_file_stem(r.epoch))
    return tuple(results), continuation_record(results, report)


def _localize_all(found_events, ordered, items, interpolate, settings, device, jobs, scheduler,
                  progress):
    from .localize import LOCALIZABLE

    by_epoch = {r.epoch: r for r in ordered}
    sources = {item.epoch: item.source for item in items}
    todo = [k for k, e in enumerate(found_events) if e.kind in LOCALIZABLE]
    args = [(sources[found_events[k].epoch_before], sources[found_events[k].epoch_after],
             found_events[k], by_epoch[found_events[k].epoch_before],
             by_epoch[found_events[k].epoch_after], interpolate, settings, device)
            for k in todo]
    events = list(found_events)
    for j, value in _run(_localize_task, args, jobs, scheduler, progress,
                         desc="localizing events"):
        k = todo[j]
        e = events[k]
        if isinstance(value, BaseException):
            events[k] = replace(e, detail={**e.detail, "localization": f"failed: "
                                           f"{type(value).__name__}: {value}"})
            continue
        events[k] = replace(e, alpha=value.alpha,
                            detail={**e.detail, "localization": value.to_dict()})
    return events
