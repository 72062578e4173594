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
  made from (:mod:`analysis.report`) and are made again only when it differs.

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
           "continuation_start"]

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
