"""Run directories as training code leaves them: where the checkpoint folder is.

A *run* is what a training script writes: the ghost paper's ``seed_0/models/model_epoch{e}.pt``
(with ``final.npz`` and ``model_final.pt`` beside ``models/``), PyTorch Lightning's
``lightning_logs/version_0/checkpoints/epoch=3-step=40.ckpt`` (with ``metrics.csv`` and
TensorBoard event files in ``version_0/``), or this package's own trainer (checkpoints and
``train_log.csv`` in one folder).

:func:`find_run` takes the directory a user points at and returns the one folder that holds the
checkpoints:

1. the directory itself when it holds at least two numbered checkpoint files;
2. else the folders below it (up to four levels, hidden folders and ghostscope's own output
   skipped) that hold numbered checkpoint files, preferring the usual names (``models/``,
   ``checkpoints/``, ``ckpt*/``, ``lightning_logs/version_*/checkpoints/``);
3. else the directory itself when it holds any checkpoint file.

Several runs below (``results_dcdt/seed_0 … seed_9``) are an error that lists them, so the user
picks one. The training log is then looked for in the checkpoint folder, its parent and the run
root (``analysis.training_logs.find_training_log``).
"""
from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from typing import List, Optional, Tuple, Union

from .errors import CheckpointError
from .names import CHECKPOINT_SUFFIXES, parse_checkpoint_name

__all__ = ["RunLayout", "find_run", "find_checkpoint_dirs", "CHECKPOINT_DIR_NAMES"]

CHECKPOINT_DIR_NAMES = ("models", "checkpoints", "checkpoint", "ckpt*", "weights")
_MAX_DEPTH = 4


@dataclass(frozen=True)
class RunLayout:
    """Where a run's checkpoints are.

    Attributes
    ----------
    root : str
        The directory the user gave.
    checkpoint_dir : str
        The folder holding the checkpoint files.
    reason : str
        How it was found (the root itself, or the sub-folder rule that matched).
    """

    root: str
    checkpoint_dir: str
    reason: str

    @property
    def search_dirs(self) -> Tuple[str, ...]:
        """Folders where the training log may lie: the checkpoint folder, its parent, the root."""
        out: List[str] = []
        for d in (self.checkpoint_dir, os.path.dirname(self.checkpoint_dir), self.root):
            if d and d not in out:
                out.append(d)
        return tuple(out)


def _checkpoint_files(directory: str) -> Tuple[int, int]:
    """(numbered, all) counts of checkpoint files directly in ``directory``."""
    try:
        names = os.listdir(directory)
    except OSError:
        return 0, 0
    numbered = total = 0
    for name in names:
        if name.startswith(".") or not name.lower().endswith(CHECKPOINT_SUFFIXES):
            continue
        if not os.path.isfile(os.path.join(directory, name)):
            continue
        total += 1
        if parse_checkpoint_name(name).numbered:
            numbered += 1
    return numbered, total


def _is_ghostscope_output(directory: str) -> bool:
    parent = os.path.dirname(directory)
    return os.path.basename(directory) in ("epochs", "portraits") and os.path.isfile(
        os.path.join(parent, "summary.json"))


def _usual_name(directory: str) -> bool:
    base = os.path.basename(directory).lower()
    return any(fnmatch.fnmatchcase(base, pattern) for pattern in CHECKPOINT_DIR_NAMES)


def find_checkpoint_dirs(root: Union[str, os.PathLike]) -> List[str]:
    """Folders below ``root`` (not ``root`` itself) that hold numbered checkpoint files.

    Up to four levels deep, in natural order; hidden folders and ghostscope's own output
    (``epochs/`` and ``portraits/`` beside a ``summary.json``) are skipped.
    """
    top = os.fspath(root)
    found: List[str] = []
    for current, dirs, _ in os.walk(top):
        depth = os.path.relpath(current, top).count(os.sep) + (current != top)
        dirs[:] = sorted((d for d in dirs if not d.startswith(".")), key=_natural)
        if depth >= _MAX_DEPTH:
            dirs[:] = []
        if current == top or _is_ghostscope_output(current):
            continue
        if _checkpoint_files(current)[0]:
            found.append(current)
    return found


def _natural(name: str):
    import re
    return tuple(int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", name))


def find_run(path: Union[str, os.PathLike], run: Optional[str] = None) -> RunLayout:
    """The checkpoint folder of the run at ``path`` (see the module docstring for the rules).

    Parameters
    ----------
    path : str or PathLike
        A checkpoint folder or a run's root.
    run : str, optional
        A sub-folder of ``path`` (relative) to use when several runs lie below it.

    Returns
    -------
    RunLayout

    Raises
    ------
    CheckpointError
        ``path`` missing or not a directory; no checkpoint files at or below it; several runs
        below it (the message lists them and says how to pick one).
    """
    root = os.fspath(path)
    if not os.path.exists(root):
        raise CheckpointError(root, "directory does not exist", "check the path")
    if not os.path.isdir(root):
        raise CheckpointError(root, "is a file, not a directory",
                              "pass its directory, or use load_checkpoint() for one file")
    if run is not None:
        chosen = os.path.join(root, run)
        if not os.path.isdir(chosen):
            raise CheckpointError(chosen, "is not a directory below the run root",
                                  "pass one of the runs listed by `ghostscope info ROOT`")
        return find_run(chosen)
    numbered, total = _checkpoint_files(root)
    if numbered >= 2:
        return RunLayout(root, root, "checkpoint files in the directory itself")
    below = find_checkpoint_dirs(root)
    usual = [d for d in below if _usual_name(d)]
    candidates = usual or below
    if len(candidates) == 1:
        rel = os.path.relpath(candidates[0], root)
        return RunLayout(root, candidates[0], f"checkpoint folder {rel}{os.sep} below the run root")
    if len(candidates) > 1:
        rels = [os.path.relpath(d, root) for d in candidates]
        shown = ", ".join(rels[:12]) + (f", … {len(rels) - 12} more" if len(rels) > 12 else "")
        example = os.path.join(root, _run_of(rels[0]))
        raise CheckpointError(root, f"holds {len(rels)} runs with checkpoints: {shown}",
                              f"pass one of them, e.g. {example}")
    if total:
        return RunLayout(root, root, "checkpoint files in the directory itself")
    raise CheckpointError(root, "no checkpoint files "
                          f"({' '.join(CHECKPOINT_SUFFIXES)}) in this directory or below it",
                          "point at the directory holding the checkpoint files or the run root "
                          "above it")


def _run_of(rel: str) -> str:
    """The run root of a checkpoint folder path: the part above a usual folder name."""
    parts = rel.split(os.sep)
    while len(parts) > 1 and (_usual_name(parts[-1]) or fnmatch.fnmatchcase(parts[-1],
                                                                             "version_*")):
        parts = parts[:-1]
    return os.sep.join(parts)
