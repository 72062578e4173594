"""What a re-run over a finished output directory may reuse, and how it knows.

A re-run of ``ghostscope analyze`` into the same ``OUT`` redoes nothing that is still valid:

- an epoch's analysis (``epochs/epoch_XXXX.{json,npz}``) is reused when it was made with the
  same settings (:meth:`analysis.epoch.EpochSettings.hash`) from the same file, whose identity
  is its :func:`file_stamp` (size and modification time, taken before the file is read): a
  checkpoint rewritten or touched since is analyzed again;
- continuation (:mod:`analysis.continuation`) runs only around the epochs whose analysis
  changed since the run that wrote ``summary.json`` (:func:`continuation_start`): an epoch
  whose own result and neighbours are those of a converged earlier pass would find nothing;
- the report's projection, portraits, timeline, GIF and page carry the key of what they were
  made from (:mod:`analysis.report`) and are made again only when it differs;
- the command itself: a finished ``ghostscope analyze`` leaves :data:`RUN_RECORD` in OUT, the
  :func:`run_fingerprint` of its options, the ghostscope code, every file of the checkpoint
  directory (and those beside it, where training logs are looked up), the files its options
  name, and every file of OUT as it left them. The same command finding the same fingerprint
  has nothing to do: it prints what the run printed without loading a model, torch, scipy or
  matplotlib (:func:`finished_run`). Any change to any of those files (an epoch, a portrait, a
  checkpoint touched) takes the ordinary path, which reuses all that is still valid.

:func:`result_key` is the one digest of an epoch's analysis those keys are built on.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Set, Union

import numpy as np

__all__ = ["file_stamp", "source_file", "source_stamp", "result_key", "continuation_record",
           "continuation_start", "run_fingerprint", "finished_run", "record_run", "RUN_RECORD"]

#: In OUT: the fingerprint of the last finished ``ghostscope analyze`` and the lines it printed.
RUN_RECORD = ".ghostscope-run.json"

logger = logging.getLogger(__name__)


def file_stamp(path: Union[str, os.PathLike, None]) -> str:
    """The identity of a file as ``"size:mtime_ns"`` ("" when there is no such file).

    Like ``make``, a file whose size or modification time changed (rewritten, or only
    touched) counts as changed.
    """
    if path is None:
        return ""
    try:
        stat = os.stat(path)
    except OSError:
        return ""
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def source_file(source: Any) -> Optional[str]:
    """The checkpoint file a :class:`analysis.sources.ModelSource` reads (None in memory)."""
    if source is None:
        return None
    series = getattr(source, "series", None)
    if series is not None:
        entries: Sequence[Any] = getattr(series, "entries", ())
        return str(entries[0].path) if len(entries) == 1 else None
    path = getattr(source, "path", None)
    return None if path is None else str(path)


def source_stamp(source: Any) -> str:
    """:func:`file_stamp` of the file a model source reads ("" for in-memory models)."""
    return file_stamp(source_file(source))


def result_key(result: Any) -> str:
    """What identifies one epoch's analysis: its settings hash and a digest of its points."""
    digest = result.settings_hash
    x = np.ascontiguousarray(np.asarray(result.fixed_points.x, dtype=float))
    return digest + ":" + hashlib.sha256(x.tobytes()).hexdigest()[:16]


# ------------------------------------------------------------------------------ continuation
def continuation_record(results: Sequence[Any], report: Dict[str, Any]) -> Dict[str, Any]:
    """The continuation report with what a re-run needs: each final result's key.

    Parameters
    ----------
    results : sequence of EpochAnalysis
        The results after continuation, in epoch order.
    report : dict
        :func:`analysis.continuation.continue_series`'s report (``converged`` included).
    """
    return {**report, "result_keys": {str(int(r.epoch)): _continuation_key(r) for r in results}}


def _continuation_key(result: Any) -> str:
    """An epoch's result and the file it came from (continuation reloads that file)."""
    return f"{result_key(result)}@{getattr(result, 'source_stamp', '')}"


def continuation_start(out: Union[str, os.PathLike, None], results: Sequence[Any],
                       settings_hash: str) -> Optional[List[int]]:
    """Positions of ``results`` that continuation must start from on a re-run into ``out``.

    Continuation converged in the run that wrote ``out/summary.json`` when its last pass found
    nothing new: every epoch's neighbours then seed nothing the epoch lacks. An epoch whose
    result is the one that run ended with, between the same neighbours with the same results,
    would find nothing again; only the epochs next to a change (a result analyzed again, an
    epoch added or left out) are searched.

    Returns
    -------
    list of int or None
        None when there is no converged earlier run to trust (start from every epoch).
    """
    if out is None:
        return None
    summary = Path(out) / "summary.json"
    try:
        data = json.loads(summary.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("settings_hash") != settings_hash:
        return None
    record = (data.get("options") or {}).get("continuation")
    if not isinstance(record, dict) or record.get("converged") is not True or record.get(
            "failed"):
        return None
    keys = record.get("result_keys")
    if not isinstance(keys, dict):
        return None
    before = sorted(int(e) for e in keys)
    position = {e: i for i, e in enumerate(before)}
    epochs = [int(r.epoch) for r in results]
    start: Set[int] = set()
    for k, r in enumerate(results):
        if keys.get(str(epochs[k])) != _continuation_key(r):  # analyzed again (or new): it and both
            start.update(j for j in (k - 1, k, k + 1) if 0 <= j < len(results))
            continue
        i = position[epochs[k]]
        old = (before[i - 1] if i > 0 else None, before[i + 1] if i + 1 < len(before) else None)
        new = (epochs[k - 1] if k > 0 else None, epochs[k + 1] if k + 1 < len(epochs) else None)
        if old != new:  # other neighbours than when it converged
            start.add(k)
    logger.debug("continuation: %d of %d epochs next to a change since %s", len(start),
                 len(results), summary)
    return sorted(start)


# ------------------------------------------------------------------------------ the command
def _listing(root: Path, depth: int, skip: Sequence[str] = ()) -> List[List[str]]:
    """``[relative path, stamp]`` of the regular files under ``root`` (``depth`` levels of
    folders below it; temporaries and the names in ``skip`` left out), sorted."""
    from .outdir import temporary_owner

    rows: List[List[str]] = []

    def walk(folder: Path, level: int) -> None:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            return
        for entry in entries:
            if entry.name in skip or temporary_owner(entry.name) is not None:
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    if level < depth:
                        walk(Path(entry.path), level + 1)
                    continue
                stat = entry.stat()
            except OSError:
                continue
            rows.append([os.path.relpath(entry.path, root), f"{stat.st_size}:{stat.st_mtime_ns}"])

    walk(root, 0)
    return sorted(rows)


def _code_digest() -> str:
    """A digest of ghostscope's own source (the three packages)."""
    digest = hashlib.sha256()
    top = Path(__file__).resolve().parents[1]
    for package in ("analysis", "fixedpoints", "checkpoints"):
        for path in sorted((top / package).glob("*.py")):
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _named_file(value: Any) -> Optional[str]:
    """The existing file an option's value names (``path`` or ``path:function``), or None."""
    if not isinstance(value, str) or not value:
        return None
    for candidate in (value, value.rsplit(":", 1)[0] if ":" in value else None):
        if candidate and os.path.isfile(candidate):
            return candidate
    return None


def run_fingerprint(options: Dict[str, Any], directory: Union[str, os.PathLike],
                    out: Union[str, os.PathLike]) -> str:
    """The fingerprint of one ``ghostscope analyze`` over ``directory`` into ``out``.

    Parameters
    ----------
    options : dict
        The command's options (JSON-ready values); every string that names an existing file
        (``--log``, ``--drive``, the file of ``--model file.py:build`` ...) brings that file's
        stamp.
    directory, out : path
        The checkpoint directory (its files four folders deep, and the files directly beside
        it) and the output directory (every file but the lock and :data:`RUN_RECORD`).
    """
    directory, out = Path(directory).resolve(), Path(out).resolve()
    from .outdir import LOCK_NAME

    named = sorted({os.path.abspath(path) for path in map(_named_file, options.values())
                    if path is not None})
    parts = {"options": options, "cwd": os.getcwd(), "code": _code_digest(),
             "environment": sorted((k, v) for k, v in os.environ.items()
                                   if k.startswith("GHOSTSCOPE_")),
             "directory": [str(directory), _listing(directory, 4)],
             "beside": [str(directory.parent), _listing(directory.parent, 0)],
             "files": [[p, file_stamp(p)] for p in named],
             "out": [str(out), _listing(out, 16, skip=(LOCK_NAME, RUN_RECORD))]}
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def finished_run(options: Dict[str, Any], directory: Union[str, os.PathLike],
                 out: Union[str, os.PathLike]) -> Optional[Dict[str, Any]]:
    """The record of the run that left ``out`` as it is, when it was this very command.

    Returns
    -------
    dict or None
        ``{"fingerprint", "lines", "n_epochs"}`` (the lines it printed), or None when anything
        differs (or there is no record): the command must run.
    """
    path = Path(out) / RUN_RECORD
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("lines"), list):
        return None
    if record.get("fingerprint") != run_fingerprint(options, directory, out):
        return None
    return record


def record_run(options: Dict[str, Any], directory: Union[str, os.PathLike],
               out: Union[str, os.PathLike], lines: Sequence[str], n_epochs: int) -> Path:
    """Write :data:`RUN_RECORD` for a command that just finished (after its last other file)."""
    from fixedpoints.serialization import json_text, write_text

    record = {"fingerprint": run_fingerprint(options, directory, out), "lines": list(lines),
              "n_epochs": int(n_epochs)}
    return write_text(Path(out) / RUN_RECORD, json_text(record))
