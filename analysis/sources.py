"""Where each epoch's model comes from, and the one way to turn a model into a Dynamics.

A :class:`ModelSource` is what a worker process receives to get one epoch's model: a one-entry
:class:`checkpoints.CheckpointSeries` (the files of a series), a checkpoint file with reader
options, or an in-memory ``nn.Module`` / :class:`fixedpoints.Dynamics`. :func:`resolve_series`
turns what :func:`analysis.analyze_series` accepts (a directory, a file, a series, or pairs of
an epoch and a model) into :class:`SeriesItem` rows; :func:`as_dynamics` binds a model's
constant input and time form.
"""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

__all__ = ["ModelSource", "SeriesItem", "ModuleTemplate", "as_dynamics", "resolve_series",
           "series_items", "sources_by_epoch"]


@dataclass(frozen=True)
class ModelSource:
    """How to get one epoch's model (picklable: it travels to worker processes).

    Exactly one of ``series``, ``path`` and ``obj`` is set.

    Attributes
    ----------
    series : checkpoints.CheckpointSeries, optional
        A one-entry series: its file is read with the series' reader options.
    path : str, optional
        A checkpoint file, read with :func:`checkpoints.load_checkpoint` and ``options``.
    options : dict
        Keyword arguments for ``load_checkpoint`` (architecture, prefix, model_factory, ...).
    obj : object, optional
        An in-memory ``nn.Module`` or :class:`fixedpoints.Dynamics` (used as is).
    """

    series: Any = None
    path: Optional[str] = None
    options: Dict[str, Any] = field(default_factory=dict)
    obj: Any = None

    def __post_init__(self) -> None:
        given = [name for name in ("series", "path", "obj") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"ModelSource got {given or 'none'} of series, path and obj; give "
                             f"exactly one")

    def load(self) -> Any:
        """The model (``nn.Module``) or Dynamics."""
        if self.obj is not None:
            return self.obj
        if self.series is not None:
            return self.series.load(0).model
        from checkpoints import load_checkpoint

        assert self.path is not None  # __post_init__: exactly one of the three is set
        return load_checkpoint(self.path, **self.options).model


@dataclass(frozen=True)
class SeriesItem:
    """One checkpoint of a series to analyze: its epoch, its model's source, and a label."""

    epoch: int
    source: ModelSource
    label: str


class ModuleTemplate:
    """A picklable factory returning copies of a template module (state dicts load into it)."""

    def __init__(self, module: Any) -> None:
        self.module = module
        self.__qualname__ = f"copy of {type(module).__name__}"

    def __call__(self) -> Any:
        return copy.deepcopy(self.module)


def as_dynamics(model: Any, *, input: Optional[Sequence[float]] = None,
                time: Optional[str] = None, device: str = "cpu") -> Any:
    """A :class:`fixedpoints.Dynamics` for a model, with ``input`` bound, on ``device``.

    Parameters
    ----------
    model : torch.nn.Module or fixedpoints.Dynamics
    input : sequence of float, optional
        The constant input (a Dynamics keeps its own when None; a module gets zeros).
    time : {"discrete", "continuous"}, optional
        Which form of a module that has both (default: the module's own).
    device : str, default "cpu"

    Raises
    ------
    TypeError
        For anything else (the message says what to pass).
    """
    import torch

    from fixedpoints import Dynamics, from_module

    u = None if input is None else np.asarray(input, dtype=float)
    if isinstance(model, Dynamics):
        dyn = model if u is None else model.with_input(u)
        if str(dyn.device) != str(torch.device(device)):
            dyn = dyn.to(device)
        return dyn
    if isinstance(model, torch.nn.Module):
        return from_module(model, input=u, time=time, device=device)
    raise TypeError(f"cannot analyze a {type(model).__name__}; pass a torch.nn.Module, a "
                    f"fixedpoints.Dynamics, or a checkpoint file path")


def series_items(series: Any) -> List[SeriesItem]:
    """One item per file of a :class:`checkpoints.CheckpointSeries`, in series order.

    Files without an epoch number come last and are numbered after the others.
    """
    items = []
    last: Optional[int] = None
    for i, entry in enumerate(series.entries):
        epoch = entry.epoch
        if epoch is None:
            epoch = (last + 1) if last is not None else i
        last = epoch if last is None else max(last, epoch)
        items.append(SeriesItem(int(epoch), ModelSource(series=series[i:i + 1]), entry.path))
    return items


def _load_options(model: Any, load_options: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    from checkpoints import ARCHITECTURES

    options = dict(load_options or {})
    if model is None:
        return options
    import torch

    if isinstance(model, str) and model in ARCHITECTURES:
        options.setdefault("architecture", model)
    elif isinstance(model, torch.nn.Module):
        options.setdefault("model_factory", ModuleTemplate(model))
    elif isinstance(model, str) or callable(model):
        options.setdefault("model_factory", model)
    else:
        raise TypeError(f"model={model!r} is not understood; pass an architecture name "
                        f"({sorted(ARCHITECTURES)}), a factory ('pkg.module:build', "
                        f"'file.py:build' or a callable), or an nn.Module template")
    return options


def resolve_series(path_or_series: Any, model: Any = None, *, strict: bool = False,
                   load_options: Optional[Dict[str, Any]] = None
                   ) -> Tuple[List[SeriesItem], Optional[str], Any]:
    """What :func:`analysis.analyze_series` analyzes: items, the directory, and the series.

    Parameters
    ----------
    path_or_series : path, CheckpointSeries, or sequence of (epoch, model or path)
    model : str, callable or nn.Module, optional
        How to rebuild models from files (an architecture name, a factory, or a template).
    strict : bool
        Passed to the series reader.
    load_options : dict, optional
        Extra reader options (``pattern``, ``prefix``, ``config``, ``trust_pickle`` ...).

    Returns
    -------
    items : list of SeriesItem
        In epoch order.
    directory : str or None
        Where the training log is looked up (None for in-memory series).
    series : CheckpointSeries or None
    """
    from checkpoints import CheckpointSeries

    options = _load_options(model, load_options)
    if isinstance(path_or_series, (str, os.PathLike)):
        path = Path(path_or_series)
        if path.is_file():
            series = CheckpointSeries.from_files([path], strict=strict, **options)
        else:
            series = CheckpointSeries.from_run(path, strict=strict, **options)
        return series_items(series), (str(path) if path.is_dir() else str(path.parent)), series
    if isinstance(path_or_series, CheckpointSeries):
        return series_items(path_or_series), path_or_series.directory, path_or_series
    if isinstance(path_or_series, (list, tuple)) or hasattr(path_or_series, "__iter__"):
        items = []
        for k, entry in enumerate(path_or_series):
            if not (isinstance(entry, (tuple, list)) and len(entry) == 2):
                raise TypeError(f"series entry {k} is {type(entry).__name__}; pass pairs "
                                f"(epoch, model) where model is an nn.Module, a Dynamics or a "
                                f"checkpoint path")
            epoch, obj = entry
            if isinstance(obj, (str, os.PathLike)):
                items.append(SeriesItem(int(epoch), ModelSource(path=str(obj), options=options),
                                        str(obj)))
            else:
                label = getattr(obj, "name", None) or type(obj).__name__
                items.append(SeriesItem(int(epoch), ModelSource(obj=obj), str(label)))
        epochs = [i.epoch for i in items]
        if len(set(epochs)) != len(epochs):
            raise ValueError(f"the series has duplicate epochs {sorted(epochs)}; give each model "
                             f"its own epoch")
        items.sort(key=lambda i: i.epoch)
        return items, None, None
    raise TypeError(f"cannot analyze {type(path_or_series).__name__}; pass a directory, a "
                    f"CheckpointSeries, or a sequence of (epoch, model) pairs")


def sources_by_epoch(models: Any, epochs: Sequence[int]) -> Dict[int, ModelSource]:
    """``{epoch: ModelSource}`` from what :func:`analysis.write_report` accepts as ``models``.

    Parameters
    ----------
    models : CheckpointSeries, mapping epoch -> model / ModelSource, callable epoch -> model, or
        None (no models: an empty mapping)
    epochs : sequence of int
        The epochs a callable is asked for.
    """
    from checkpoints import CheckpointSeries

    if models is None:
        return {}
    if isinstance(models, CheckpointSeries):
        return {item.epoch: item.source for item in series_items(models)}
    if isinstance(models, Mapping):
        return {int(e): m if isinstance(m, ModelSource) else ModelSource(obj=m)
                for e, m in models.items()}
    import torch

    if callable(models) and not isinstance(models, torch.nn.Module):
        return {int(e): ModelSource(obj=models(e)) for e in epochs}
    raise TypeError("models must be a CheckpointSeries, a mapping epoch -> model, or a callable "
                    "epoch -> model")
