"""Several named constant inputs: every epoch analyzed at each, outputs per condition.

A trained network is a different dynamical system at each constant input (a cue on, a cue off,
the delay). :func:`analyze_conditions` runs :func:`analysis.analyze_series` once per named
input (``{"delay": [0], "cue+": [1], "cue-": [-1]}``, or a JSON file holding that object), each
exactly as a single run at that input (``input=...``), into its own directory::

    OUT/conditions.json            the conditions, their inputs and an overview of each
    OUT/events.csv, events.json    all events, with a leading ``condition`` column / field
    OUT/report.html                an index linking each condition's report (with the CLI)
    OUT/conditions/<name>/         the layout of a single-condition OUT: summary.json,
                                   events.csv, epochs/, portraits/, report.html, ...

so that re-running resumes each condition, and ``SeriesAnalysis.from_dir`` (and
:func:`analysis.write_report`) work on each ``OUT/conditions/<name>``.
:class:`ConditionsAnalysis` is the result; :meth:`ConditionsAnalysis.from_dir` reads ``OUT``.

Condition names become directory names: letters, digits, ``_ . + -`` (up to 64 characters,
starting with a letter, digit or ``_``), distinct ignoring case.

Example
-------
>>> import torch
>>> from fixedpoints import DiscreteDynamics
>>> def tanh_map(b):                  # x <- tanh(2 x + b + u): its fold is at b + u = 0.5328
...     return DiscreteDynamics(lambda x, u: torch.tanh(2.0 * x + b + u), 1, n_inputs=1)
>>> series = [(e, tanh_map(b)) for e, b in enumerate([0.40, 0.46, 0.52, 0.54])]
>>> found = analyze_conditions(series, {"off": [0.0], "on": [0.1]}, n_initial=32)
>>> [(e.condition, e.kind, e.epoch_before, e.epoch_after) for e in found.events]
[('on', 'saddle_node', 0, 1), ('off', 'saddle_node', 2, 3)]
"""
from __future__ import annotations

import json
import math
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from fixedpoints.serialization import json_text, to_json, write_text

from .api import SeriesAnalysis, analyze_series, events_csv
from .events import RestructuringEvent
from .input_path import EpochBifurcations, InputPathAnalysis, analyze_input_path
from .outdir import locks_out
from .run_options import RunOptions, run_options_for
from .versions import library_versions

__all__ = ["ConditionEvent", "ConditionsAnalysis", "analyze_conditions", "read_conditions",
           "check_conditions", "write_conditions_report", "CONDITIONS_FILE"]

#: The index file of a conditions run.
CONDITIONS_FILE = "conditions.json"

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,63}$")
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)),
             *(f"lpt{i}" for i in range(1, 10))}


# ------------------------------------------------------------------------------ the inputs
def _name_problem(name: Any) -> Optional[str]:
    if not isinstance(name, str) or not _NAME.match(name):
        return ("is not a safe file name; use letters, digits and _ . + - (up to 64, starting "
                "with a letter, digit or _), e.g. \"cue+\"")
    if name.split(".")[0].lower() in _RESERVED:
        return "is a reserved device name on Windows; pick another name"
    return None


def read_conditions(inputs: Union[str, os.PathLike, Mapping[str, Any]]
                    ) -> Dict[str, Tuple[float, ...]]:
    """Named constant inputs from a JSON file or a dict, validated (sizes are checked later,
    against the model, by :func:`check_conditions`).

    Parameters
    ----------
    inputs : path or mapping
        A ``.json`` file holding an object, or a dict, ``{name: vector}``: each vector a list
        of finite numbers (a single number stands for a one-element list).

    Returns
    -------
    dict
        ``{name: tuple of float}`` in the given order.

    Raises
    ------
    ValueError
        One line naming the file (or ``inputs=``), the condition and the fix.

    Examples
    --------
    >>> read_conditions({"delay": [0], "cue+": [1], "cue-": -1})
    {'delay': (0.0,), 'cue+': (1.0,), 'cue-': (-1.0,)}
    """
    if isinstance(inputs, (str, os.PathLike)):
        where = str(inputs)
        path = Path(inputs)
        if not path.is_file():
            raise ValueError(f"{where}: no such inputs file; pass a JSON file naming the "
                             f"conditions, e.g. {{\"delay\": [0], \"cue+\": [1]}}")
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as error:
            reason = " ".join(str(error).split())
            raise ValueError(f"{where}: is not readable JSON ({reason}); write the conditions "
                             f"as a JSON object, e.g. {{\"delay\": [0], \"cue+\": [1]}}") from None
    elif isinstance(inputs, Mapping):
        where, data = "inputs=", inputs
    else:
        raise TypeError(f"inputs={inputs!r} is not a dict or a JSON file path; pass e.g. "
                        f"{{\"delay\": [0], \"cue+\": [1]}}")
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: holds a {type(data).__name__}, not an object naming the "
                         f"conditions; write e.g. {{\"delay\": [0], \"cue+\": [1]}}")
    if not data:
        raise ValueError(f"{where}: names no condition; give at least one, e.g. "
                         f"{{\"delay\": [0]}}")
    conditions: Dict[str, Tuple[float, ...]] = {}
    folded: Dict[str, str] = {}
    for name, value in data.items():
        problem = _name_problem(name)
        if problem is not None:
            raise ValueError(f"{where}: condition {name!r} {problem}")
        if name.lower() in folded:
            raise ValueError(f"{where}: conditions {folded[name.lower()]!r} and {name!r} differ "
                             f"only in case (their directories would collide); rename one")
        folded[name.lower()] = name
        values = [value] if isinstance(value, (int, float)) and not isinstance(value, bool) \
            else value
        try:
            if isinstance(values, (str, bytes, Mapping)) or not len(values):
                raise TypeError
            vector = tuple(float(v) for v in values if not isinstance(v, bool)
                           and not isinstance(v, (list, tuple, dict, str)))
            if len(vector) != len(values):
                raise TypeError
        except (TypeError, ValueError):
            raise ValueError(f"{where}: condition {name!r} is {json.dumps(value)[:60]}, not a "
                             f"list of numbers; give a vector such as [0, 1]") from None
        if not all(math.isfinite(v) for v in vector):
            raise ValueError(f"{where}: condition {name!r} holds NaN or inf; give finite numbers")
        conditions[name] = vector
    return conditions


def check_conditions(conditions: Mapping[str, Sequence[float]], n_inputs: int,
                     where: str = "inputs=") -> None:
    """Raise a one-line ValueError when a condition's vector does not fit the model's inputs.

    Parameters
    ----------
    conditions : mapping name -> vector
    n_inputs : int
        The model's input size.
    where : str
        The file (or ``inputs=``) named in the message.
    """
    if n_inputs == 0:
        raise ValueError(f"{where}: the model takes no input, so input conditions cannot "
                         f"change it; analyze it without --inputs / inputs=")
    for name, vector in conditions.items():
        if len(vector) != n_inputs:
            example = json.dumps({name: [0] * n_inputs})
            raise ValueError(f"{where}: condition {name!r} has {len(vector)} value(s) but the "
                             f"model takes {n_inputs} input(s); give each condition "
                             f"{n_inputs} number(s), e.g. {example}")


# ------------------------------------------------------------------------------ the result
@dataclass(frozen=True)
class ConditionEvent:
    """A restructuring event at one input condition.

    The event's attributes (``kind``, ``epoch``, ``epoch_before``, ``points`` ...) read through.

    Attributes
    ----------
    condition : str
    event : RestructuringEvent
    """

    condition: str
    event: RestructuringEvent

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "event":  # copy/pickle probe before __init__
            raise AttributeError(name)
        return getattr(self.event, name)

    def to_dict(self) -> Dict[str, Any]:
        return {"condition": self.condition, **self.event.to_dict()}


@dataclass(frozen=True)
class ConditionsAnalysis:
    """One :class:`analysis.api.SeriesAnalysis` per named input condition.

    Attributes
    ----------
    conditions : dict name -> SeriesAnalysis
        In the given order; each is exactly the single-condition analysis at its input.
    inputs : dict name -> tuple of float
    input_path : InputPathAnalysis, optional
        Folds and Hopf points per epoch along ``input_path`` (independent of the conditions).
    options : dict
        Run facts (source, seconds).
    """

    conditions: Dict[str, SeriesAnalysis]
    inputs: Dict[str, Tuple[float, ...]]
    input_path: Optional[InputPathAnalysis] = None
    options: Dict[str, Any] = field(default_factory=dict)

    @property
    def names(self) -> List[str]:
        return list(self.conditions)

    @property
    def events(self) -> Tuple[ConditionEvent, ...]:
        """All events, each with its condition, by epoch (then in condition order)."""
        order = {name: k for k, name in enumerate(self.conditions)}
        merged = [ConditionEvent(name, e) for name, a in self.conditions.items()
                  for e in a.events]
        merged.sort(key=lambda c: (c.event.epoch, c.event.epoch_before, order[c.condition]))
        return tuple(merged)

    def __getitem__(self, name: str) -> SeriesAnalysis:
        try:
            return self.conditions[name]
        except KeyError:
            raise KeyError(f"no condition {name!r}; the conditions are {self.names}") from None

    def __len__(self) -> int:
        return len(self.conditions)

    def __repr__(self) -> str:
        parts = [f"{name}: {len(a)} epochs, {len(a.events)} events"
                 for name, a in self.conditions.items()]
        return f"ConditionsAnalysis({'; '.join(parts)})"

    def summary(self) -> Dict[str, Any]:
        """JSON-ready index (what ``conditions.json`` holds)."""
        rows = []
        for name, a in self.conditions.items():
            kinds: Dict[str, int] = {}
            for e in a.events:
                kinds[e.kind] = kinds.get(e.kind, 0) + 1
            first = a.first_event()
            rows.append({"name": name, "input": list(self.inputs[name]),
                         "directory": f"conditions/{name}", "n_epochs": len(a.results),
                         "epochs": a.epochs, "n_events": len(a.events), "event_counts": kinds,
                         "first_event": None if first is None else first.to_dict(),
                         "drop_epoch": a.drop_epoch, "n_failed": len(a.failed),
                         "settings_hash": a.settings.hash()})
        return to_json({"conditions": rows, "n_events": sum(r["n_events"] for r in rows),
                        "input_path": None if self.input_path is None else {
                            **self.input_path.summary(), "directory": "bifurcation"},
                        "options": self.options, "versions": library_versions()})

    def to_dir(self, out: Union[str, os.PathLike]) -> Path:
        """Write each condition to ``out/conditions/<name>`` (:meth:`SeriesAnalysis.to_dir`),
        the merged ``events.csv`` / ``events.json`` and ``conditions.json`` to ``out``."""
        out = Path(out)
        for name, a in self.conditions.items():
            a.to_dir(out / "conditions" / name)
        return self._write_index(out)

    def _write_index(self, out: Path) -> Path:
        """The merged ``events.csv`` / ``events.json`` and ``conditions.json`` in ``out``."""
        events = self.events
        write_text(out / "events.csv", events_csv([e.event for e in events],
                                                  conditions=[e.condition for e in events]))
        write_text(out / "events.json", json_text([e.to_dict() for e in events]))
        write_text(out / CONDITIONS_FILE, json_text(self.summary()))
        return out

    @classmethod
    def from_dir(cls, out: Union[str, os.PathLike], *, mixed: str = "error"
                 ) -> "ConditionsAnalysis":
        """Read a directory written by :meth:`to_dir` (``mixed`` as
        :meth:`SeriesAnalysis.from_dir`)."""
        out = Path(out)
        index = out / CONDITIONS_FILE
        if not index.is_file():
            raise FileNotFoundError(f"{index} is missing; {out} was not written by "
                                    f"analyze_conditions (re-run it with "
                                    f"run={{'out': {str(out)!r}}})")
        data = json.loads(index.read_text())
        conditions = {row["name"]: SeriesAnalysis.from_dir(out / row["directory"], mixed=mixed)
                      for row in data["conditions"]}
        inputs = {row["name"]: tuple(float(v) for v in row["input"])
                  for row in data["conditions"]}
        path = data.get("input_path")
        found = None if path is None else InputPathAnalysis(
            path=path["path"], settings_hash=path.get("settings_hash", ""),
            epochs=tuple(EpochBifurcations(epoch=int(e["epoch"]), source=e["source"],
                                           bifurcations=tuple(e["bifurcations"]),
                                           n_branches=int(e["n_branches"]), png=e.get("png"))
                         for e in path["per_epoch"]))
        return cls(conditions=conditions, inputs=inputs, input_path=found,
                   options=data.get("options", {}))


# ------------------------------------------------------------------------------ the run
def _probe_inputs(source: Any, model: Any, run: RunOptions,
                  kwargs: Mapping[str, Any]) -> Optional[int]:
    """The first checkpoint's input size (None when it cannot be loaded: the run reports it)."""
    from checkpoints import CheckpointError

    from .sources import as_dynamics, resolve_series

    items, _, _ = resolve_series(source, model, strict=False, load_options=run.load_options)
    settings = kwargs.get("settings")
    time_form = kwargs.get("time", getattr(settings, "time", None))
    for item in items[:3]:
        try:
            return int(as_dynamics(item.source.load(), time=time_form).n_inputs)
        except CheckpointError:
            continue
    return None


@locks_out
def analyze_conditions(path_or_series: Any, inputs: Union[str, os.PathLike, Mapping[str, Any]],
                       model: Any = None, *, run: Union[RunOptions, Dict[str, Any], None] = None,
                       input_path: Optional[str] = None, **kwargs: Any) -> ConditionsAnalysis:
    """Analyze a checkpoint series at each of several named constant inputs.

    Parameters
    ----------
    path_or_series : path, CheckpointSeries, or sequence of (epoch, model)
        As :func:`analysis.analyze_series` (a one-pass iterator is read into a list once).
    inputs : path or mapping
        ``{name: vector}`` or a JSON file holding that object (:func:`read_conditions`); each
        vector has the model's input size.
    model : optional
        How to rebuild models from files (as :func:`analysis.analyze_series`).
    run : RunOptions or dict, optional
        As :func:`analysis.analyze_series`; with ``out``, write ``out/conditions/<name>/`` (a
        single-condition layout each), the merged ``events.csv`` / ``events.json`` and
        ``conditions.json``; re-running resumes.
    input_path : str, optional
        ``"A:B:n"``: also continue each checkpoint's fixed points along that path
        (:func:`analysis.input_path.analyze_input_path`, into ``out/bifurcation/``).
    **kwargs
        Everything else :func:`analysis.analyze_series` takes (``settings``, ``events``,
        ``drop``, ``log``, :class:`EpochSettings` fields such as ``n_initial``), except
        ``input`` (each condition sets it).

    Returns
    -------
    ConditionsAnalysis

    Raises
    ------
    ValueError
        A bad condition (one line naming the file or ``inputs=``, the condition and the fix),
        ``input=`` given as well, or an ``out`` that holds a single-input analysis.
    """
    started = time.perf_counter()
    where = str(inputs) if isinstance(inputs, (str, os.PathLike)) else "inputs="
    conditions = read_conditions(inputs)
    if "input" in kwargs:
        raise ValueError(f"input={kwargs['input']!r} and inputs= were both given; each "
                         f"condition of inputs= sets the input, so leave input= out")
    from checkpoints import CheckpointSeries

    if not isinstance(path_or_series, (str, os.PathLike, CheckpointSeries, list, tuple)):
        path_or_series = list(path_or_series)  # read once, analyzed once per condition
    run_options = run_options_for("analyze_conditions", run, kwargs)
    n_inputs = _probe_inputs(path_or_series, model, run_options, kwargs)
    if n_inputs is not None:
        check_conditions(conditions, n_inputs, where)
    out_dir = run_options.out
    if out_dir is not None and (out_dir / "summary.json").is_file():
        raise ValueError(f"{out_dir}: holds a single-input analysis (summary.json), and its "
                         f"events.csv would be overwritten by the conditions' merged one; pass "
                         f"another out for the conditions, or remove that analysis first")
    found_path = None
    if input_path is not None:
        from fixedpoints.continuation import parse_input_path
        if n_inputs is not None:
            parse_input_path(input_path, n_inputs)  # a bad path fails before the long part
    results: Dict[str, SeriesAnalysis] = {}
    for name, vector in conditions.items():
        sub = None if out_dir is None else out_dir / "conditions" / name
        results[name] = analyze_series(path_or_series, model, input=vector,
                                       run=RunOptions.make(run_options, out=sub), **kwargs)
    if input_path is not None:
        from .epoch import EpochSettings

        settings_fields = set(EpochSettings.__dataclass_fields__) | {"settings"}
        options = {k: v for k, v in kwargs.items() if k in settings_fields}
        where_path = None if out_dir is None else out_dir / "bifurcation"
        found_path = analyze_input_path(path_or_series, input_path, model,
                                        run=RunOptions.make(run_options, out=where_path),
                                        **options)
    first = next(iter(results.values()))
    options = {"source": first.options.get("source"), "where": where,
               "seconds": time.perf_counter() - started}
    result = ConditionsAnalysis(conditions=results, inputs=conditions, input_path=found_path,
                                options=options)
    if out_dir is not None:  # each condition's analyze_series wrote its own directory
        result._write_index(Path(out_dir))
    return result


def write_conditions_report(analysis: ConditionsAnalysis, out: Union[str, os.PathLike], *,
                            title: Optional[str] = None, source: Optional[str] = None,
                            **report: Any) -> Path:
    """Each condition's report (:func:`analysis.write_report` into ``out/conditions/<name>``)
    and ``out/report.html``: an index linking them, with each condition's timeline, the merged
    events table (a condition column) and, with an input path, its folds and Hopf points.

    Parameters
    ----------
    analysis : ConditionsAnalysis
    out : path
    title, source : str, optional
    **report
        Passed to :func:`analysis.write_report` (``models``, ``jobs``, ``device``, ...).

    Returns
    -------
    Path
        The index ``report.html``.
    """
    from .events import describe_event
    from .html import write_index_html
    from .report import write_report

    out = Path(out)
    title = title or "ghostscope report"
    rows = []
    for name, a in analysis.conditions.items():
        sub = out / "conditions" / name
        page = write_report(a, sub, title=f"{title} · {name}", source=source, **report)
        vector = ", ".join(f"{v:g}" for v in analysis.inputs[name])
        rows.append({"name": name, "input": f"({vector})", "href": f"conditions/{name}/"
                     f"{page.name}", "timeline": sub / "timeline.png", "epochs": len(a),
                     "events": len(a.events), "failed": len(a.failed)})
    events = [{**e.to_dict(), "sentence": describe_event(e.event, analysis[e.condition]
                                                         .drop_epoch)}
              for e in analysis.events]
    path_rows = []
    path_name = None
    if analysis.input_path is not None:
        path_name = analysis.input_path.path
        for e in analysis.input_path.epochs:
            text = "; ".join(f"{b['kind']} at s = {float(b['s']):.6g}, input ("
                             + ", ".join(f"{v:.6g}" for v in b["input"]) + ")"
                             for b in e.bifurcations) or "none"
            path_rows.append({"epoch": e.epoch, "text": text,
                              "href": None if e.png is None else f"bifurcation/{e.png}"})
    epochs = sorted({ep for a in analysis.conditions.values() for ep in a.epochs})
    span = f"epochs {epochs[0]}–{epochs[-1]}" if epochs else "no epochs"
    facts = [("conditions", str(len(analysis))), ("epochs analyzed", str(len(epochs))),
             ("events", str(len(events)))]
    if analysis.input_path is not None:
        s = analysis.input_path.summary()
        facts.append((f"folds / Hopf along {path_name}", f"{s['n_folds']} / {s['n_hopf']}"))
    return write_index_html(out / "report.html", title=title,
                            subtitle=f"{source or ''} · {span}".strip(" ·"), facts=facts,
                            conditions=rows, events=events, input_path=path_name,
                            path_rows=path_rows)
