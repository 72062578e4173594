"""Every checkpoint of a series along one straight input path: folds and Hopf points per epoch.

:func:`analyze_input_path` runs :func:`analysis.bifurcation.bifurcation_diagram` (pseudo-arclength
continuation by :func:`fixedpoints.continuation.continue_fixed_points`) on each checkpoint for
the path ``"A:B:n"`` and writes, into ``out``,

- ``epoch_XXXX.png``: the checkpoint's bifurcation diagram (input coordinate against the fixed
  points' projection, solid where stable);
- ``epoch_XXXX.json``: its branches and bifurcations, with the path, the settings hash and the
  checkpoint, so that a re-run with the same ones reuses it (``force=True`` redoes it);
- ``summary.json``: the path and, per epoch, its folds and Hopf points (kind, s, input).

``ghostscope analyze DIR --input-path A:B:n`` writes these to ``OUT/bifurcation/`` and lists
the folds and Hopf points per epoch in ``summary.json`` (``options["input_path"]``, through
:func:`attach_input_path`) and in ``report.html``.

Example
-------
>>> import torch
>>> from fixedpoints import DiscreteDynamics
>>> step = lambda x, u: torch.tanh(2.0 * x + u)           # the tanh map, input b = u
>>> found = analyze_input_path([(0, DiscreteDynamics(step, 1, n_inputs=1))], "0:1:40",
...                            n_initial=32)   # run=RunOptions(out=..., jobs=...) as usual
>>> [(b["kind"], round(b["input"][0], 4)) for b in found.epochs[0].bifurcations]
[('fold', 0.5328)]
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from fixedpoints.serialization import json_text, to_json, write_text

from .api import FailedEpoch, SeriesAnalysis, epoch_file_stem
from .epoch import EpochSettings, make_settings
from .reuse import source_stamp
from .run_options import RunOptions, run_options_for
from .sources import ModelSource, as_dynamics, resolve_series

__all__ = ["EpochBifurcations", "InputPathAnalysis", "analyze_input_path", "attach_input_path",
           "input_path_task"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EpochBifurcations:
    """The folds and Hopf points of one checkpoint along the input path.

    Attributes
    ----------
    epoch : int
    source : str
        The checkpoint (file or model description).
    bifurcations : tuple of dict
        Sorted by path coordinate, each ``{"kind": "fold" | "hopf", "s": float, "input": [...],
        "x": [...], "branch": int}`` (:meth:`fixedpoints.continuation.Bifurcation.to_dict`;
        read back from a summary, only kind, s and input).
    n_branches : int
        Fixed points found at A and continued.
    png : str or None
        The diagram's file, relative to the output directory.
    diagram : BifurcationDiagram or None
        The full continuation (None when the epoch was read back from disk).
    """

    epoch: int
    source: str
    bifurcations: Tuple[Dict[str, Any], ...]
    n_branches: int
    png: Optional[str] = None
    diagram: Any = field(default=None, compare=False, repr=False)

    @property
    def folds(self) -> List[Dict[str, Any]]:
        return [b for b in self.bifurcations if b["kind"] == "fold"]

    @property
    def hopf_points(self) -> List[Dict[str, Any]]:
        return [b for b in self.bifurcations if b["kind"] == "hopf"]

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready, without the states (``x``): what ``summary.json`` lists per epoch."""
        return {"epoch": int(self.epoch), "source": self.source, "n_branches": self.n_branches,
                "png": self.png,
                "bifurcations": [{"kind": b["kind"], "s": float(b["s"]),
                                  "input": [float(v) for v in b["input"]]}
                                 for b in self.bifurcations]}


@dataclass(frozen=True)
class InputPathAnalysis:
    """Folds and Hopf points of every checkpoint along one input path.

    Attributes
    ----------
    path : str
        ``"A:B:n"``.
    epochs : tuple of EpochBifurcations
        In epoch order.
    failed : tuple of analysis.api.FailedEpoch
        Checkpoints whose continuation failed, with the reason.
    settings_hash : str
        Of the settings of the search at A.
    """

    path: str
    epochs: Tuple[EpochBifurcations, ...]
    failed: Tuple[FailedEpoch, ...] = ()
    settings_hash: str = ""

    def at(self, epoch: int) -> EpochBifurcations:
        """The result at one epoch (KeyError if it was not continued)."""
        for e in self.epochs:
            if e.epoch == epoch:
                return e
        raise KeyError(f"epoch {epoch} was not continued along {self.path}; continued epochs "
                       f"are {[e.epoch for e in self.epochs]}")

    def summary(self) -> Dict[str, Any]:
        """JSON-ready: the path, per epoch its bifurcations, and the failures."""
        return to_json({"path": self.path, "settings_hash": self.settings_hash,
                        "n_folds": sum(len(e.folds) for e in self.epochs),
                        "n_hopf": sum(len(e.hopf_points) for e in self.epochs),
                        "per_epoch": [e.to_dict() for e in self.epochs],
                        "failed": [f.to_dict() for f in self.failed]})

    def text(self) -> str:
        """One line per epoch with a bifurcation (for the CLI and the report)."""
        lines = []
        for e in self.epochs:
            if e.bifurcations:
                parts = [f"{b['kind']} at input {_vector(b['input'])}" for b in e.bifurcations]
                lines.append(f"epoch {e.epoch}: {'; '.join(parts)}")
        return "\n".join(lines) or f"no fold or Hopf point along {self.path}"


def _vector(values) -> str:
    values = [float(v) for v in values]
    return f"{values[0]:.6g}" if len(values) == 1 else "(" + ", ".join(f"{v:.6g}"
                                                                      for v in values) + ")"


def input_path_task(source: ModelSource, path: str, settings: EpochSettings, device: str):
    """One checkpoint's bifurcation diagram (top-level, picklable for worker processes)."""
    from .bifurcation import bifurcation_diagram

    return bifurcation_diagram(source.load(), path, settings=settings, time=settings.time,
                               device=device)


def _reusable(json_path: Path, extra: Dict[str, Any]) -> Optional[EpochBifurcations]:
    """The epoch's saved result when it was computed for the same path, settings and file."""
    if not json_path.is_file() or not json_path.with_suffix(".png").is_file():
        return None
    try:
        data = json.loads(json_path.read_text())
    except (OSError, ValueError):
        return None
    if any(data.get(k) != v for k, v in extra.items()):
        return None
    return EpochBifurcations(epoch=int(data["epoch"]), source=str(data["source"]),
                             bifurcations=tuple(data.get("bifurcations", [])),
                             n_branches=len(data.get("branches", [])),
                             png=json_path.with_suffix(".png").name)


def analyze_input_path(path_or_series: Any, path: str, model: Any = None, *,
                       settings: Optional[EpochSettings] = None,
                       run: Union[RunOptions, Dict[str, Any], None] = None,
                       **options: Any) -> InputPathAnalysis:
    """Continue every checkpoint's fixed points along the straight input path ``"A:B:n"``.

    Parameters
    ----------
    path_or_series : path, CheckpointSeries, or sequence of (epoch, model)
        As :func:`analysis.analyze_series`.
    path : str
        ``A:B:n``: A and B comma-separated vectors of the model's input size, n the number of
        path points at least (:func:`fixedpoints.continuation.parse_input_path`).
    model : optional
        How to rebuild models from files (as :func:`analysis.analyze_series`).
    settings : EpochSettings, optional
        Initial states and finder of the search at A (``input`` is not used: the search is at A).
    run : RunOptions or dict, optional
        As :func:`analysis.analyze_series`: ``jobs``, ``scheduler``, ``device``, ``progress``,
        ``strict`` (raise at the first checkpoint that fails instead of recording it in
        ``.failed``), ``load_options``, and ``out``: write ``epoch_XXXX.{json,png}`` and
        ``summary.json`` there (see the module docstring); epochs already there for the same
        path, settings and file are reused unless ``force``.
    **options
        Fields of :class:`EpochSettings` (``n_initial=64``, ``finder={...}``, ...).

    Returns
    -------
    InputPathAnalysis

    Raises
    ------
    ValueError
        A path that is not ``A:B:n`` or does not fit the model's inputs (checked on the first
        checkpoint, before any continuation).
    TypeError
        A run option passed as a keyword (``jobs=2``): it belongs in ``run=``.
    """
    run_options = run_options_for("analyze_input_path", run, options)
    jobs, scheduler, device = run_options.jobs, run_options.scheduler, run_options.device
    strict, force = run_options.strict, run_options.force
    from fixedpoints.continuation import parse_input_path

    from .execution import run_tasks

    settings = make_settings(settings, **options)
    items, _, _ = resolve_series(path_or_series, model, strict=strict,
                                 load_options=run_options.load_options)
    if not items:
        raise ValueError("the series is empty; pass at least one checkpoint")
    probe = as_dynamics(items[0].source.load(), time=settings.time)
    parse_input_path(path, probe.n_inputs)  # a bad path fails once, here
    out_dir = run_options.out
    settings_hash = settings.hash()
    done: Dict[int, EpochBifurcations] = {}
    todo = []
    for item in items:
        # the file's stamp too, as for epochs: a checkpoint rewritten under its name is redone
        extra = {"epoch": int(item.epoch), "source": item.label, "path": str(path),
                 "settings_hash": settings_hash, "source_stamp": source_stamp(item.source)}
        stem = epoch_file_stem(item.epoch)
        reused = None if (out_dir is None or force) else _reusable(out_dir / f"{stem}.json",
                                                                    extra)
        if reused is not None:
            done[item.epoch] = reused
        else:
            todo.append((item, extra))
    failed: List[FailedEpoch] = []
    args = [(item.source, str(path), settings, device) for item, _ in todo]
    for k, value in run_tasks(input_path_task, args, jobs=jobs, scheduler=scheduler,
                              progress=run_options.progress,
                              desc=f"continuation along {path}"):
        item, extra = todo[k]
        if isinstance(value, BaseException):
            if strict:
                raise value
            reason = f"{type(value).__name__}: {value}"
            failed.append(FailedEpoch(item.epoch, item.label, reason))
            logger.warning("epoch %s: no continuation along %s (%s)", item.epoch, path, reason)
            continue
        png = None
        if out_dir is not None:
            stem = epoch_file_stem(item.epoch)
            png = value.save(out_dir, stem, title=f"epoch {item.epoch}: fixed points along "
                                                  f"{path}", extra=extra).name
        done[item.epoch] = EpochBifurcations(
            epoch=int(item.epoch), source=item.label,
            bifurcations=tuple(to_json(b.to_dict()) for b in value.continuation.bifurcations),
            n_branches=len(value.continuation.branches), png=png, diagram=value)
    failed.sort(key=lambda f: f.epoch if f.epoch is not None else -1)
    result = InputPathAnalysis(path=str(path), epochs=tuple(done[e] for e in sorted(done)),
                               failed=tuple(failed), settings_hash=settings_hash)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_text(out_dir / "summary.json", json_text(result.summary()))
    return result


def attach_input_path(analysis: SeriesAnalysis, found: InputPathAnalysis,
                      directory: str = "bifurcation") -> SeriesAnalysis:
    """The analysis with the path's folds and Hopf points per epoch in its options (so in
    ``summary.json`` as ``options["input_path"]`` and in ``report.html``).

    Parameters
    ----------
    analysis : SeriesAnalysis
    found : InputPathAnalysis
    directory : str
        Where the diagrams lie, relative to the analysis' output directory.
    """
    info = {**found.summary(), "directory": directory}
    return replace(analysis, options={**analysis.options, "input_path": info})
