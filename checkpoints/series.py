"""An ordered, lazily loaded series of checkpoints from one directory.

Files with the suffixes ``.pt .pth .ckpt .bin .safetensors .npz`` are ordered by the epoch or
step in their names (natural numbers: ``model_epoch2.pt`` before ``model_epoch10.pt``), or, for
names without a number, by the ``epoch`` / ``step`` / ``global_step`` stored inside. Files with
no number anywhere (``model_final.pt``) go last and are marked (``entry.numbered`` is False).
Nothing is loaded until a checkpoint is asked for (except the peek at files whose names carry
no number).

Files that hold no model by design (an optimizer state, a ``final.npz`` of training
histories) are recognized, left out of the series and listed in
:attr:`CheckpointSeries.skipped`, never reported as problems.

Bad files do not stop a series: iterating skips them and records a :class:`CheckpointError`
in :attr:`CheckpointSeries.problems`, one per file (``strict=True`` raises at the first).
Indexing (``series[i]``) always raises for a bad file.
"""
from __future__ import annotations

import fnmatch
import logging
import os
import re
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from .errors import CheckpointError, NotACheckpointError
from .formats import peek_non_checkpoint
from .loading import (CHECKPOINT_SUFFIXES, Checkpoint, find_config, load_checkpoint,
                      parse_checkpoint_name, read_config, read_payload, read_stored_index,
                      unwrap_payload)
from .runs import RunLayout, find_run

__all__ = ["SeriesEntry", "CheckpointSeries"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SeriesEntry:
    """One file of a series, before loading.

    Attributes
    ----------
    path : str
    epoch : int or None
        The series' position label: the epoch in the name, else the bare number in the name
        (``ckpt_000100.pt`` -> 100), else the step, else the stored epoch / step; None when the
        file has no number at all.
    step : int or None
        The step, when the name (or the file) gives one besides the epoch.
    numbered : bool
        False for files without any number (they go last).
    source : str
        Where the number came from: ``"name"``, ``"stored"`` or ``"none"``.
    """

    path: str
    epoch: Optional[int]
    step: Optional[int]
    numbered: bool
    source: str

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    @property
    def order_key(self) -> Tuple:
        return (not self.numbered, self.epoch if self.epoch is not None else -1,
                self.step if self.step is not None else -1, _natural_key(self.name))


def _natural_key(name: str) -> Tuple:
    return tuple(int(part) if part.isdigit() else part.lower()
                 for part in re.split(r"(\d+)", name))


def _is_checkpoint_file(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(CHECKPOINT_SUFFIXES)


def _entry_from_name(path: str) -> SeriesEntry:
    parsed = parse_checkpoint_name(path)
    if parsed.epoch is not None:
        return SeriesEntry(path, parsed.epoch, parsed.step, True, "name")
    if parsed.number is not None:
        return SeriesEntry(path, parsed.number, None, True, "name")
    if parsed.step is not None:
        return SeriesEntry(path, parsed.step, parsed.step, True, "name")
    return SeriesEntry(path, None, None, False, "none")


class CheckpointSeries(Sequence):
    """An ordered, lazily loaded sequence of checkpoints.

    Build one with :meth:`from_dir` (or :meth:`from_files`). ``len(series)`` counts files;
    ``series[i]`` loads the i-th (a :class:`~checkpoints.loading.Checkpoint`, or raises
    :class:`CheckpointError`); iterating yields the loadable checkpoints in order and records
    the others in :attr:`problems`.

    Attributes
    ----------
    entries : tuple of SeriesEntry
        The files in order.
    directory : str or None
    config : dict or None
        The model config found beside the files (``config.json`` / ``model.json``), normalized.
    strict : bool
        Raise at the first bad file while iterating.
    """

    def __init__(self, entries: Sequence[SeriesEntry], *, directory: Optional[str] = None,
                 architecture: Optional[str] = None, prefix: Optional[str] = None,
                 model_factory: Union[str, Callable[..., nn.Module], None] = None,
                 trust_pickle: bool = False, strict: bool = False,
                 config: Optional[Dict[str, Any]] = None, dtype: torch.dtype = torch.float64,
                 convention: Optional[str] = None):
        self.entries = tuple(sorted(entries, key=lambda e: e.order_key))
        self.directory = directory
        self.architecture = architecture
        self.prefix = prefix
        self.model_factory = model_factory
        self.trust_pickle = bool(trust_pickle)
        self.strict = bool(strict)
        self.config = config
        self.dtype = dtype
        self.convention = convention
        self.run: Optional[RunLayout] = None
        self._skipped: Dict[str, str] = {}
        self._problems: Dict[str, CheckpointError] = {}
        self._reference: Optional[Tuple[SeriesEntry, str, Dict[str, Tuple[int, ...]]]] = None
        _check_duplicates(self.entries, directory)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dir(cls, path: Union[str, os.PathLike], pattern: Optional[str] = None,
                 architecture: Optional[str] = None, prefix: Optional[str] = None,
                 model_factory: Union[str, Callable[..., nn.Module], None] = None,
                 trust_pickle: bool = False, strict: bool = False, config=None,
                 dtype: torch.dtype = torch.float64,
                 convention: Optional[str] = None) -> "CheckpointSeries":
        """List the checkpoints of a directory, in epoch order, without loading them.

        Parameters
        ----------
        path : str or PathLike
            The directory (not searched recursively).
        pattern : str, optional
            Shell-style pattern on file names, e.g. ``"model_epoch*.pt"``.
        architecture, prefix, model_factory, trust_pickle
            Passed to :func:`~checkpoints.loading.load_checkpoint` for every file.
        strict : bool, default False
            Raise at the first bad file instead of recording it.
        config : dict, str, None or False
            Model config; None looks for ``config.json`` / ``model.json`` in the directory.
        dtype : torch.dtype, default torch.float64
        convention : {"row", "column"}, optional
            For leaky models whose weights cannot tell (see
            :func:`~checkpoints.loading.load_checkpoint`).

        Returns
        -------
        CheckpointSeries

        Raises
        ------
        CheckpointError
            Missing directory, no checkpoint files, nothing matching ``pattern``, duplicate
            epochs, an unreadable config file (and, with ``strict``, an unreadable file whose
            name has no number).
        """
        directory = os.fspath(path)
        if not os.path.exists(directory):
            raise CheckpointError(directory, "directory does not exist", "check the path")
        if not os.path.isdir(directory):
            raise CheckpointError(directory, "is a file, not a directory",
                                  "pass its directory, or use load_checkpoint() for one file")
        names = sorted(os.listdir(directory), key=_natural_key)
        # a dangling symbolic link stays in the list: loading it reports the broken link
        found = [n for n in names if _is_checkpoint_file(n)
                 and (os.path.isfile(os.path.join(directory, n))
                      or os.path.islink(os.path.join(directory, n)))]
        if not found:
            raise CheckpointError(directory, "no checkpoint files "
                                  f"({' '.join(CHECKPOINT_SUFFIXES)}) in this directory",
                                  _empty_fix(directory, names))
        if pattern is not None:
            matching = [n for n in found if fnmatch.fnmatchcase(n, pattern)]
            if not matching:
                raise CheckpointError(directory, f"no checkpoint file matches pattern {pattern!r}",
                                      f"use a pattern matching some of {found[:10]}")
            found = matching
        resolved = _directory_config(directory, config)
        series = cls([], directory=directory, architecture=architecture, prefix=prefix,
                     model_factory=model_factory, trust_pickle=trust_pickle, strict=strict,
                     config=resolved, dtype=dtype, convention=convention)
        kept = []
        for name in found:
            reason = peek_non_checkpoint(os.path.join(directory, name), trust_pickle)
            if reason is None:
                kept.append(name)
            else:
                series._skipped[os.path.join(directory, name)] = reason
        if not kept:
            raise CheckpointError(directory, f"holds no model checkpoints, only {found[:5]} "
                                  f"({next(iter(series._skipped.values()))})",
                                  _empty_fix(directory, names))
        entries = [series._make_entry(os.path.join(directory, n)) for n in kept]
        entries = [e for e in entries if e.path not in series._skipped]
        entries = series._drop_stored_copies(entries)
        series.entries = tuple(sorted(entries, key=lambda e: e.order_key))
        _check_duplicates(series.entries, directory)
        return series

    def _drop_stored_copies(self, entries: List[SeriesEntry]) -> List[SeriesEntry]:
        """Leave out files without a number in their name whose stored epoch and step repeat a
        named file's (Lightning's ``last.ckpt`` beside ``epoch=2-step=12.ckpt``)."""
        named = {(e.epoch, e.step): e for e in entries if e.source == "name"}
        kept = []
        for entry in entries:
            twin = named.get((entry.epoch, entry.step)) if entry.source == "stored" else None
            if twin is not None:
                self._skipped[entry.path] = (f"a copy of {twin.name} (the same stored epoch "
                                             f"{entry.epoch} and step {entry.step})")
            else:
                kept.append(entry)
        return kept

    @classmethod
    def from_run(cls, path: Union[str, os.PathLike], run: Optional[str] = None,
                 **options) -> "CheckpointSeries":
        """The series of a run directory as training code leaves it.

        ``path`` may be the checkpoint folder itself or a run's root above it (the ghost
        paper's ``seed_0/`` with ``models/``, Lightning's ``lightning_logs/`` with
        ``version_0/checkpoints/``); see :func:`checkpoints.runs.find_run`. ``run`` picks a
        sub-folder when several runs lie below. Other options as :meth:`from_dir`; the
        layout found is kept in :attr:`run`.

        Raises
        ------
        CheckpointError
            As :meth:`from_dir`, and when several runs lie below ``path`` (the message lists
            them).
        """
        layout = find_run(path, run)
        series = cls.from_dir(layout.checkpoint_dir, **options)
        series.run = layout
        return series

    @classmethod
    def from_files(cls, paths: Sequence[Union[str, os.PathLike]], **options) -> "CheckpointSeries":
        """A series of explicit files (ordered like :meth:`from_dir`); options as there."""
        if not paths:
            raise CheckpointError(None, "no checkpoint files given", "pass at least one path")
        config = options.pop("config", None)
        first_dir = os.path.dirname(os.path.abspath(os.fspath(paths[0])))
        resolved = _directory_config(first_dir, config)
        series = cls([], directory=None, config=resolved, **options)
        entries = [series._make_entry(os.fspath(p)) for p in paths]
        series.entries = tuple(sorted(entries, key=lambda e: e.order_key))
        _check_duplicates(series.entries, None)
        return series

    def subset(self, entries: Sequence[SeriesEntry]) -> "CheckpointSeries":
        """A series of some of these entries with the same loading options (and run layout)."""
        sub = CheckpointSeries(entries, directory=self.directory, architecture=self.architecture,
                               prefix=self.prefix, model_factory=self.model_factory,
                               trust_pickle=self.trust_pickle, strict=self.strict,
                               config=self.config, dtype=self.dtype, convention=self.convention)
        sub.run = self.run
        sub._skipped = dict(self._skipped)
        sub._reference = self._reference
        return sub

    def _make_entry(self, path: str) -> SeriesEntry:
        entry = _entry_from_name(path)
        if entry.numbered:
            return entry
        try:
            payload = read_payload(path, trust_pickle=self.trust_pickle)
            _, metadata, _ = unwrap_payload(payload, path)
        except NotACheckpointError as error:
            self._record(error)
            return entry
        except CheckpointError as error:
            if self.strict:
                raise
            self._record(error)
            return entry
        epoch, step = read_stored_index(metadata)
        if epoch is None and step is None:
            return entry
        return SeriesEntry(path, epoch if epoch is not None else step, step, True, "stored")

    # ------------------------------------------------------------------ sequence protocol
    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.subset(self.entries[index])
        return self.load(index)

    def __iter__(self) -> Iterator[Checkpoint]:
        for i in range(len(self)):
            try:
                yield self.load(i)
            except NotACheckpointError:
                continue
            except CheckpointError as error:
                if self.strict:
                    raise
                logger.warning("skipping %s", error)

    def __repr__(self) -> str:
        where = self.directory or "files"
        return (f"CheckpointSeries({where!r}, {len(self)} checkpoints, epochs "
                f"{_span(self.epochs)}, {len(self._problems)} problem(s) so far)")

    # ------------------------------------------------------------------ views
    @property
    def epochs(self) -> List[Optional[int]]:
        """Epoch label of each file in order (None for files without a number)."""
        return [e.epoch for e in self.entries]

    @property
    def steps(self) -> List[Optional[int]]:
        """Step of each file, where the name or the file gives one."""
        return [e.step for e in self.entries]

    @property
    def paths(self) -> List[str]:
        return [e.path for e in self.entries]

    @property
    def unnumbered(self) -> List[str]:
        """Paths of the files without an epoch or step (they come last)."""
        return [e.path for e in self.entries if not e.numbered]

    @property
    def problems(self) -> List[CheckpointError]:
        """The bad files found so far, one CheckpointError each, in series order."""
        # Optional keys: an error without a path sorts last
        order: Dict[Optional[str], int] = {e.path: i for i, e in enumerate(self.entries)}
        return sorted(self._problems.values(), key=lambda err: order.get(err.path, len(order)))

    def index_of(self, epoch: int) -> int:
        """Position of the (first) checkpoint with this epoch label."""
        for i, entry in enumerate(self.entries):
            if entry.epoch == epoch:
                return i
        raise KeyError(f"no checkpoint with epoch {epoch}; epochs are {_span(self.epochs)}")

    # ------------------------------------------------------------------ loading
    def load(self, index: int) -> Checkpoint:
        """Load the checkpoint at ``index`` (raises CheckpointError and records it if bad)."""
        entry = self.entries[index]
        try:
            checkpoint = load_checkpoint(
                entry.path, architecture=self.architecture, prefix=self.prefix,
                trust_pickle=self.trust_pickle,
                config=self.config if self.config is not None else False,
                model_factory=self.model_factory, dtype=self.dtype,
                epoch=entry.epoch if entry.numbered else None, step=entry.step,
                convention=self.convention)
            if not entry.numbered:
                checkpoint = _replace(checkpoint, numbered=False)
            self._check_consistent(entry, checkpoint)
        except CheckpointError as error:
            self._record(error)
            raise
        self._problems.pop(entry.path, None)
        return checkpoint

    def load_model(self, index: int) -> nn.Module:
        """The model of the checkpoint at ``index``."""
        return self.load(index).model

    def validate(self) -> List[CheckpointError]:
        """Load every file once (models are not kept) and return :attr:`problems`."""
        for i in range(len(self)):
            try:
                self.load(i)
            except NotACheckpointError:
                continue
            except CheckpointError:
                if self.strict:
                    raise
        return self.problems

    @property
    def skipped(self) -> List[Tuple[str, str]]:
        """``(path, reason)`` of the files that hold no model by design (left out or found
        while loading): optimizer states, training histories."""
        return sorted(self._skipped.items())

    def _record(self, error: CheckpointError) -> None:
        if isinstance(error, NotACheckpointError) and error.path is not None:
            self._skipped[error.path] = error.reason
            return
        if self.strict:
            return
        if error.path is not None:
            self._problems[error.path] = error

    def _check_consistent(self, entry: SeriesEntry, checkpoint: Checkpoint) -> None:
        shapes = checkpoint.parameter_shapes()
        if self._reference is None:
            self._reference = (entry, checkpoint.architecture, shapes)
            return
        ref_entry, ref_arch, ref_shapes = self._reference
        if ref_entry.path == entry.path:
            return
        label = f"epoch {ref_entry.epoch} ({ref_entry.name})"
        if checkpoint.architecture != ref_arch:
            raise CheckpointError(entry.path, f"architecture {checkpoint.architecture!r} differs "
                                  f"from {ref_arch!r} of {label}",
                                  "a series holds one model: split the directory or pass pattern=")
        changes = []
        for key in sorted(set(shapes) | set(ref_shapes)):
            before, after = ref_shapes.get(key), shapes.get(key)
            if before != after:
                changes.append(f"{key} {before} -> {after}")
        if changes:
            raise CheckpointError(entry.path, f"parameter shapes changed from {label}: "
                                  + "; ".join(changes[:6]),
                                  "a series holds one model size: split the directory or pass "
                                  "pattern= to select one run")


def _replace(checkpoint: Checkpoint, **changes) -> Checkpoint:
    from dataclasses import replace
    return replace(checkpoint, **changes)


def _span(epochs: List[Optional[int]]) -> str:
    numbers = [e for e in epochs if e is not None]
    if not numbers:
        return "[]"
    text = f"{numbers[0]}..{numbers[-1]}" if len(numbers) > 1 else f"{numbers[0]}"
    unnumbered = len(epochs) - len(numbers)
    return text + (f" + {unnumbered} unnumbered" if unnumbered else "")


def _check_duplicates(entries: Sequence[SeriesEntry], directory: Optional[str]) -> None:
    seen: Dict[Tuple, SeriesEntry] = {}
    for entry in entries:
        if not entry.numbered:
            continue
        key = (entry.epoch, entry.step)
        if key in seen:
            step = f", step {entry.step}" if entry.step is not None else ""
            what = f"epoch {entry.epoch}{step}"
            raise CheckpointError(directory or entry.path,
                                  f"duplicate {what}: {seen[key].name} and {entry.name}",
                                  "keep one of them, or pass pattern= to select one family of "
                                  "files (e.g. pattern='model_epoch*.pt')")
        seen[key] = entry


def _directory_config(directory: str, config) -> Optional[Dict[str, Any]]:
    if config is False:
        return None
    if config is None:
        found = find_config(directory)
        return read_config(found) if found else None
    if isinstance(config, (str, os.PathLike)):
        return read_config(config)
    from .config import _normalize_config
    if isinstance(config, dict) and {"flat", "model", "path"} <= set(config):
        return dict(config)
    return _normalize_config(config, None)


def _empty_fix(directory: str, names: List[str]) -> str:
    subdirs = []
    for name in names:
        sub = os.path.join(directory, name)
        if os.path.isdir(sub):
            try:
                if any(_is_checkpoint_file(n) for n in os.listdir(sub)):
                    subdirs.append(sub)
            except OSError:
                continue
    if subdirs:
        return f"checkpoints are in sub-directories: pass one of {subdirs[:5]}"
    shown = names[:10]
    return (f"point at the directory holding the checkpoint files (this one has {shown}"
            f"{' …' if len(names) > 10 else ''})")
