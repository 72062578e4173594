"""How a series analysis runs: workers, device, output directory, failures, log reading.

:class:`RunOptions` holds everything :func:`analysis.api.analyze_series` needs that is not a
property of one epoch's analysis (those are :class:`analysis.epoch.EpochSettings`) or of the
restructuring rules (:class:`analysis.events.EventOptions`, :class:`analysis.learning.DropOptions`).
Changing a run option never changes an epoch's result, so none of them enters the settings hash
that decides whether an epoch in OUT can be reused (``force`` aside, which ignores that hash).

Like the other option objects it is frozen and validated on construction, and built one way:
:meth:`RunOptions.make` takes ``None``, an instance or a dict of its fields.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, Optional, Union

from fixedpoints.options import resolve_options

__all__ = ["RunOptions", "LOAD_OPTIONS", "RUN_OPTION_NAMES", "run_options_for"]

#: Keys ``RunOptions.load_options`` may hold (keywords of ``CheckpointSeries.from_dir``).
LOAD_OPTIONS = ("pattern", "prefix", "config", "trust_pickle", "architecture", "model_factory",
                "convention", "dtype")


@dataclass(frozen=True)
class RunOptions:
    """How :func:`analysis.api.analyze_series` runs (none of it changes an epoch's result).

    Attributes
    ----------
    jobs : int, default 1
        Worker processes (``analysis.execution.run_tasks``); -1 for all cores.
    scheduler : str or distributed.Client, optional
        A Dask scheduler address (``"tcp://host:8786"``) or client to run the per-epoch work on;
        ``jobs`` is then ignored.
    device : str, default "cpu"
        Torch device for the numerics (``"cpu"``, ``"cuda"``, ``"cuda:1"``).
    progress : bool, default False
        A progress bar on a terminal (log lines otherwise).
    strict : bool, default False
        Raise at the first checkpoint that fails instead of recording it in ``.failed``.
    out : path, optional
        Write results there as they arrive (``epochs/epoch_XXXX.{json,npz}``) and, at the end,
        ``summary.json``, ``events.csv``, ``events.json``, ``tracks.json``. Epochs already there
        with the same settings, from the same file (its size and modification time,
        :mod:`analysis.reuse`), are loaded instead of recomputed, and continuation searches
        only next to the epochs that changed since the last finished run.
    force : bool, default False
        Recompute even the epochs ``out`` already holds (and continuation from every epoch).
    localize : bool, default False
        Place each event between its two checkpoints by bisection along the interpolated
        weights (state dicts for modules; ``interpolate`` for other models).
    max_states : int, optional
        Analyze models of up to this many states even when the memory estimate
        (:mod:`analysis.resources`) exceeds what is free; by default such a checkpoint fails
        (``TooLarge``, recorded in ``.failed``) before anything is allocated.
    log_column : str, optional
        Column (CSV), key (.npz) or tag (TensorBoard) of the training log holding the loss.
    log_offset : float, optional
        Added to the log's epochs to align them with the checkpoints' (None: -1 for the ghost
        paper's ``final.npz``, whose entry e belongs to ``model_epoch{e-1}``, else 0; see
        :mod:`analysis.training_logs`).
    load_options : dict
        Extra keywords for ``CheckpointSeries.from_dir`` (:data:`LOAD_OPTIONS`: ``pattern``,
        ``prefix``, ``config``, ``trust_pickle``, ``architecture``, ``model_factory``,
        ``convention``, ``dtype``).
    """

    jobs: int = 1
    scheduler: Any = None
    device: str = "cpu"
    progress: bool = False
    strict: bool = False
    out: Optional[Path] = None
    force: bool = False
    localize: bool = False
    max_states: Optional[int] = None
    log_column: Optional[str] = None
    log_offset: Optional[float] = None
    load_options: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (isinstance(self.jobs, bool) or not isinstance(self.jobs, int)
                or not (self.jobs >= 1 or self.jobs == -1)):
            raise ValueError(f"RunOptions.jobs={self.jobs!r} is invalid; pass a number of "
                             f"worker processes >= 1, or -1 for all cores")
        if not isinstance(self.device, str) or not _is_device(self.device):
            raise ValueError(f"RunOptions.device={self.device!r} is invalid; pass a torch "
                             f"device name such as 'cpu', 'cuda' or 'cuda:1'")
        for name in ("progress", "strict", "force", "localize"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"RunOptions.{name}={getattr(self, name)!r} is invalid; pass "
                                 f"True or False")
        if self.out is not None:
            if not isinstance(self.out, (str, os.PathLike)):
                raise ValueError(f"RunOptions.out={self.out!r} is invalid; pass a directory "
                                 f"path or None")
            object.__setattr__(self, "out", Path(self.out))
        if self.max_states is not None and (isinstance(self.max_states, bool)
                                            or not isinstance(self.max_states, int)
                                            or self.max_states < 1):
            raise ValueError(f"RunOptions.max_states={self.max_states!r} is invalid; pass a "
                             f"positive number of states or None")
        if self.log_column is not None and not isinstance(self.log_column, str):
            raise ValueError(f"RunOptions.log_column={self.log_column!r} is invalid; pass the "
                             f"name of the loss column or None")
        if self.log_offset is not None and (isinstance(self.log_offset, bool)
                                            or not isinstance(self.log_offset, (int, float))
                                            or not math.isfinite(self.log_offset)):
            raise ValueError(f"RunOptions.log_offset={self.log_offset!r} is invalid; pass a "
                             f"finite number of epochs or None")
        if not isinstance(self.load_options, dict):
            raise ValueError(f"RunOptions.load_options={self.load_options!r} is invalid; pass "
                             f"a dict with keys among {list(LOAD_OPTIONS)}")
        unknown = sorted(set(self.load_options) - set(LOAD_OPTIONS))
        if unknown:
            raise ValueError(f"RunOptions.load_options has unknown key(s) {unknown}; valid keys "
                             f"are {list(LOAD_OPTIONS)}")
        object.__setattr__(self, "load_options", dict(self.load_options))

    @classmethod
    def make(cls, value: Union["RunOptions", Dict[str, Any], None] = None,
             **overrides: Any) -> "RunOptions":
        """From None, a RunOptions, or a dict of its fields (unknown names raise)."""
        return resolve_options(cls, value, overrides or None, name="run")


#: The field names of :class:`RunOptions`, for messages about misplaced keywords.
RUN_OPTION_NAMES = tuple(f.name for f in fields(RunOptions))


def run_options_for(caller: str, run: Union[RunOptions, Dict[str, Any], None],
                    options: Dict[str, Any]) -> RunOptions:
    """``run`` as a :class:`RunOptions`, after checking that no run option hides in ``options``.

    Parameters
    ----------
    caller : str
        The function's name, for the message (``"analyze_series"``).
    run : RunOptions, dict or None
    options : dict
        The caller's other keywords (epoch settings).

    Raises
    ------
    TypeError
        A run option given among ``options`` (``jobs=2``): the message says it belongs in
        ``run=``.
    """
    misplaced = sorted(set(options) & set(RUN_OPTION_NAMES))
    if misplaced:
        name = misplaced[0]
        raise TypeError(f"{caller}: {misplaced} are run options, not epoch settings; pass "
                        f"run=RunOptions({name}=...) or run={{'{name}': ...}}")
    return RunOptions.make(run)


def _is_device(name: str) -> bool:
    import torch

    try:
        torch.device(name)
    except (RuntimeError, ValueError):
        return False
    return True
